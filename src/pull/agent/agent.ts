/**
 * `bosun agent` (docs/stream-protocol.md §7, §10): follows one fleet's relays over the autoconfig
 * stream (StreamManager) and keeps one zooid TOML file per relay in a config directory.
 *
 * - add/update: `<id>.toml` = the rep's config + `secret` (+ `expiring` while a rotated secret is in
 *   its grace period), written atomically with mode 0600; keyExpired rewrites it without the entry.
 * - delete (and after each put, any managed file whose relay is gone): the file is removed, but only
 *   files the agent manages (listed in its state file, or carrying its marker line).
 * - After changes it saves `{epoch, relays:{id:version}}` (no secrets) and resumes from it: the
 *   first put after a restart is a delta put and deletes relays removed while it was down.
 * - A failed write (e.g. the directory is not writable) throws from the callback: nothing is
 *   recorded, no partial file stays, and the stream restarts and retries with backoff.
 * - Status on a small local `/healthz` and Prometheus `/metrics` (when --health asks for a
 *   listener); one log line per change (ids and versions, never secrets).
 */
import { readFile, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { parse as parseToml } from 'smol-toml';
import { type Clock, systemClock } from '../../domain/clock.js';
import { isValidSecretKey } from '../../domain/keys.js';
import { type Random, systemRandom } from '../../domain/random.js';
import { fingerprint, isValidRelayId, type RelayRep, STREAM_PATH } from '../protocol.js';
import {
  type AgentState,
  atomicWrite,
  defaultWorkDir,
  isInside,
  isManagedFile,
  makeAgentDir,
  migrateLegacyState,
  readState,
  relayFile,
  relayToml,
  removeFile,
  removeStaleTemps,
  STATE_FILE,
  STATE_FORMAT,
  sameFileSystem,
  scanManaged,
  syncDir,
  writeState,
} from './agent-files.js';
import { AgentLiveChecker, type AgentLiveOptions, type AgentRelayLive } from './live-check.js';
import {
  type RelayStreamHandler,
  type StreamLogger,
  StreamManager,
  type StreamStatus,
} from './stream-manager.js';

export interface AgentOptions {
  /** bosun's base URL, e.g. `https://bosun.example.com`. */
  server: string;
  token: string;
  /** zooid's config directory. */
  dir: string;
  /** Temp files and the state file; outside `dir`, on its file system. Default `<parent>/.<name>.bosun`. */
  workDir?: string;
  /** Default `<workDir>/state.json`. */
  stateFile?: string;
  /** Allow `http://` to a host that is not loopback. */
  allowInsecure?: boolean;
  /** Where to serve `GET /healthz`; null: not at all. */
  health?: { host: string; port: number } | null;
  logger: Logger;
  clock?: Clock;
  random?: Random;
  fetch?: typeof fetch;
  /**
   * Read each written relay back from this zooid address over NIP-11 (`--verify-url`); the
   * timings default to a 60 s round, a 30 s grace and a 5 s timeout.
   */
  verify?: Omit<AgentLiveOptions, 'logger' | 'clock'> | null;
  /** Debounce of state-file writes. Default 50 ms. */
  persistDelayMs?: number;
  /** At most one state-file write this often while changes keep coming (a big put). Default 1 s. */
  persistIntervalMs?: number;
}

export class AgentConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConfigError';
  }
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** The stream URL of a bosun server; refuses cleartext to anything but loopback unless allowed (§10). */
export function streamUrl(server: string, allowInsecure = false): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new AgentConfigError(
      `--server ${JSON.stringify(server)}: not a URL (expected https://host[:port])`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AgentConfigError(`--server: ${url.protocol} is not supported; use https://`);
  }
  if (url.username || url.password) {
    throw new AgentConfigError('--server: credentials do not belong in the URL; use BOSUN_AGENT_TOKEN');
  }
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname) && !allowInsecure) {
    throw new AgentConfigError(
      `--server: refusing cleartext http:// to ${url.hostname}: the stream carries relay secrets; use https:// (or --allow-insecure)`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}${STREAM_PATH}`;
}

/** StreamManager's per-event info lines go to debug: the agent logs one line per change itself. */
function streamLogger(log: Logger): StreamLogger {
  return {
    debug: (obj, msg) => log.debug(obj, msg),
    info: (obj, msg) => log.debug(obj, msg),
    warn: (obj, msg) => log.warn(obj, msg),
    error: (obj, msg) => log.error(obj, msg),
  };
}

export interface AgentHealth {
  ok: boolean;
  status: StreamStatus['state'];
  relays: number;
  epoch: string | null;
  dir: string;
  last_change_at: string | null;
  /** Why the last connection ended (kind, HTTP status, the cause in the transport's words). */
  last_error: { kind: string; status?: number; cause?: string; at: string } | null;
  /** The last failed file write or delete, until one succeeds. */
  file_error: string | null;
  /** Per relay written, what zooid serves for it (only with --verify-url). */
  live?: Record<string, AgentRelayLive>;
}

/** `--verify-url`: a zooid address to read relays back from; never credentials in it. */
export function verifyUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AgentConfigError(
      `--verify-url ${JSON.stringify(value)}: not a URL (e.g. http://127.0.0.1:3334)`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new AgentConfigError(`--verify-url: ${url.protocol} is not http or https`);
  if (url.username || url.password)
    throw new AgentConfigError('--verify-url: credentials do not belong in the URL (none are sent)');
  return url.href;
}

/** The agent's own metrics (a registry per agent: tests run several in one process). */
function agentMetrics(agent: Agent) {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    connected: new Gauge({
      name: 'bosun_agent_stream_connected',
      help: '1 while the stream is connected and the directory matches the fleet, else 0',
      registers,
      collect() {
        this.set(agent.health().status === 'valid' ? 1 : 0);
      },
    }),
    relays: new Gauge({
      name: 'bosun_agent_relays',
      help: 'relays held (one file each)',
      registers,
      collect() {
        this.set(agent.health().relays);
      },
    }),
    lastVersion: new Gauge({
      name: 'bosun_agent_last_applied_version',
      help: 'version of the last relay change applied (file written or removed)',
      registers,
    }),
    lastChange: new Gauge({
      name: 'bosun_agent_last_change_timestamp_seconds',
      help: 'when the last relay change was applied',
      registers,
    }),
    errors: new Counter({
      name: 'bosun_agent_errors_total',
      help: 'stream connections that ended in an error, by kind (network, http, tls, timeout, ...), and failed file writes or deletes (kind "file")',
      labelNames: ['kind'],
      registers,
    }),
    written: new Counter({ name: 'bosun_agent_files_written_total', help: 'relay files written', registers }),
    removed: new Counter({ name: 'bosun_agent_files_removed_total', help: 'relay files removed', registers }),
  };
}

