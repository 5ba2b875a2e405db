import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { BosunError } from '../domain/errors.js';
import {
  DuplicateCheck,
  type FleetSpec,
  issuePath,
  MAX_FILE_BYTES,
  MAX_FLEET_RELAYS,
  manifestSchema,
  type ResolvedFleet,
  type ResolvedRelay,
  resolveRelayFields,
} from '../domain/fleet/spec.js';
import type { FleetState } from '../domain/fleet/state.js';
import { TOO_DEEP_TOML, tooDeepPath } from '../domain/nesting.js';
import { describeIssues } from '../domain/relay.js';
import { SyncError } from './errors.js';

export const MANIFEST = 'fleet.toml';

/** A fleet directory, read and validated: what both syncers send to bosun. */
export interface LoadedFleet {
  name: string;
  dir: string;
  /**
   * The files as parsed, for the API syncer. Absent when the directory was read against a
   * previous State and some unchanged files were left unparsed (the DB syncer's fast path).
   */
  spec: FleetSpec | undefined;
  resolved: ResolvedFleet;
}

interface Manifest {
  path: string;
  name: string;
  /** `target` of fleet.toml as the API takes it (`none` is null); absent: not set. */
  target?: string | null;
  defaults: Record<string, unknown>;
  /** sha256 of fleet.toml's bytes: part of every relay file's source digest. */
  digest: string;
  relayFiles: string[];
}

/** Lists a fleet directory and reads, parses and validates its fleet.toml. */
export function readManifest(dir: string): Manifest {
  let entries: { name: string; file: boolean }[];
  try {
    // Anything but a directory is a file here: readLimited refuses what is not a regular file.
    entries = readdirSync(dir, { withFileTypes: true }).map((e) => ({
      name: e.name,
      file: !e.isDirectory(),
    }));
  } catch (err) {
    throw new SyncError(dir, `cannot read the fleet directory (${(err as NodeJS.ErrnoException).code})`);
  }
  const path = join(dir, MANIFEST);
  if (!entries.some((e) => e.file && e.name === MANIFEST)) {
    throw new SyncError(path, 'is missing: a fleet directory needs fleet.toml with the fleet name');
  }
  const relayFiles = entries
    .filter((e) => e.file && e.name.endsWith('.toml') && e.name !== MANIFEST)
    .map((e) => e.name)
    .sort();
  if (relayFiles.length > MAX_FLEET_RELAYS) {
    throw new SyncError(
      dir,
      `has ${relayFiles.length} relay files; the limit is ${MAX_FLEET_RELAYS} relays per fleet`,
    );
  }
  const bytes = readLimited(path);
  const digest = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  const doc = parseTomlFile(path, text);
  const manifest = manifestSchema.safeParse(doc);
  if (!manifest.success) {
    const line = locateLine(text, issuePath(manifest.error));
    throw new SyncError(line ? `${path}:${line}` : path, describeIssues(manifest.error));
  }
  const { target } = manifest.data;
  return {
    path,
    name: manifest.data.name,
    ...(target !== undefined ? { target: target === 'none' ? null : target } : {}),
    defaults: (doc.defaults as Record<string, unknown>) ?? {},
    digest,
    relayFiles,
  };
}

/**
 * What a relay file's content depends on: its name (the default id), its bytes and fleet.toml's
 * bytes ([defaults]). Equal digests mean the file would parse to the same relay fields.
 */
export function sourceDigest(manifestDigest: string, name: string, bytes: Buffer): string {
  return createHash('sha256')
    .update(`bosun-fleet-source-v1\0${manifestDigest}\0${name}\0`)
    .update(bytes)
    .digest('hex');
}

/**
 * Reads a fleet directory: `fleet.toml` (`name`, `[defaults]`) and one `<relay-id>.toml` per relay
 * (other files and subdirectories are ignored). Every problem is a SyncError naming the file, the
 * line when it is known, and the field. Nothing is sent anywhere until the whole fleet is valid.
 *
 * With `previous` (the fleet's last applied State), a file whose source digest is the one that
 * State recorded is not parsed now: the plan finds it unchanged, or parses it if its relay moved
 * on since (so an unchanged file is validated again only when that matters).
 */
export function readFleetDir(dir: string, opts: { previous?: FleetState | undefined } = {}): LoadedFleet {
  const manifest = readManifest(dir);
  const known =
    opts.previous?.fleet_id === manifest.name
      ? new Map(opts.previous.relays.filter((r) => r.source).map((r) => [r.name, r]))
      : undefined;
  const spec: FleetSpec = {
    ...(manifest.target !== undefined ? { target: manifest.target } : {}),
    defaults: manifest.defaults,
    relays: [],
  };
  let complete = true;
  const dups = new DuplicateCheck();
  const relays: ResolvedRelay[] = [];
  for (const file of relayFiles(manifest, dir)) {
    const { name, path } = file;
    const bytes = readLimited(path);
    const source = sourceDigest(manifest.digest, name, bytes);
    const prev = known?.get(name);
    const text = bytes.toString('utf8');
    if (prev?.source === source) {
      complete = false;
      const load = () => parseRelayFile(manifest, name, path, text, source).fields;
      const relay: ResolvedRelay = { name, file: path, id: prev.id, source, resource: path, load };
      syncErrors(() => dups.add(relay));
      relays.push(relay);
      continue;
    }
    const parsed = parseRelayFile(manifest, name, path, text, source);
    spec.relays.push(parsed.entry);
    const relay: ResolvedRelay = {
      name,
      file: path,
      id: parsed.fields.id!,
      fields: parsed.fields,
      source,
      resource: path,
    };
    syncErrors(() => dups.add({ ...relay, host: parsed.fields.host }, (field) => parsed.at([field])));
    relays.push(relay);
  }
  const resolved: ResolvedFleet =
    manifest.target !== undefined ? { target: manifest.target, relays } : { relays };
  return { name: manifest.name, dir, spec: complete ? spec : undefined, resolved };
}

