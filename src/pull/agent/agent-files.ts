/**
 * The agent's files (docs/stream-protocol.md §7, §10): one zooid TOML file per relay, written
 * atomically (temp file, fsync, rename, mode 0600), and the agent's state file. zooid loads every
 * file in its config directory, so temp files and the state live in a work directory next to it.
 * Names come only from validated ids; a file is deleted only if the agent manages it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { stringify } from 'smol-toml';
import { isValidRelayId, isValidVersion, type RelayRep } from '../protocol.js';

/** First line of every relay file the agent writes: a file without it is never deleted. */
export const MANAGED_MARKER = '# Managed by bosun agent: changes are overwritten.';
/** Temp files the agent creates (and removes at start if a crash left one). */
export const TEMP_PREFIX = '.bosun-tmp-';
export const STATE_FORMAT = 1;
/** The state file's name in the work directory. */
export const STATE_FILE = 'state.json';
/** Where agents before the work directory kept their state: in the config directory itself. */
export const LEGACY_STATE_FILE = '.bosun-agent.json';
/** Directories the agent creates: its files hold relay secrets. */
export const AGENT_DIR_MODE = 0o700;

/**
 * `<parent>/.<name>.bosun` for config directory `<parent>/<name>`: outside zooid's directory, and
 * on the same file system unless the config directory is a mount point (then --work-dir).
 */
export function defaultWorkDir(dir: string): string {
  const root = resolve(dir);
  return join(dirname(root), `.${basename(root)}.bosun`);
}

/** Whether `path` is `dir` or inside it. */
export function isInside(path: string, dir: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** mkdir -p with mode 0700 for every directory it creates (the mode is below any umask's reach). */
export async function makeAgentDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: AGENT_DIR_MODE });
}

/** Whether two existing paths are on the same file system (a rename between them is atomic). */
export async function sameFileSystem(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  return sa.dev === sb.dev;
}

/** What the agent persists (no secrets): the stream's resume state and the files it manages. */
export interface AgentState {
  format: number;
  epoch: string | null;
  /** Live relays and their versions (StreamManager.snapshot()). */
  relays: Record<string, number>;
  /** Relay files written by the agent (deleted when their relay goes). */
  managed: string[];
  /** Relays whose file lists rotated credentials (resumed without held versions, to re-arm timers). */
  expiring: string[];
}

/** A write or delete in the config directory failed; the message names the file and the cause. */
export class AgentFileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentFileError';
  }
}

/** `<dir>/<id>.toml` for a valid id, or an error: ids never escape the directory. */
export function relayFile(dir: string, id: string): string {
  if (!isValidRelayId(id)) throw new AgentFileError('refusing a relay id that is not a safe file name');
  const root = resolve(dir);
  const file = join(root, `${id}.toml`);
  if (dirname(file) !== root || basename(file) !== `${id}.toml`) {
    throw new AgentFileError('refusing a relay id that is not a safe file name');
  }
  return file;
}

