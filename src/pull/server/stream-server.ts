/**
 * Server of the autoconfig stream, `GET /v1/stream` (docs/stream-protocol.md §1–§3, §8, §9): streams
 * one fleet's relays to agent tokens over SSE.
 *
 * - One permanent notifier subscription: change notifications name relays. A commit of this process
 *   carries the rows it wrote, and those are offered as they are (never read back); a change of
 *   another process is read once by id, and on SQLite a hole in the activity ids seen (a commit
 *   nobody notified us of: another process on the same file) is caught up from the log. Each
 *   relay's rep is serialized once and offered to every fleet's hub (fleet-hub.ts), which turns it
 *   into one frame written to all of that fleet's connections — never one JSON.stringify per
 *   connection.
 * - Admission before any byte of the stream: agent tokens only (401/403), at most 4 streams per
 *   token (429), a total cap and shutdown (503), each with Retry-After.
 * - Writes to a connection within one turn of the event loop go out in one socket write: its socket is
 *   corked at the first and uncorked at the end of the turn (one setImmediate for all connections).
 *   Node's HTTP writes already share one write within a tick; this also joins the frames of commits
 *   made in different callbacks of the same turn (several requests read from the network at once).
 * - Heartbeats (`: hb`) on one timer for all connections; revoked or expired tokens are re-checked
 *   every few seconds and their streams closed; a connection whose unsent output passes a bound is
 *   dropped (it resumes with a delta put), so a slow agent never grows memory without bound.
 * - close(): `reconnect` to every connection that had its put, then end them all.
 *
 * Logs name token ids, fleets and counts; never event data.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { TokenWatch } from '../../auth/token-watch.js';
import { TokenService } from '../../auth/tokens.js';
import { type Activity, RELAY_CHANGE_TYPES } from '../../domain/activity.js';
import type { Clock, TimerHandle } from '../../domain/clock.js';
import { CoalescedRun } from '../../domain/coalesced-run.js';
import { BosunError, type ErrorCode } from '../../domain/errors.js';
import { type Random, systemRandom } from '../../domain/random.js';
import type { Relay } from '../../domain/relay.js';
import { refuseForNow } from '../../http/errors.js';
import { defineRoute } from '../../http/routes/define.js';
import { principalOf } from '../../http/routes/params.js';
import type { Service } from '../../lifecycle/group.js';
import type { Notifier } from '../../notifier.js';
import type { BlossomS3 } from '../../push/zooid/body.js';
import type { Store } from '../../store/port.js';
import { EPOCH_HEADER, HELD_VERSIONS_HEADER, parseHeldVersions, STREAM_PATH } from '../protocol.js';
import { FleetHub, type HubConn } from './fleet-hub.js';
import { HEARTBEAT_FRAME, reconnectFrame, repJson } from './rep.js';

/** The cursors row holding the database's stream epoch (created by migration 3). */
export const EPOCH_CURSOR = 'autoconfig:epoch';

export interface StreamServerOptions {
  /** Draws a new database epoch (§4) when there is none. Default systemRandom. */
  random?: Random;
  store: Store;
  notifier: Notifier;
  clock: Clock;
  logger: Logger;
  blossomS3: BlossomS3 | null;
  /** `: hb` this often (the protocol allows 5–15 s). Default 15 s. */
  heartbeatMs?: number;
  /**
   * `retry:` written at the start of every stream (§2): the agents' reconnect base, and each
   * stream that opens resets their backoff, so after a bosun restart they come back within about
   * this long instead of on a curve grown by earlier failures. Default 1 s.
   */
  retryMs?: number;
  /** Concurrent streams per token (§9.5). Default 4. */
  maxStreamsPerToken?: number;
  /** Concurrent streams on this server before shedding load with 503. Default 20 000. */
  maxStreams?: number;
  /** Revoked/expired tokens are found this often; their streams close (§9.4: within 5 s). Default 2 s. */
  tokenCheckMs?: number;
  /** Full re-read of each streamed fleet, in case a notification was missed. Default 60 s. */
  resyncMs?: number;
  /** Joiners this soon after a read of their fleet are served without another (storms). Default 1 s. */
  reuseReadMs?: number;
  /** A connection with more unsent bytes than this (beyond its put) is dropped. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** `delayMs` of the `reconnect` sent on shutdown. Default 10 s. */
  reconnectDelayMs?: number;
  /** Retry-After of a 429 or 503. Default 5 s. */
  retryAfterSeconds?: number;
  /** Called with the number of stream events (not heartbeats) just written. */
  onSent?: (events: number) => void;
  /** How long close() waits for clients to go before destroying their sockets. Default 2 s. */
  closeWaitMs?: number;
}