export class Agent implements RelayStreamHandler {
  private readonly log: Logger;
  private readonly dir: string;
  private readonly workDir: string;
  private readonly stateFile: string;
  /** The directories exist (made once; again after a write failed, e.g. one was removed). */
  private dirsReady = false;
  private readonly url: string;
  private readonly clock: Clock;
  private manager: StreamManager | undefined;
  /** The reps written, for keyExpired rewrites. Held in memory only. */
  private readonly reps = new Map<string, RelayRep>();
  private managed = new Set<string>();
  /** Ids refused during the put being applied: their files are left alone. */
  private refused = new Set<string>();
  private status: StreamStatus = { state: 'initializing' };
  private lastChangeAt: number | null = null;
  private fileError: string | null = null;
  private healthServer: Server | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> | undefined;
  private dirty = false;
  private lastPersistAt = 0;
  private closing: Promise<void> | undefined;
  private readonly metrics = agentMetrics(this);
  private readonly live: AgentLiveChecker | undefined;

  constructor(private readonly options: AgentOptions) {
    this.url = streamUrl(options.server, options.allowInsecure);
    this.dir = options.dir;
    this.workDir = options.workDir ?? defaultWorkDir(options.dir);
    this.stateFile = options.stateFile ?? join(this.workDir, STATE_FILE);
    for (const [flag, path] of [
      ['--work-dir', this.workDir],
      ['--state-file', this.stateFile],
    ] as const) {
      if (isInside(path, options.dir)) {
        throw new AgentConfigError(
          `${flag} ${path} is inside --dir ${options.dir}: zooid loads every file there; use a path outside it`,
        );
      }
    }
    this.log = options.logger;
    this.clock = options.clock ?? systemClock;
    if (options.verify) {
      this.live = new AgentLiveChecker({
        ...options.verify,
        baseUrl: verifyUrl(options.verify.baseUrl),
        logger: this.log,
        clock: this.clock,
      });
    }
  }