/** TOML values cannot be null: a missing key is zooid's zero value, the same thing. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== null && v !== undefined).map(withoutNulls);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== null && v !== undefined) out[k] = withoutNulls(v);
    }
    return out;
  }
  return value;
}

/** The relay's zooid config file: the rep's config, its secret, and rotated credentials if any. */
export function relayToml(rep: RelayRep): string {
  const doc: Record<string, unknown> = { ...(withoutNulls(rep.config) as Record<string, unknown>) };
  delete doc.expiring;
  doc.secret = rep.secret;
  if (rep.expiring.length > 0) {
    doc.expiring = rep.expiring.map((c) => ({ name: c.name, value: c.value, expires_at: c.expiresAt }));
  }
  return `${MANAGED_MARKER}\n${stringify(doc)}\n`;
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

/** The process umask, read once (it only ever takes permission bits away). */
const UMASK = process.umask();

/**
 * Temp file in `tmpDir` (same file system as `file`) + fsync + rename: readers see the old file or
 * the new one.
 */
export async function atomicWrite(
  file: string,
  content: string,
  tmpDir = dirname(file),
  mode = 0o600,
): Promise<void> {
  const tmp = join(tmpDir, `${TEMP_PREFIX}${basename(file)}-${randomBytes(4).toString('hex')}`);
  let created = false;
  try {
    const fh = await open(tmp, 'wx', mode);
    created = true;
    try {
      if ((UMASK & mode) !== 0) await fh.chmod(mode); // the umask took bits away; never more than mode
      await fh.write(content, null, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    created = false;
  } catch (err) {
    if (created) await unlink(tmp).catch(() => {});
    throw new AgentFileError(`cannot write ${file}: ${errno(err)}`, { cause: err });
  }
}

/** fsyncs a directory so that renames and unlinks in it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  } finally {
    await fh?.close().catch(() => {});
  }
}

export async function removeFile(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new AgentFileError(`cannot delete ${file}: ${errno(err)}`, { cause: err });
  }
}

/** Whether the file starts with the agent's marker (so the agent wrote it). */
export async function isManagedFile(file: string): Promise<boolean> {
  try {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(MANAGED_MARKER.length);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return bytesRead === buf.length && buf.toString('utf8') === MANAGED_MARKER;
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/** The ids of `<id>.toml` files in the directory that carry the agent's marker. */
export async function scanManaged(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (!name.endsWith('.toml')) continue;
    const id = name.slice(0, -'.toml'.length);
    if (isValidRelayId(id) && (await isManagedFile(join(dir, name)))) out.add(id);
  }
  return out;
}

/** Removes temp files a crash left behind (only the agent's own, by prefix). */
export async function removeStaleTemps(dir: string): Promise<number> {
  let n = 0;
  try {
    for (const name of await readdir(dir)) {
      if (name.startsWith(TEMP_PREFIX)) {
        await unlink(join(dir, name)).catch(() => {});
        n++;
      }
    }
  } catch {
    // A missing or unreadable directory is reported by the first write.
  }
  return n;
}

/** Reads the state file; anything missing or malformed gives an empty state (a full put follows). */
export async function readState(file: string): Promise<AgentState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const raw = JSON.parse(text) as Partial<AgentState>;
    if (raw.format !== STATE_FORMAT || typeof raw.relays !== 'object' || raw.relays === null)
      return undefined;
    const relays: Record<string, number> = {};
    for (const [id, v] of Object.entries(raw.relays))
      if (isValidRelayId(id) && isValidVersion(v)) relays[id] = v;
    const ids = (list: unknown) => (Array.isArray(list) ? list.filter(isValidRelayId) : []);
    return {
      format: STATE_FORMAT,
      epoch: typeof raw.epoch === 'string' ? raw.epoch : null,
      relays,
      managed: ids(raw.managed),
      expiring: ids(raw.expiring),
    };
  } catch {
    return undefined;
  }
}

/**
 * Moves an older agent's `<dir>/.bosun-agent.json` to `stateFile` (or drops it if `stateFile`
 * exists already): zooid would otherwise load it as a config file.
 */
export async function migrateLegacyState(
  dir: string,
  stateFile: string,
): Promise<'moved' | 'removed' | null> {
  const legacy = join(dir, LEGACY_STATE_FILE);
  const saved = await readState(legacy);
  if (saved === undefined && !(await exists(legacy))) return null;
  let outcome: 'moved' | 'removed' = 'removed';
  if (saved !== undefined && !(await exists(stateFile))) {
    await writeState(stateFile, saved);
    outcome = 'moved';
  }
  await removeFile(legacy);
  await syncDir(dir);
  return outcome;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export async function writeState(file: string, state: AgentState): Promise<void> {
  await atomicWrite(file, `${JSON.stringify(state)}\n`);
  await syncDir(dirname(file));
}