const CHANGE_TYPES: ReadonlySet<string> = new Set(RELAY_CHANGE_TYPES);
const PAGE = 1000;

interface TokenGroup {
  id: string;
  fleet: string;
  conns: Set<StreamConn>;
  unwatch: () => void;
}

/** One SSE response. */
class StreamConn implements HubConn {
  held: Map<string, number> | undefined;
  closed = false;
  /** Has had its put: gets every frame of its hub, and `reconnect` on shutdown. */
  live = false;
  readonly connectedAt: number;
  private limit: number;
  /** Corked since a write of this turn; `onCork` uncorks it at the end of the turn. */
  private corked = false;

  constructor(
    readonly res: ServerResponse,
    readonly group: TokenGroup,
    readonly hub: FleetHub,
    private readonly maxBuffered: number,
    private readonly onSlow: (conn: StreamConn) => void,
    private readonly onCork: (conn: StreamConn) => void,
    now: number,
  ) {
    this.limit = maxBuffered;
    this.connectedAt = now;
  }

  write(frame: Buffer): boolean {
    if (this.closed) return false;
    if (!this.corked) {
      // Checked at a turn's first write: what is still unsent from earlier turns. Within the turn
      // the corked frames count too, and a burst (a fleet apply) is not slowness.
      if (this.res.writableLength > this.limit) {
        this.onSlow(this);
        this.destroy();
        return false;
      }
      this.corked = true;
      this.res.cork();
      this.onCork(this);
    }
    this.res.write(frame);
    return true;
  }

  /** Sends what this turn wrote (end() has already flushed it, destroy() dropped it). */
  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    if (!this.res.destroyed && this.res.writableCorked > 0) this.res.uncork();
  }

  joined(putBytes: number): void {
    this.live = true;
    // A big put may still be draining when the next change comes: that is not slowness.
    this.limit = this.maxBuffered + putBytes;
  }

  end(frame?: Buffer): void {
    if (this.closed) return;
    this.closed = true;
    if (frame) this.res.end(frame);
    else this.res.end();
  }

  destroy(): void {
    this.closed = true;
    this.res.destroy();
  }
}