function relayFiles(manifest: Manifest, dir: string) {
  return manifest.relayFiles.map((file) => ({ name: file.slice(0, -'.toml'.length), path: join(dir, file) }));
}

function parseRelayFile(manifest: Manifest, name: string, path: string, text: string, source: string) {
  const entry = { name, file: path, config: parseTomlFile(path, text), source };
  const at = (fieldPath: readonly PropertyKey[]) => {
    const line = locateLine(text, fieldPath);
    return line ? `${path}:${line}` : path;
  };
  const fields = syncErrors(() =>
    resolveRelayFields(manifest.defaults, entry, (_file, p) => locateLine(text, p)),
  );
  return { entry, fields, at };
}

/** Reports the BosunErrors of validation as SyncErrors naming the file (and line). */
function syncErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BosunError) throw new SyncError(err.resource ?? 'fleet', err.message);
    throw err;
  }
}

/**
 * One buffer for every file of a directory: reading 10,000 small files into fresh Buffers costs
 * more in allocation and GC than the reads. One byte over the limit tells a file is too large.
 */
const readBuffer = Buffer.allocUnsafe(MAX_FILE_BYTES + 1);

/**
 * A file's bytes, as a view of the shared buffer valid until the next read; SyncError when
 * unreadable, too large or not a regular file. Opened without blocking, so a FIFO (or a link to
 * one) is refused instead of waiting for a writer, and a device is never read.
 */
function readLimited(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new SyncError(path, `cannot read (${(err as NodeJS.ErrnoException).code})`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new SyncError(path, `is not a regular file (${fileKind(stats)})`);
    let length = 0;
    for (;;) {
      const n = readSync(fd, readBuffer, length, readBuffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > MAX_FILE_BYTES) {
        const { size } = fstatSync(fd);
        throw new SyncError(path, `is ${size} bytes; the limit is ${MAX_FILE_BYTES} bytes (1 MiB) per file`);
      }
    }
    return readBuffer.subarray(0, length);
  } catch (err) {
    if (err instanceof SyncError) throw err;
    throw new SyncError(path, `cannot read (${(err as NodeJS.ErrnoException).code})`);
  } finally {
    closeSync(fd);
  }
}

function fileKind(stats: Stats): string {
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isDirectory()) return 'a directory';
  if (stats.isSocket()) return 'a socket';
  return 'not a file';
}

function parseTomlFile(path: string, text: string): Record<string, unknown> {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const what = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
      throw new SyncError(`${path}:${err.line}`, `invalid TOML: ${what}`);
    }
    throw new SyncError(path, `invalid TOML: ${(err as Error).message}`);
  }
  const deep = tooDeepPath(doc);
  if (deep) {
    const line = locateLine(text, deep);
    throw new SyncError(line ? `${path}:${line}` : path, `${String(deep[0])}: ${TOO_DEEP_TOML}`);
  }
  return doc;
}

/** Splits a TOML key (`a.b`, `"a.b".c`, `a . 'b'`) into its parts. */
function splitKey(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quote: string | null = null;
  for (const ch of key) {
    if (quote) {
      if (ch === quote) quote = null;
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '.') {
      parts.push(current.trim());
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current.trim());
  return parts;
}

const HEADER = /^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/;
const KEY = /^((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-.\s])+?)\s*=/;

/**
 * The 1-based line that best matches a field path (`info.pubkey` → the `pubkey =` line under
 * `[info]`, or `info.pubkey =`, or the `[info]` header, or `info = {…}`). Undefined when the
 * field is not written in this file (e.g. it is missing, or came from [defaults]).
 */
export function locateLine(text: string, path: readonly PropertyKey[]): number | undefined {
  const want = path.map(String);
  if (want.length === 0) return undefined;
  let table: string[] = [];
  let best = 0;
  let bestLine: number | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    let keyPath: string[] | undefined;
    const header = HEADER.exec(line);
    if (header) {
      table = splitKey(header[1]!);
      keyPath = table;
    } else {
      const key = KEY.exec(line);
      if (key) keyPath = [...table, ...splitKey(key[1]!)];
    }
    if (!keyPath) continue;
    let n = 0;
    while (n < keyPath.length && n < want.length && keyPath[n] === want[n]) n++;
    const prefix = n === keyPath.length || n === want.length;
    if (prefix && n > best) {
      best = n;
      bestLine = i + 1;
    }
  }
  return bestLine;
}