  /**
   * Loads the saved state and connects. Resolves when the first put is applied; rejects with
   * StreamAuthError / StreamConfigError if the server refuses the token or the URL before that
   * (the agent is then closed). Until then the files already on disk stay as they are.
   */
  async start(): Promise<void> {
    await this.ensureDirs();
    if (this.dirsReady && !(await sameFileSystem(this.dir, this.workDir))) {
      throw new AgentConfigError(
        `--work-dir ${this.workDir} is on another file system than --dir ${this.dir}: files could not be renamed into place atomically; give a --work-dir on the same file system, outside --dir`,
      );
    }
    // The config directory is cleaned too: older agents wrote their temp files there.
    let temps = 0;
    for (const d of new Set([this.dir, this.workDir, dirname(this.stateFile)]))
      temps += await removeStaleTemps(d);
    if (temps > 0) this.log.info({ count: temps }, 'removed temp files left by an interrupted write');
    await this.migrateLegacyState();
    const saved = await readState(this.stateFile);
    this.managed = new Set([...(saved?.managed ?? []), ...(await scanManaged(this.dir))]);
    const initialState = saved?.epoch ? await this.resumable(saved) : undefined;
    this.log.info(
      {
        dir: this.dir,
        workDir: this.workDir,
        stateFile: this.stateFile,
        held: initialState ? Object.keys(initialState.relays).length : 0,
        managed: this.managed.size,
      },
      'agent starting',
    );
    if (this.options.health) await this.startHealth(this.options.health);
    if (this.live && initialState) await this.checkHeld(Object.keys(initialState.relays));
    this.live?.start();
    this.manager = new StreamManager({
      url: this.url,
      token: this.options.token,
      handler: this,
      ...(initialState ? { initialState } : {}),
      clock: this.clock,
      random: this.options.random ?? systemRandom,
      ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      logger: streamLogger(this.log),
    });
    try {
      await this.manager.start();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Stops the stream, saves the state, stops /healthz. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.manager?.close();
      this.live?.close();
      if (this.persistTimer) clearTimeout(this.persistTimer);
      await this.flush().catch(() => {});
      if (this.healthServer) {
        const server = this.healthServer;
        await new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
      }
      this.log.info({}, 'agent stopped');
    })();
    return this.closing;
  }

  /** Checks every written relay against --verify-url now (tests; the rounds do it every interval). */
  verifyNow(): Promise<void> {
    return this.live?.checkAll() ?? Promise.resolve();
  }

  /** `http://host:port/healthz`, once listening (`/metrics` beside it). */
  get healthUrl(): string | undefined {
    const addr = this.healthServer?.address() as AddressInfo | null | undefined;
    if (!addr) return undefined;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `http://${host}:${addr.port}/healthz`;
  }

  health(): AgentHealth {
    const snap = this.manager?.snapshot();
    const e = this.status.error;
    return {
      ok: this.status.state === 'valid' && this.fileError === null,
      status: this.status.state,
      relays: snap ? Object.keys(snap.relays).length : 0,
      epoch: snap?.epoch ?? null,
      dir: this.dir,
      last_change_at: this.lastChangeAt === null ? null : new Date(this.lastChangeAt).toISOString(),
      last_error: e
        ? {
            kind: e.kind,
            ...(e.status !== undefined ? { status: e.status } : {}),
            ...(e.cause !== undefined ? { cause: e.cause } : {}),
            at: new Date(e.at).toISOString(),
          }
        : null,
      file_error: this.fileError,
      ...(this.live ? { live: this.live.snapshot() } : {}),
    };
  }

  // ---- RelayStreamHandler ------------------------------------------------------------------------

  async addRelay(rep: RelayRep): Promise<void> {
    await this.write(rep);
    this.changed({ id: rep.id, version: rep.version }, 'relay written');
    this.metrics.lastVersion.set(rep.version);
  }

  async updateRelay(rep: RelayRep, previousVersion: number): Promise<void> {
    await this.write(rep);
    this.changed({ id: rep.id, version: rep.version, previousVersion }, 'relay written');
    this.metrics.lastVersion.set(rep.version);
  }

  async deleteRelay(id: string, version: number | null): Promise<void> {
    const removed = await this.remove(id);
    this.changed({ id, version, removed }, 'relay removed');
    if (version !== null) this.metrics.lastVersion.set(version);
  }

  async receivedAllRelays(): Promise<void> {
    // Files of relays that are gone but that no delete reached (e.g. written just before a crash).
    const live = this.manager?.snapshot().relays ?? {};
    for (const id of [...this.managed]) {
      if (Object.hasOwn(live, id) || this.refused.has(id)) continue;
      const removed = await this.remove(id);
      if (removed) this.changed({ id, version: null, removed }, 'relay removed');
    }
    this.refused.clear();
    this.schedulePersist(0);
  }

  async keyExpired(id: string, cred: { name: string; fingerprint: string }): Promise<void> {
    const rep = this.reps.get(id);
    if (!rep) return;
    const expiring = rep.expiring.filter(
      (c) => c.name !== cred.name || fingerprint(c.value) !== cred.fingerprint,
    );
    if (expiring.length === rep.expiring.length) return;
    await this.write({ ...rep, expiring });
    this.changed(
      { id, version: rep.version, name: cred.name, fingerprint: cred.fingerprint },
      'credential expired',
    );
  }

  onInvalidRelay(id: string, reason: string): void {
    if (isValidRelayId(id)) this.refused.add(id);
    this.log.warn({ id: isValidRelayId(id) ? id : '(invalid id)', reason }, 'relay refused');
  }

  onError(err: Error): void {
    this.log.warn({ err: err.message }, 'applying a change failed; the stream restarts and retries');
  }

  onStatus(s: StreamStatus): void {
    const previous = this.status.state;
    this.status = s;
    // `reconnect` is the server asking (e.g. on its shutdown), not a fault.
    if (s.error && s.error.kind !== 'reconnect') this.metrics.errors.inc({ kind: s.error.kind });
    if (s.state === previous && s.state !== 'interrupted') return;
    const fields = {
      status: s.state,
      ...(s.error ? { kind: s.error.kind, httpStatus: s.error.status, cause: s.error.cause } : {}),
    };
    if (s.state === 'valid' || s.state === 'initializing' || s.state === 'closed')
      this.log.info(fields, 'stream status');
    else this.log.warn(fields, 'stream status');
  }

  // ---- files -------------------------------------------------------------------------------------

  private async write(rep: RelayRep): Promise<void> {
    const file = relayFile(this.dir, rep.id);
    if (!this.managed.has(rep.id)) {
      this.managed.add(rep.id);
      this.schedulePersist();
    }
    await this.ensureDirs();
    try {
      await atomicWrite(file, relayToml(rep), this.workDir);
    } catch (err) {
      this.dirsReady = false;
      this.fileError = (err as Error).message;
      this.metrics.errors.inc({ kind: 'file' });
      this.log.error({ id: rep.id, error: this.fileError }, 'cannot write relay file');
      throw err;
    }
    this.metrics.written.inc();
    this.fileError = null;
    this.reps.set(rep.id, rep);
    this.live?.written(rep);
  }

  private async remove(id: string): Promise<boolean> {
    const file = relayFile(this.dir, id);
    if (!this.managed.has(id) && !(await isManagedFile(file))) {
      this.log.warn({ id }, 'not deleting a relay file the agent does not manage');
      return false;
    }
    let removed: boolean;
    try {
      removed = await removeFile(file);
    } catch (err) {
      this.fileError = (err as Error).message;
      this.metrics.errors.inc({ kind: 'file' });
      this.log.error({ id, error: this.fileError }, 'cannot delete relay file');
      throw err;
    }
    if (removed) this.metrics.removed.inc();
    this.fileError = null;
    this.managed.delete(id);
    this.reps.delete(id);
    this.live?.removed(id);
    return removed;
  }

  private changed(fields: Record<string, unknown>, msg: string): void {
    this.lastChangeAt = this.clock.now();
    this.metrics.lastChange.set(this.lastChangeAt / 1000);
    this.log.info(fields, msg);
    this.schedulePersist();
  }

  /** Saved entries whose file is still there; relays with rotated credentials are not held (§6 timers). */
  private async resumable(saved: AgentState): Promise<{ epoch: string; relays: Record<string, number> }> {
    const relays: Record<string, number> = {};
    const expiring = new Set(saved.expiring);
    for (const [id, version] of Object.entries(saved.relays)) {
      if (expiring.has(id) || !this.managed.has(id)) continue;
      try {
        if ((await stat(relayFile(this.dir, id))).isFile()) relays[id] = version;
      } catch {
        // missing: the put adds it again
      }
    }
    return { epoch: saved.epoch!, relays };
  }

  /**
   * Relays held from the last run get no write until they change, so their live check starts from
   * their files. A file that no longer parses is left to the next write.
   */
  private async checkHeld(ids: string[]): Promise<void> {
    for (const id of ids) {
      try {
        const doc = parseToml(await readFile(relayFile(this.dir, id), 'utf8')) as Record<string, unknown>;
        const { secret, expiring: _expiring, ...config } = doc;
        if (typeof secret !== 'string' || !isValidSecretKey(secret)) continue;
        this.live!.written({ id, version: 1, config, secret, expiring: [] });
      } catch {
        // unreadable or not TOML: checked after its next write
      }
    }
  }

  /** Creates the config, work and state directories (0700). A failure shows in the write that needs them. */
  private async ensureDirs(): Promise<void> {
    if (this.dirsReady) return;
    try {
      for (const d of new Set([this.dir, this.workDir, dirname(this.stateFile)])) await makeAgentDir(d);
      this.dirsReady = true;
    } catch {
      // e.g. a file where a directory should be: the write reports it and the stream retries.
    }
  }

  // ---- state file --------------------------------------------------------------------------------

  /** An older agent's state file in the config directory: moved to the state file, or dropped. */
  private async migrateLegacyState(): Promise<void> {
    try {
      const outcome = await migrateLegacyState(this.dir, this.stateFile);
      if (outcome === 'moved')
        this.log.info({ to: this.stateFile }, 'moved the state file out of the config directory');
      if (outcome === 'removed')
        this.log.info({}, "removed an older agent's state file from the config directory");
    } catch (err) {
      this.log.warn({ error: (err as Error).message }, "cannot move an older agent's state file");
    }
  }

  private schedulePersist(delayMs = this.options.persistDelayMs ?? 50): void {
    this.dirty = true;
    if (this.persistTimer || this.persisting) return;
    const spacing = this.lastPersistAt + (this.options.persistIntervalMs ?? 1000) - Date.now();
    this.persistTimer = setTimeout(
      () => {
        this.persistTimer = undefined;
        void this.flush().catch((err) => {
          this.log.error({ error: (err as Error).message }, 'cannot save agent state; retrying');
          this.schedulePersist(1000);
        });
      },
      Math.max(delayMs, spacing),
    );
  }

  /** Writes the state file now if anything changed (and waits for a write in progress). */
  async flush(): Promise<void> {
    while (this.persisting) await this.persisting;
    if (!this.dirty || !this.manager) return;
    this.dirty = false;
    this.persisting = (async () => {
      const snap = this.manager!.snapshot();
      const state: AgentState = {
        format: STATE_FORMAT,
        epoch: snap.epoch ?? null,
        relays: snap.relays,
        managed: [...this.managed].sort(),
        expiring: [...this.reps]
          .filter(([, r]) => r.expiring.length > 0)
          .map(([id]) => id)
          .sort(),
      };
      // Renames in the config dir become durable before the state that relies on them.
      await syncDir(this.dir);
      await this.ensureDirs();
      await writeState(this.stateFile, state);
    })();
    try {
      await this.persisting;
      this.lastPersistAt = Date.now();
    } catch (err) {
      this.dirty = true;
      throw err;
    } finally {
      this.persisting = undefined;
    }
    if (this.dirty) this.schedulePersist();
  }

  // ---- /healthz, /metrics -------------------------------------------------------------------------

  private startHealth(addr: { host: string; port: number }): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'GET' && path === '/metrics') {
        void this.metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, {
              'content-type': this.metrics.registry.contentType,
              'cache-control': 'no-store',
            });
            res.end(text);
          },
          (err: Error) => {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { code: 'internal', message: err.message } }));
          },
        );
        return;
      }
      if (req.method !== 'GET' || path !== '/healthz') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'not_found', message: 'GET /healthz or /metrics' } }));
        return;
      }
      const h = this.health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(h));
    });
    this.healthServer = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        const where = `${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`;
        const why =
          err.code === 'EADDRINUSE'
            ? 'the address is already in use (EADDRINUSE)'
            : err.code === 'EADDRNOTAVAIL'
              ? 'no such local address (EADDRNOTAVAIL)'
              : err.message;
        reject(
          new AgentConfigError(`--health ${where}: ${why}; choose another host:port, or leave --health out`),
        );
      });
      server.listen(addr.port, addr.host, () => {
        server.removeAllListeners('error');
        this.log.info({ url: this.healthUrl }, 'agent health listening');
        resolve();
      });
    });
  }
}