export class StreamServer {
  private readonly options: Required<Omit<StreamServerOptions, 'blossomS3'>> & {
    blossomS3: BlossomS3 | null;
  };
  private readonly hubs = new Map<string, FleetHub>();
  private readonly groups = new Map<string, TokenGroup>();
  private readonly all = new Set<StreamConn>();
  private readonly dirty = new Set<string>();
  /**
   * The highest activity id accounted for (notified, or read from the log) while some fleet is
   * streamed; undefined while none is (a new hub's full read covers what came before).
   */
  private seen: number | undefined;
  /** Holes in the ids notified, [after, before): read from the log to find the relays they changed. */
  private gaps: [number, number][] = [];
  /** Log reads made to catch up a gap (stats, tests). */
  catchUps = 0;
  /** Reads of changed relays, one at a time; notifications meanwhile coalesce into the next. */
  private readonly changes = new CoalescedRun({
    task: () => this.readChanges(),
    onError: (err) => {
      // Those changes are lost to us: every fleet is re-read instead.
      this.options.logger.error({ err }, 'stream: reading changed relays failed; re-reading every fleet');
      for (const hub of this.hubs.values()) hub.resync();
      if ((this.dirty.size > 0 || this.gaps.length > 0) && this.hubs.size > 0) this.changes.request();
    },
    stopped: () => false,
  });
  private closing: Promise<void> | undefined;
  private epochValue: Promise<string> | undefined;
  private unsubscribe: (() => void) | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  private readonly tokens: TokenWatch;
  /** Connections dropped for being too slow (stats, tests). */
  slowDrops = 0;
  /** Connections corked this turn of the event loop, uncorked together by one setImmediate. */
  private corked: StreamConn[] = [];
  private readonly onCork = (c: StreamConn): void => {
    if (this.corked.push(c) === 1) setImmediate(this.uncorkAll);
  };
  private readonly uncorkAll = (): void => {
    const conns = this.corked;
    this.corked = [];
    for (const c of conns) c.uncork();
  };
  /** One function for every connection (not a closure each: streams are many and long-lived). */
  private readonly onSlow = (c: StreamConn): void => {
    this.slowDrops++;
    this.options.logger.warn(
      { tokenId: c.group.id, fleet: c.group.fleet, buffered: c.res.writableLength },
      'stream dropped: the agent reads too slowly (it will resume)',
    );
  };

  constructor(options: StreamServerOptions) {
    this.options = {
      heartbeatMs: 15_000,
      retryMs: 1_000,
      maxStreamsPerToken: 4,
      maxStreams: 20_000,
      tokenCheckMs: 2_000,
      resyncMs: 60_000,
      reuseReadMs: 1_000,
      maxBufferedBytes: 1024 * 1024,
      reconnectDelayMs: 10_000,
      retryAfterSeconds: 5,
      closeWaitMs: 2_000,
      onSent: () => {},
      random: systemRandom,
      ...options,
    };
    const tokens = new TokenService(this.options.store, this.options.clock);
    this.tokens = new TokenWatch({
      isLive: (credential) => tokens.isLive(credential),
      clock: this.options.clock,
      logger: this.options.logger,
      intervalMs: this.options.tokenCheckMs,
    });
    this.unsubscribe = this.options.notifier.subscribe((activities, relays) =>
      this.notified(activities, relays),
    );
  }

  /**
   * A commit's relays go to the hubs as notified when the commit carries them (its rows, as
   * committed: the hubs' version check drops one older than what they sent); the others are read.
   */
  private notified(activities: readonly Activity[], relays: readonly Relay[] | undefined): void {
    if (this.hubs.size === 0) {
      this.seen = undefined;
      return;
    }
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (const a of activities) {
      if (a.id < min) min = a.id;
      if (a.id > max) max = a.id;
    }
    // Where commits can land out of id order (PostgreSQL) a hole is mostly a commit still in flight,
    // and other processes' commits reach us through the change feed anyway: no gap reads there.
    if (this.options.store.serialCommits && this.seen !== undefined && min > this.seen + 1)
      this.gaps.push([this.seen, min]);
    if (this.seen === undefined || max > this.seen) this.seen = max;
    // A fleet apply carries thousands: find them by id (most commits carry one).
    const byId = relays && relays.length > 1 ? new Map(relays.map((r) => [r.id, r])) : undefined;
    const one = relays?.length === 1 ? relays[0] : undefined;
    let offered: Set<string> | undefined;
    for (const a of activities) {
      if (!CHANGE_TYPES.has(a.type)) continue;
      const relay = byId ? byId.get(a.relayId) : one?.id === a.relayId ? one : undefined;
      if (!relay) {
        this.dirty.add(a.relayId);
        continue;
      }
      offered ??= new Set();
      if (offered.has(relay.id)) continue;
      offered.add(relay.id);
      this.offer(relay);
    }
    if (this.dirty.size > 0 || this.gaps.length > 0) this.changes.request();
  }

