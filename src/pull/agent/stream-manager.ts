/**
 * Client of the autoconfig stream (docs/stream-protocol.md), modelled on ld-relay's StreamManager:
 * keeps one fleet's relays in sync over SSE and tells a handler what to add, update and delete.
 *
 * - sse-connection.ts: one request -> events or a StreamFailure;
 * - relay-state.ts: what is held per relay and the §4 version table;
 * - backoff.ts: the normal and extended curves, Retry-After, `reconnect` delays;
 * - expiry.ts: expiring-credential timers.
 *
 * Everything that waits uses the injected clock. Handler callbacks run one at a time, each awaited,
 * in stream order; expiry callbacks queue behind the event being applied. Logs carry ids and
 * versions only, never event data.
 */
import { createHash } from 'node:crypto';
import { type Clock, sleep } from '../../domain/clock.js';
import type { Random } from '../../domain/random.js';
import { canonicalJson } from '../../domain/relay.js';
import {
  DELETE_EVENT,
  EPOCH_HEADER,
  encodeHeldVersions,
  fingerprint,
  HELD_VERSIONS_HEADER,
  isValidRelayId,
  isValidVersion,
  PATCH_EVENT,
  type Parsed,
  PUT_EVENT,
  parseDelete,
  parsePatch,
  parsePut,
  parseReconnect,
  RECONNECT_EVENT,
  type RelayRep,
  relayIdFromPath,
  validateRelayRep,
} from '../protocol.js';
import { Backoff, parseRetryAfter } from './backoff.js';
import { ExpiryTimers } from './expiry.js';
import { decideDelete, decideUpsert, RelayState, sortIds } from './relay-state.js';
import { failureCause, openSse, type SseItem, StreamFailure } from './sse-connection.js';

export { StreamFailure } from './sse-connection.js';

type R = void | Promise<void>;

export type StreamState = 'initializing' | 'valid' | 'interrupted' | 'unauthorized' | 'closed';

export interface StreamStatus {
  state: StreamState;
  /**
   * Why the last connection ended: a FailureKind, or `reconnect` (the server asked) or `resync` (a
   * delta put did not match what we hold); `status` is the HTTP status; `cause` the failure in the
   * transport's words (e.g. `connect ECONNREFUSED 127.0.0.1:8080`, `HTTP 502`).
   */
  error?: { kind: string; status?: number; cause?: string; at: number };
}

export interface RelayStreamHandler {
  addRelay(rep: RelayRep): R;
  updateRelay(rep: RelayRep, previousVersion: number): R;
  /** `version` is null when a put omitted the relay. */
  deleteRelay(id: string, version: number | null): R;
  receivedAllRelays(): R;
  keyExpired(id: string, cred: { name: string; fingerprint: string }): R;
  onInvalidRelay?(id: string, reason: string): void;
  onError?(err: Error): void;
  onStatus?(s: StreamStatus): void;
}

/** A pino logger fits. */
export interface StreamLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface StreamManagerOptions {
  /** The stream's full URL, e.g. `https://bosun.example.com/v1/stream`. */
  url: string;
  /** The agent token, sent as `Authorization: Bearer <token>`. */
  token: string;
  handler: RelayStreamHandler;
  /** What the agent saved: these relays start live@version without an addRelay. */
  initialState?: { epoch: string; relays: Record<string, number> };
  clock: Clock;
  random: Random;
  fetch?: typeof fetch;
  logger?: StreamLogger;
}

/** 401/403 before the first put was applied. */
export class StreamAuthError extends Error {
  constructor(readonly status: number) {
    super(`the autoconfig stream refused the token (HTTP ${status})`);
    this.name = 'StreamAuthError';
  }
}

/** A redirect, another 4xx or a certificate error before the first put was applied. */
export class StreamConfigError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'StreamConfigError';
  }
}

/** close() came before the first put was applied. */
export class StreamClosedError extends Error {
  constructor() {
    super('the stream manager was closed');
    this.name = 'StreamClosedError';
  }
}

export const READ_TIMEOUT_MS = 45_000;
/** A connection healthy this long resets the normal backoff. */
export const HEALTHY_RESET_MS = 60_000;
/** The 4th `reconnect` within this window counts as a failure. */
export const RECONNECT_WINDOW_MS = 60_000;
const MAX_RECONNECTS_IN_WINDOW = 3;