  /** Offers a relay to every hub, its rep serialized at most once. */
  private offer(relay: Relay): void {
    let json: string | undefined;
    const lazy = () => {
      json ??= repJson(relay, this.options.blossomS3);
      return json;
    };
    for (const hub of this.hubs.values()) hub.offer(relay, lazy);
  }

  /** Registers `GET /v1/stream` (authentication is the app's /v1 preHandler). */
  register(app: FastifyInstance): void {
    // Streams live long: one shared request logger (warn and up) instead of a child per stream.
    let streamLog: FastifyBaseLogger | undefined;
    defineRoute(
      app,
      {
        method: 'GET',
        url: STREAM_PATH,
        tag: 'agents',
        access: 'agent',
        summary: "The autoconfig stream of the agent token's fleet (Server-Sent Events)",
        responses: {
          200: { description: 'an SSE stream of relay configs', contentType: 'text/event-stream' },
        },
        options: {
          logLevel: 'warn',
          childLoggerFactory: (logger, _bindings, opts) => {
            streamLog ??= logger.child({ route: STREAM_PATH }, opts);
            return streamLog;
          },
        },
      },
      (request, reply) => this.handle(request, reply),
    );
    // Node 20's fetch opens a spare connection after an aborted stream (every agent reconnect), and
    // server.close() waits for a connection that never sent a request (it is not "idle") until the
    // headers timeout. On close, such connections are dropped: they hold no request to lose.
    const fresh = new Set<Socket>();
    app.server.on('connection', (socket: Socket) => {
      fresh.add(socket);
      socket.once('close', () => fresh.delete(socket));
    });
    app.server.on('request', (request: { socket: Socket }) => fresh.delete(request.socket));
    app.addHook('preClose', async () => {
      for (const socket of fresh) socket.destroy();
      fresh.clear();
    });
  }

  /** Runs with the peer's other services; its close drains the streams (before HTTP closes). */
  service(): Service {
    return {
      name: 'stream',
      run: (signal) =>
        new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          else signal.addEventListener('abort', () => resolve(), { once: true });
        }),
      close: () => this.close(),
    };
  }

  stats(): { streams: number; joining: number; fleets: number; tokens: number; slowDrops: number } {
    let joining = 0;
    for (const hub of this.hubs.values()) joining += hub.joining;
    return {
      streams: this.all.size,
      joining,
      fleets: this.hubs.size,
      tokens: this.groups.size,
      slowDrops: this.slowDrops,
    };
  }

  /** Connected streams (admin view; at most 1000): token id, fleet, since when, put received. */
  agents(): { token: string; fleet: string; connectedAt: string; synced: boolean }[] {
    const out = [];
    for (const c of this.all) {
      out.push({
        token: c.group.id,
        fleet: c.group.fleet,
        connectedAt: new Date(c.connectedAt).toISOString(),
        synced: c.live,
      });
      if (out.length >= 1000) break;
    }
    return out;
  }

  /** The database's data lineage (§4 epoch): made once per database by migration 3. */
  epoch(): Promise<string> {
    this.epochValue ??= this.readEpoch().catch((err) => {
      this.epochValue = undefined;
      throw err;
    });
    return this.epochValue;
  }

  private async readEpoch(): Promise<string> {
    let n = await this.options.store.getCursor(EPOCH_CURSOR);
    if (n === 0) {
      // Deleted by an operator after restoring a backup: a new lineage.
      await this.options.store.setCursor(EPOCH_CURSOR, newEpoch(this.options.random));
      n = await this.options.store.getCursor(EPOCH_CURSOR);
    }
    return `e-${n.toString(36)}`;
  }

  async handle(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const principal = principalOf(request);
    if (principal.role !== 'agent') {
      throw new BosunError(
        'forbidden',
        'the autoconfig stream needs an agent token (bosun token create --role agent --fleet <fleet>)',
      );
    }
    const epoch = await this.epoch();
    // From here to registration nothing awaits, so the limits below hold.
    if (this.closing) return this.refuse(reply, 'unavailable', 'bosun is shutting down; reconnect later');
    if (this.all.size >= this.options.maxStreams) {
      this.options.logger.warn({ streams: this.all.size }, 'stream refused: server at its stream limit');
      return this.refuse(reply, 'unavailable', 'this server has too many streams; retry later');
    }
    const existing = this.groups.get(principal.tokenId);
    if (existing && existing.conns.size >= this.options.maxStreamsPerToken) {
      this.options.logger.warn(
        { tokenId: principal.tokenId },
        'stream refused: too many streams for this token',
      );
      return this.refuse(
        reply,
        'too_many_requests',
        `at most ${this.options.maxStreamsPerToken} concurrent streams per token`,
      );
    }
    const held = resumeState(request, epoch);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      // The stream never ends on its own; when we end it (drain, revocation), close the socket.
      Connection: 'close',
    });
    res.write(`retry: ${this.options.retryMs}\n\n`);
    res.socket?.setNoDelay(true);
    res.socket?.setKeepAlive(true, 30_000);

    const group = this.group(principal.tokenId, principal.fleet);
    const hub = this.hub(principal.fleet);
    const conn = new StreamConn(
      res,
      group,
      hub,
      this.options.maxBufferedBytes,
      this.onSlow,
      this.onCork,
      this.options.clock.now(),
    );
    conn.held = held;
    group.conns.add(conn);
    this.all.add(conn);
    res.once('close', () => this.remove(conn));
    this.options.logger.debug(
      { tokenId: group.id, fleet: group.fleet, resume: held !== undefined },
      'stream opened',
    );
    hub.join(conn);
  }

  /**
   * Sends `reconnect` to every stream that had its put, ends them all and refuses new ones (503).
   * Waits up to closeWaitMs for clients to go, then destroys what is left. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.heartbeatTimer) this.options.clock.clearTimeout(this.heartbeatTimer);
    this.tokens.close();
    for (const hub of this.hubs.values()) hub.dispose();
    this.hubs.clear();
    const frame = reconnectFrame('shutdown', this.options.reconnectDelayMs);
    const open = [...this.all];
    if (open.length > 0)
      this.options.logger.info({ streams: open.length }, 'stream server closing: agents told to reconnect');
    const gone = open.map((c) => new Promise<void>((resolve) => c.res.once('close', () => resolve())));
    for (const conn of open) conn.end(conn.live ? frame : undefined);
    // Real time on purpose: sockets close in real time whatever clock the peer runs on.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(gone),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.closeWaitMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    for (const conn of this.all) conn.destroy();
  }

  private refuse(reply: FastifyReply, code: ErrorCode, message: string): FastifyReply {
    return refuseForNow(reply, code, message, this.options.retryAfterSeconds);
  }

  private group(tokenId: string, fleet: string): TokenGroup {
    let group = this.groups.get(tokenId);
    if (!group) {
      const conns = new Set<StreamConn>();
      // Revoked or expired since it connected (§9.4): its streams close.
      const unwatch = this.tokens.watch({ kind: 'token', id: tokenId }, () => {
        if (conns.size === 0) return;
        this.options.logger.info(
          { tokenId, fleet, streams: conns.size },
          'token revoked or expired: its streams closed',
        );
        for (const conn of [...conns]) conn.end();
      });
      group = { id: tokenId, fleet, conns, unwatch };
      this.groups.set(tokenId, group);
    }
    return group;
  }

  private hub(fleet: string): FleetHub {
    let hub = this.hubs.get(fleet);
    if (!hub) {
      hub = new FleetHub(fleet, {
        clock: this.options.clock,
        onSent: this.options.onSent,
        epoch: () => this.epoch(),
        readFleet: (f) => this.readFleet(f),
        readRelays: (ids) => this.readRelays(ids),
        repJson: (relay) => repJson(relay, this.options.blossomS3),
        resyncMs: this.options.resyncMs,
        reuseReadMs: this.options.reuseReadMs,
        retryMs: 1_000,
        onError: (err, f) => this.options.logger.error({ err, fleet: f }, 'stream: reading the fleet failed'),
        onEmpty: (h) => {
          if (this.hubs.get(h.fleet) === h) this.hubs.delete(h.fleet);
          if (this.hubs.size === 0) this.seen = undefined;
          h.dispose();
        },
      });
      this.hubs.set(fleet, hub);
      this.armHeartbeat();
    }
    return hub;
  }

  private remove(conn: StreamConn): void {
    conn.closed = true;
    if (!this.all.delete(conn)) return;
    conn.hub.leave(conn);
    conn.group.conns.delete(conn);
    if (conn.group.conns.size === 0 && this.groups.get(conn.group.id) === conn.group) {
      this.groups.delete(conn.group.id);
      conn.group.unwatch();
    }
    this.options.logger.debug({ tokenId: conn.group.id, fleet: conn.group.fleet }, 'stream closed');
  }

  // ---- changes ----------------------------------------------------------------------------------

  /**
   * Catches up the gaps from the log, then reads the changed relays and offers each to every hub,
   * until no change is left.
   */
  private async readChanges(): Promise<void> {
    while ((this.dirty.size > 0 || this.gaps.length > 0) && this.hubs.size > 0) {
      for (const [after, before] of this.gaps.splice(0)) await this.readGap(after, before);
      if (this.dirty.size === 0) continue;
      const ids = [...this.dirty];
      this.dirty.clear();
      for (const relay of await this.readRelays(ids)) this.offer(relay);
    }
    this.dirty.clear();
    this.gaps = [];
  }

  /** Marks dirty the relays changed by activities after `after` and before `before`. */
  private async readGap(after: number, before: number): Promise<void> {
    this.catchUps++;
    for (let from = after; from < before - 1; ) {
      const page = await this.options.store.activitiesAfter({ after: from, limit: PAGE });
      for (const a of page) {
        if (a.id >= before) return;
        if (CHANGE_TYPES.has(a.type)) this.dirty.add(a.relayId);
      }
      if (page.length < PAGE) return;
      from = page[page.length - 1]!.id;
    }
  }

  private async readFleet(fleet: string): Promise<Relay[]> {
    const out: Relay[] = [];
    for (let after: string | undefined; ; ) {
      const page = await this.options.store.listRelays({
        fleet,
        limit: PAGE,
        ...(after !== undefined ? { after } : {}),
      });
      out.push(...page);
      if (page.length < PAGE) return out;
      after = page[page.length - 1]!.id;
    }
  }

  private async readRelays(ids: string[]): Promise<Relay[]> {
    const store = this.options.store;
    if (store.getRelays) return store.getRelays(ids);
    const relays = await Promise.all(ids.map((id) => store.getRelay(id)));
    return relays.filter((r): r is Relay => r !== undefined);
  }

  // ---- timers -----------------------------------------------------------------------------------

  private armHeartbeat(): void {
    if (this.heartbeatTimer || this.closing) return;
    this.heartbeatTimer = this.options.clock.setTimeout(() => {
      this.heartbeatTimer = undefined;
      if (this.closing) return;
      for (const conn of this.all) conn.write(HEARTBEAT_FRAME);
      if (this.all.size > 0) this.armHeartbeat();
    }, this.options.heartbeatMs);
  }
}

/** A 52-bit lineage number from two draws (one draw of Random holds 32 bits), never 0. */
function newEpoch(random: Random): number {
  return Math.floor(random() * 2 ** 26) * 2 ** 26 + Math.floor(random() * 2 ** 26) + 1;
}

/** Held versions (§8) when the client's epoch is ours and its header parses; anything else: full put. */
function resumeState(request: FastifyRequest, epoch: string): Map<string, number> | undefined {
  const header = (name: string) => {
    const v = request.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(',') : v;
  };
  if (header(EPOCH_HEADER) !== epoch) return undefined;
  const held = header(HELD_VERSIONS_HEADER);
  return held === undefined ? undefined : parseHeldVersions(held);
}