const silentLogger: StreamLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** How a connection ended. */
type ConnectionEnd =
  | { kind: 'failure'; failure: StreamFailure }
  | { kind: 'reconnect'; delayMs: number | undefined }
  /** A delta put contradicted what we hold: reconnect at once for a full put. */
  | { kind: 'resync' }
  | { kind: 'closed' };

interface Connection {
  /** Whether resume headers were sent. */
  resumed: boolean;
  /** Whether a put (path `/`) arrived: patch/delete may only follow one. */
  sawPut: boolean;
  /** When its first put was applied. */
  healthySince: number | undefined;
}

/** A handler callback threw; carries the original error. */
class CallbackFailed extends Error {
  constructor(
    readonly callback: string,
    readonly original: Error,
  ) {
    super(`${callback} failed`);
  }
}
/** close() was called in the middle of an event. */
class Closed extends Error {}

const isAuthStatus = (s: number) => s === 401 || s === 403;
/** 3xx and 4xx other than 400/408/429: a configuration problem (§1). */
const isConfigStatus = (s: number) =>
  (s >= 300 && s < 400) || (s >= 400 && s < 500 && ![400, 408, 429].includes(s));

function digestOf(rep: RelayRep): string {
  return createHash('sha256').update(canonicalJson(rep)).digest('hex');
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class StreamManager {
  private readonly url: string;
  private readonly token: string;
  private readonly handler: RelayStreamHandler;
  private readonly clock: Clock;
  private readonly fetchFn: typeof fetch;
  private readonly log: StreamLogger;
  private readonly backoff: Backoff;
  private readonly state: RelayState;
  private readonly expiry: ExpiryTimers;
  /** Aborted by close(): ends the request and any wait. */
  private readonly abort = new AbortController();

  private closed = false;
  private started = false;
  private status: StreamState | undefined;
  private startPromise: Promise<void> | undefined;
  private settleStart: ((err?: Error) => void) | undefined;
  private closePromise: Promise<void> | undefined;
  private loop: Promise<void> = Promise.resolve();
  /** Serializes handler callbacks: the event being applied, then queued expiries. */
  private lock: Promise<unknown> = Promise.resolve();
  private skipResume = false;
  private reconnectTimes: number[] = [];

  constructor(opts: StreamManagerOptions) {
    this.url = opts.url;
    this.token = opts.token;
    this.handler = opts.handler;
    this.clock = opts.clock;
    this.fetchFn = opts.fetch ?? globalThis.fetch;
    this.log = opts.logger ?? silentLogger;
    this.backoff = new Backoff(opts.random);
    this.state = new RelayState(opts.initialState && sanitizeInitialState(opts.initialState, this.log));
    this.expiry = new ExpiryTimers(
      this.clock,
      (id, cred) => void this.exclusive(() => this.expire(id, cred)).catch(() => {}),
      (id, name) =>
        this.log.warn({ id, name }, 'autoconfig: repeated credential with another expiresAt; first kept'),
    );
  }

  /**
   * Connects and resolves once the first put is fully applied (after receivedAllRelays). Rejects
   * StreamAuthError / StreamConfigError if the server refuses us before that (the manager then
   * closes), StreamClosedError if close() comes first. Transient failures are retried, never
   * reported here. A second call returns the same promise.
   */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    this.startPromise = new Promise<void>((resolve, reject) => {
      this.settleStart = (err) => {
        this.settleStart = undefined;
        if (err) reject(err);
        else resolve();
      };
    });
    // Callers need not await start() before close(): never an unhandled rejection.
    this.startPromise.catch(() => {});
    if (this.closed) {
      this.settleStart?.(new StreamClosedError());
      return this.startPromise;
    }
    this.setStatus({ state: 'initializing' });
    this.loop = this.run().catch((err) => {
      this.log.error({ err: toError(err).message }, 'autoconfig: stream loop crashed');
    });
    return this.startPromise;
  }

  /**
   * What the agent saves and later passes back as `initialState`: the epoch of the last fully
   * applied put and the live relays' versions (no secrets). It reflects only recorded state, i.e.
   * changes whose callback has resolved; inside a callback it still shows the state before it.
   */
  snapshot(): { epoch: string | undefined; relays: Record<string, number> } {
    return { epoch: this.state.epoch, relays: Object.fromEntries(this.state.liveVersions()) };
  }

  /**
   * Stops for good: aborts the request and any wait at once, cancels expiry timers, rejects a
   * pending start() with StreamClosedError. Resolves after a callback in progress returns; no
   * callback runs after that. Idempotent.
   */
  close(): Promise<void> {
    this.closePromise ??= this.shutdown(new StreamClosedError(), undefined);
    return this.closePromise;
  }

  private async shutdown(startError: Error, error: StreamStatus['error']): Promise<void> {
    this.closed = true;
    this.abort.abort(startError);
    this.expiry.cancelAll();
    this.settleStart?.(startError);
    await this.lock.catch(() => {});
    await this.loop;
    this.setStatus(error ? { state: 'closed', error } : { state: 'closed' });
    this.log.info({}, 'autoconfig: stream closed');
  }

  // ---- connection loop -------------------------------------------------------------------------

  private async run(): Promise<void> {
    while (!this.closed) {
      const conn: Connection = { resumed: false, sawPut: false, healthySince: undefined };
      const end = await this.connect(conn);
      if (this.closed || end.kind === 'closed') return;
      if (conn.healthySince !== undefined && this.clock.now() - conn.healthySince >= HEALTHY_RESET_MS) {
        this.backoff.resetNormal();
      }
      const wait = this.afterConnection(end);
      if (wait === undefined) return;
      if (wait > 0) {
        try {
          await sleep(this.clock, wait, this.abort.signal);
        } catch {
          return;
        }
      }
    }
  }

  /** Reports how the connection ended; returns the wait before the next one (undefined: stop). */
  private afterConnection(end: Exclude<ConnectionEnd, { kind: 'closed' }>): number | undefined {
    const now = this.clock.now();
    if (end.kind === 'resync') {
      this.skipResume = true;
      this.log.warn({}, 'autoconfig: delta put names relays not held; reconnecting for a full put');
      this.setStatus({
        state: this.started ? 'interrupted' : 'initializing',
        error: { kind: 'resync', at: now },
      });
      return 0;
    }
    let failure: StreamFailure;
    if (end.kind === 'reconnect') {
      this.reconnectTimes = this.reconnectTimes.filter((t) => now - t < RECONNECT_WINDOW_MS);
      this.reconnectTimes.push(now);
      if (this.reconnectTimes.length <= MAX_RECONNECTS_IN_WINDOW) {
        const wait = this.backoff.reconnectWait(end.delayMs);
        this.log.info({ waitMs: Math.round(wait) }, 'autoconfig: server asked to reconnect');
        this.setStatus({
          state: this.started ? 'interrupted' : 'initializing',
          error: { kind: 'reconnect', at: now },
        });
        return wait;
      }
      failure = new StreamFailure('reconnects', 'too many reconnect events');
    } else {
      failure = end.failure;
    }

    const status = failure.status;
    const cause = failureCause(failure);
    const error: NonNullable<StreamStatus['error']> = {
      kind: failure.kind,
      ...(status !== undefined ? { status } : {}),
      ...(cause !== undefined ? { cause } : {}),
      at: now,
    };
    const auth = status !== undefined && failure.kind === 'http' && isAuthStatus(status);
    const config =
      failure.kind === 'tls' || (failure.kind === 'http' && status !== undefined && isConfigStatus(status));
    if (!this.started && (auth || config)) {
      const err = auth
        ? new StreamAuthError(status!)
        : new StreamConfigError(
            failure.kind === 'tls'
              ? `TLS certificate error: ${cause}`
              : `the autoconfig stream answered HTTP ${status}`,
            status,
          );
      this.log.error(
        { status, kind: failure.kind, cause },
        'autoconfig: stream refused before the first put; stopping',
      );
      this.closePromise ??= this.shutdown(err, error);
      return undefined;
    }
    const retryAfterMs =
      status === 429 || status === 503 ? parseRetryAfter(failure.retryAfter, now) : undefined;
    const wait = this.backoff.failure({ extended: auth || config, retryAfterMs });
    this.log.warn(
      { kind: failure.kind, status, cause, waitMs: Math.round(wait), extended: this.backoff.extended },
      'autoconfig: stream interrupted',
    );
    this.setStatus({ state: !this.started ? 'initializing' : auth ? 'unauthorized' : 'interrupted', error });
    return wait;
  }

  private requestHeaders(conn: Connection): Record<string, string> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.token}`,
      Accept: 'text/event-stream',
      'Cache-Control': 'no-cache',
    };
    const skip = this.skipResume;
    this.skipResume = false;
    const live = this.state.liveVersions();
    if (skip || this.state.epoch === undefined || live.length === 0) return headers;
    const held = encodeHeldVersions(live);
    if (held === undefined) return headers;
    headers[EPOCH_HEADER] = this.state.epoch;
    headers[HELD_VERSIONS_HEADER] = held;
    conn.resumed = true;
    return headers;
  }

  private async connect(conn: Connection): Promise<ConnectionEnd> {
    const events = openSse({
      url: this.url,
      headers: this.requestHeaders(conn),
      fetch: this.fetchFn,
      clock: this.clock,
      signal: this.abort.signal,
      readTimeoutMs: READ_TIMEOUT_MS,
    });
    this.log.debug({ resumed: conn.resumed }, 'autoconfig: connecting');
    try {
      for await (const item of events) {
        if (this.closed) return { kind: 'closed' };
        if (item.type === 'retry') {
          this.backoff.setRetryField(item.ms);
          continue;
        }
        const end = await this.exclusive(() => this.dispatch(item, conn));
        if (end) return end;
      }
      return { kind: 'failure', failure: new StreamFailure('eof', 'the server closed the stream') };
    } catch (err) {
      if (this.closed) return { kind: 'closed' };
      if (err instanceof StreamFailure) return { kind: 'failure', failure: err };
      // A bug must not stop the stream for good: retry it like any failure.
      this.log.error({ err: toError(err).message }, 'autoconfig: unexpected error');
      return { kind: 'failure', failure: new StreamFailure('internal', 'unexpected error', { cause: err }) };
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => {});
    return run;
  }

  // ---- events ----------------------------------------------------------------------------------

  private async dispatch(
    item: Extract<SseItem, { type: 'event' }>,
    conn: Connection,
  ): Promise<ConnectionEnd | undefined> {
    if (this.closed) return { kind: 'closed' };
    this.state.pruneTombstones(this.clock.now());
    try {
      switch (item.event) {
        case PUT_EVENT:
          return await this.onPut(item.data, conn);
        case PATCH_EVENT:
          return await this.onPatch(item.data, conn);
        case DELETE_EVENT:
          return await this.onDelete(item.data, conn);
        case RECONNECT_EVENT: {
          const { reason, delayMs } = parseReconnect(item.data);
          this.log.info({ reason, delayMs }, 'autoconfig: reconnect event');
          return { kind: 'reconnect', delayMs };
        }
        default:
          this.log.debug({ event: item.event ?? 'message' }, 'autoconfig: unknown event ignored');
          return undefined;
      }
    } catch (err) {
      if (err instanceof Closed) return { kind: 'closed' };
      if (err instanceof CallbackFailed) {
        this.reportError(err.original);
        return {
          kind: 'failure',
          failure: new StreamFailure('callback', err.message, { cause: err.original }),
        };
      }
      throw err;
    }
  }

  private malformed(event: string, reason: string): ConnectionEnd {
    this.log.warn({ event, reason }, 'autoconfig: malformed event; restarting');
    return { kind: 'failure', failure: new StreamFailure('malformed', `malformed ${event}: ${reason}`) };
  }

  private async onPut(data: string, conn: Connection): Promise<ConnectionEnd | undefined> {
    const parsed = parsePut(data);
    if (!parsed.ok) return this.malformed(PUT_EVENT, parsed.reason);
    const put = parsed.value;
    if (put.path !== '/') {
      this.log.debug({}, 'autoconfig: put with a path other than / ignored');
      return undefined;
    }
    conn.sawPut = true;

    const unchanged = put.delta ? put.unchanged : [];
    if (unchanged.length > 0) {
      const consistent =
        conn.resumed &&
        put.epoch === this.state.epoch &&
        unchanged.every((id) => this.state.get(id)?.kind === 'live');
      if (!consistent) {
        if (conn.resumed) return { kind: 'resync' };
        return this.malformed(PUT_EVENT, 'unchanged without resume headers');
      }
    }

    const epochReset =
      put.epoch !== undefined && this.state.epoch !== undefined && put.epoch !== this.state.epoch;
    if (epochReset) {
      this.log.info({}, 'autoconfig: new epoch; old versions void');
      this.state.dropTombstones();
    }

    const valid = new Map<string, RelayRep>();
    const refused = new Map<string, string>();
    for (const [key, value] of Object.entries(put.relays)) {
      const rep = validateRelayRep(value, key);
      if (rep.ok) valid.set(key, rep.value);
      else refused.set(key, rep.reason);
    }
    const membership = new Set([...valid.keys(), ...refused.keys(), ...unchanged]);
    const omitted = this.state.omittedBy(membership);
    this.log.info(
      { relays: valid.size, refused: refused.size, unchanged: unchanged.length, omitted: omitted.length },
      put.delta ? 'autoconfig: delta put' : 'autoconfig: put',
    );

    const now = this.clock.now();
    for (const id of omitted) {
      const held = this.state.get(id)!;
      await this.call('deleteRelay', () => this.handler.deleteRelay(id, null));
      this.state.setTomb(id, held.version, now);
      this.expiry.forget(id);
      this.log.info({ id, version: held.version }, 'autoconfig: relay deleted (omitted by put)');
    }
    for (const id of sortIds([...valid.keys(), ...refused.keys()])) {
      const rep = valid.get(id);
      if (rep) await this.upsert(rep, epochReset);
      else this.invalid(id, refused.get(id)!);
    }
    await this.call('receivedAllRelays', () => this.handler.receivedAllRelays());

    if (put.epoch !== undefined) this.state.epoch = put.epoch;
    conn.healthySince ??= this.clock.now();
    this.backoff.putApplied();
    if (!this.started) {
      this.started = true;
      this.settleStart?.();
    }
    if (this.status !== 'valid') this.setStatus({ state: 'valid' });
    return undefined;
  }

  /**
   * What a patch or delete frame is about, once it is well-formed, follows the first put and names
   * `relays/<id>` with an id `accept`s. A ConnectionEnd restarts the stream; null ignores the frame.
   */
  private frameOf<T extends { path: string }>(
    event: string,
    parsed: Parsed<T>,
    conn: Connection,
    accept: (id: string) => boolean,
  ): { id: string; value: T } | ConnectionEnd | null {
    if (!parsed.ok) return this.malformed(event, parsed.reason);
    if (!conn.sawPut) return this.malformed(event, 'before the first put');
    const id = relayIdFromPath(parsed.value.path);
    if (id === undefined || !accept(id)) {
      this.log.debug({}, `autoconfig: ${event} path not relays/<id>; ignored`);
      return null;
    }
    return { id, value: parsed.value };
  }

  private async onPatch(data: string, conn: Connection): Promise<ConnectionEnd | undefined> {
    // Any id: a bad one is refused below, with its reason.
    const frame = this.frameOf(PATCH_EVENT, parsePatch(data), conn, () => true);
    if (frame === null || 'kind' in frame) return frame ?? undefined;
    const { id, value } = frame;
    const rep = validateRelayRep(value.data, id);
    if (!rep.ok) {
      this.invalid(id, rep.reason);
      return { kind: 'failure', failure: new StreamFailure('refused', 'refused patch') };
    }
    await this.upsert(rep.value, false);
    return undefined;
  }

  private async onDelete(data: string, conn: Connection): Promise<ConnectionEnd | undefined> {
    const frame = this.frameOf(DELETE_EVENT, parseDelete(data), conn, isValidRelayId);
    if (frame === null || 'kind' in frame) return frame ?? undefined;
    const { id } = frame;
    const { version } = frame.value;
    const decision = decideDelete(this.state.get(id), version);
    if (decision === 'delete') {
      await this.call('deleteRelay', () => this.handler.deleteRelay(id, version));
      this.expiry.forget(id);
      this.log.info({ id, version }, 'autoconfig: relay deleted');
    }
    if (decision !== 'none') this.state.setTomb(id, version, this.clock.now());
    return undefined;
  }

  /** Applies one put entry or patch by the §4 table. */
  private async upsert(rep: RelayRep, epochReset: boolean): Promise<void> {
    const { id, version } = rep;
    const digest = digestOf(rep);
    const held = this.state.get(id);
    const decision = decideUpsert(held, version, digest, epochReset);
    if (decision.action === 'none') {
      if (decision.contentDiffers) {
        this.log.warn({ id, version }, 'autoconfig: same version with different content; ignored');
      }
      return;
    }
    const out: RelayRep = { ...rep, expiring: this.expiry.effective(id, rep.expiring) };
    if (decision.action === 'add') {
      await this.call('addRelay', () => this.handler.addRelay(out));
    } else {
      await this.call('updateRelay', () => this.handler.updateRelay(out, decision.previousVersion));
    }
    this.state.setLive(id, version, out, digest);
    this.expiry.commit(id, rep.expiring);
    this.log.info(
      { id, version, ...(decision.action === 'update' ? { previousVersion: decision.previousVersion } : {}) },
      decision.action === 'add' ? 'autoconfig: relay added' : 'autoconfig: relay updated',
    );
  }

  /** An expiry timer fired: if the held rep still lists the credential, report it once and drop it. */
  private async expire(id: string, cred: { name: string; value: string }): Promise<void> {
    if (this.closed) return;
    const held = this.state.get(id);
    if (held?.kind !== 'live' || !held.rep) return;
    const rest = held.rep.expiring.filter((c) => c.name !== cred.name || c.value !== cred.value);
    if (rest.length === held.rep.expiring.length) return;
    this.state.setLive(id, held.version, { ...held.rep, expiring: rest }, held.digest);
    const fp = fingerprint(cred.value);
    this.log.info({ id, name: cred.name, fingerprint: fp }, 'autoconfig: credential expired');
    try {
      await this.call('keyExpired', () => this.handler.keyExpired(id, { name: cred.name, fingerprint: fp }));
    } catch (err) {
      if (err instanceof CallbackFailed) this.reportError(err.original);
    }
  }

  // ---- callbacks -------------------------------------------------------------------------------

  /** Runs one handler callback unless closed; a throw becomes CallbackFailed. */
  private async call(name: string, fn: () => R): Promise<void> {
    if (this.closed) throw new Closed();
    try {
      await fn();
    } catch (err) {
      this.log.warn({ callback: name }, 'autoconfig: handler callback failed');
      throw new CallbackFailed(name, toError(err));
    }
  }

  private invalid(id: string, reason: string): void {
    this.log.warn({ id: isValidRelayId(id) ? id : '(invalid)', reason }, 'autoconfig: relay refused');
    if (this.closed) return;
    try {
      this.handler.onInvalidRelay?.(id, reason);
    } catch (err) {
      this.log.warn({ callback: 'onInvalidRelay', err: toError(err).message }, 'autoconfig: callback threw');
    }
  }

  private reportError(err: Error): void {
    if (this.closed) return;
    try {
      this.handler.onError?.(err);
    } catch {
      // onError must not break the stream.
    }
  }

  private setStatus(s: StreamStatus): void {
    this.status = s.state;
    if (this.closed && s.state !== 'closed') return;
    try {
      this.handler.onStatus?.(s);
    } catch {
      // onStatus must not break the stream.
    }
  }
}

/** Drops saved entries that could not have come from the stream (bad id or version). */
function sanitizeInitialState(
  initial: { epoch: string; relays: Record<string, number> },
  log: StreamLogger,
): { epoch: string; relays: Record<string, number> } {
  const relays: Record<string, number> = {};
  for (const [id, version] of Object.entries(initial.relays)) {
    if (isValidRelayId(id) && isValidVersion(version)) relays[id] = version;
    else log.warn({ id: isValidRelayId(id) ? id : '(invalid)' }, 'autoconfig: saved relay entry ignored');
  }
  return { epoch: initial.epoch, relays };
}
