import type { Logger } from 'pino';
import type { Command } from '../command.js';
import type { Clock, TimerHandle } from '../domain/clock.js';
import {
  DEFAULT_REPAIR,
  type LiveState,
  type LiveStatus,
  nextLiveState,
  REPAIRABLE,
  type RepairPolicy,
} from '../domain/live.js';
import type { Relay } from '../domain/relay.js';
import { Chore, type ChoreDefinition } from '../lifecycle/chore.js';
import type { Store } from '../store/port.js';
import { compareLive, expectationOf, type FetchOutcome } from './compare.js';

/** One NIP-11 read (src/live/fetch.ts): GET `baseUrl` with `Host: host`, bounded in time and size. */
export interface RelayInfoRequest {
  baseUrl: string;
  host: string;
  timeoutMs: number;
  maxBytes?: number;
  signal?: AbortSignal;
}
export type FetchRelayInfo = (req: RelayInfoRequest) => Promise<FetchOutcome>;

export interface VerifierOptions {
  /** The workers' store and Command (fenced by the worker lease). */
  store: Store;
  command: Pick<Command, 'observeRelay'>;
  fetchInfo: FetchRelayInfo;
  clock: Clock;
  logger: Logger;
  /**
   * The default target's zooid instance's own HTTP address (BOSUN_VERIFY_URL): the relays of fleets
   * on `default` are read there, their host sent in `Host`. A fleet pinned to another target is read
   * at that target's `verify_url`. Null (either): each relay at `https://<host>/`.
   */
  verifyUrl: string | null;
  /** How long a fleet's verify address is used before it is read again. Default 10 s. */
  targetTtlMs?: number;
  /** Per read. Default 5 s. */
  timeoutMs?: number;
  /** Reads in flight at once against the zooid instance. Default 8. */
  concurrency?: number;
  policy?: RepairPolicy;
  /** After a sync, zooid reloads the file before it serves it: the check waits this long. Default 1 s. */
  settleMs?: number;
  /** A relay seen stale or not served is read again this soon, until it is repaired. Default 5 s. */
  recheckMs?: number;
  /**
   * Checks that changed nothing but their time are written together, in one statement per batch,
   * this long after the batch's first (Store.touchLiveChecks). Default 1 s.
   */
  touchBatchMs?: number;
  /** Re-asserts the relay in zooid with one full PUT (push sync's drift repair path). */
  repair: (relayId: string) => void;
  onCheck?: (e: { relayId: string; status: LiveStatus; durationMs: number }) => void;
}

/** Relays read at once for the queue's next checks (one store read instead of one each). */
const READ_BATCH = 64;

/** Statuses bosun reports but never repairs: guessing which side is right would be worse. */
const LOUD: ReadonlySet<LiveStatus> = new Set(['wrong_identity', 'unexpected']);

/**
 * Live verification: reads each relay's NIP-11 document back from zooid and records what is really
 * served (docs/zooid-contract.md §5) through Command. Checks are asked for after each successful
 * sync (`schedule`), by the periodic pass (LiveVerify), and again soon for a relay that is not
 * live yet; one relay is checked at most once at a time, and at most `concurrency` at once.
 * `stale` and `not_served` past the grace get a repair (nextLiveState), the others a warning.
 */
export class Verifier {
  private readonly timers = new Map<string, { at: number; handle: TimerHandle }>();
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly inFlight = new Set<string>();
  /** Checks asked for while the relay's check was running: one more follows it. */
  private readonly again = new Set<string>();
  /** Queued relays read ahead with an earlier check's batch read (see `read`). */
  private readonly readAhead = new Map<string, Promise<Relay | undefined>>();
  /** Relays warned about for their current status (unexpected, wrong_identity). */
  private readonly warned = new Set<string>();
  private running = false;
  private abort = new AbortController();
  private idleWaiters: (() => void)[] = [];
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private readonly policy: RepairPolicy;
  private readonly settleMs: number;
  private readonly recheckMs: number;
  private readonly touchBatchMs: number;
  /** Relays whose unchanged check waits for the batch's touch, and the batch's first check time. */
  private touches = new Set<string>();
  private touchAt = 0;
  private touchTimer: TimerHandle | null = null;
  private touching: Promise<void> = Promise.resolve();
  /** Per fleet: the verify address of its target (null: the relay's host), and when it was read. */
  private readonly fleetUrls = new Map<string, { at: number; url: Promise<string | null> }>();

  constructor(private readonly o: VerifierOptions) {
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.concurrency = o.concurrency ?? 8;
    this.policy = o.policy ?? DEFAULT_REPAIR;
    this.settleMs = o.settleMs ?? 1000;
    this.recheckMs = o.recheckMs ?? 5000;
    this.touchBatchMs = o.touchBatchMs ?? 1000;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
  }

  /** Stops scheduling, aborts reads in flight, waits for them to finish, and writes pending touches. */
  async stop(): Promise<void> {
    this.running = false;
    for (const { handle } of this.timers.values()) this.o.clock.clearTimeout(handle);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.readAhead.clear();
    this.again.clear();
    this.abort.abort(new Error('live verification stopped'));
    await this.idle();
    await this.flushTouches();
  }

  /**
   * Writes the check time of the batch's unchanged checks (the batch's first check time, so no
   * relay is said to be checked later than it was), and waits for it.
   */
  flushTouches(): Promise<void> {
    if (this.touchTimer) this.o.clock.clearTimeout(this.touchTimer);
    this.touchTimer = null;
    if (this.touches.size > 0) {
      const ids = [...this.touches];
      const at = this.touchAt;
      this.touches = new Set();
      // A failed touch loses only check times (the next check writes its own): logged, not retried.
      const write = this.o.store
        .touchLiveChecks(ids, at)
        .then(() => undefined)
        .catch((err) => this.o.logger.warn({ err, relays: ids.length }, 'recording live check times failed'));
      this.touching = Promise.all([this.touching, write]).then(() => undefined);
    }
    return this.touching;
  }

  private touch(relayId: string, at: number): void {
    if (this.touches.size === 0) {
      this.touchAt = at;
      this.touchTimer = this.o.clock.setTimeout(() => void this.flushTouches(), this.touchBatchMs);
    }
    this.touches.add(relayId);
  }

  /** Checks the relay after `delayMs` (an earlier request for it wins). */
  schedule(relayId: string, delayMs = 0): void {
    if (!this.running) return;
    const at = this.o.clock.now() + Math.max(0, delayMs);
    const armed = this.timers.get(relayId);
    if (armed && armed.at <= at) return;
    if (armed) this.o.clock.clearTimeout(armed.handle);
    const handle = this.o.clock.setTimeout(() => {
      this.timers.delete(relayId);
      this.enqueue(relayId);
    }, delayMs);
    this.timers.set(relayId, { at, handle });
  }

  /** After push sync acknowledged the relay: zooid reloads it, then it is read back. */
  synced(relayId: string): void {
    this.schedule(relayId, this.settleMs);
  }

  /** Checks spread evenly over `spanMs` (the periodic pass), so the fleet is not read all at once. */
  spread(relayIds: readonly string[], spanMs: number): void {
    const n = relayIds.length;
    for (const [i, id] of relayIds.entries()) this.schedule(id, Math.floor((i * spanMs) / n));
  }

  /** Checks scheduled, queued or running (for tests and shutdown). */
  get pending(): number {
    return this.timers.size + this.queue.length + this.inFlight.size;
  }

  /** Resolves when nothing is queued or running (timers not yet due are not waited for). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(relayId: string): void {
    if (!this.running) return;
    if (this.inFlight.has(relayId)) {
      this.again.add(relayId);
      return;
    }
    if (this.queued.has(relayId)) {
      // Asked for again (e.g. after a sync): what was read ahead may be older than that.
      this.readAhead.delete(relayId);
      return;
    }
    this.queued.add(relayId);
    this.queue.push(relayId);
    this.pump();
  }

  private pump(): void {
    while (this.running && this.inFlight.size < this.concurrency && this.queue.length) {
      const relayId = this.queue.shift()!;
      this.queued.delete(relayId);
      this.inFlight.add(relayId);
      void this.check(relayId)
        .catch((err) => this.o.logger.warn({ err, relayId }, 'live check failed'))
        .finally(() => {
          this.inFlight.delete(relayId);
          if (this.again.delete(relayId)) this.enqueue(relayId);
          this.pump();
          if (this.queue.length === 0 && this.inFlight.size === 0) {
            for (const wake of this.idleWaiters.splice(0)) wake();
          }
        });
    }
  }

  /**
   * The relay as stored: read ahead by an earlier check, or read now together with the next queued
   * relays not read yet (the periodic pass queues the whole fleet: one read per READ_BATCH checks).
   */
  private read(relayId: string): Promise<Relay | undefined> {
    const ahead = this.readAhead.get(relayId);
    if (ahead) {
      this.readAhead.delete(relayId);
      return ahead;
    }
    const ids = [relayId];
    for (const id of this.queue) {
      if (ids.length >= READ_BATCH) break;
      if (!this.readAhead.has(id)) ids.push(id);
    }
    if (ids.length === 1) return this.o.store.getRelay(relayId);
    const batch = this.o.store.getRelays(ids).then((rs) => new Map(rs.map((r) => [r.id, r])));
    for (const id of ids.slice(1))
      this.readAhead.set(
        id,
        batch.then((m) => m.get(id)),
      );
    // A failed batch read fails each of its checks (logged by pump), not the process.
    for (const id of ids.slice(1)) this.readAhead.get(id)!.catch(() => {});
    return batch.then((m) => m.get(relayId));
  }

  /**
   * Where the fleet's relays are read: its target's `verify_url` (BOSUN_VERIFY_URL for `default`,
   * which a fleet without a row uses); null for a target without one and for a pull-only fleet (no
   * instance address is known: the relay's host). Kept `targetTtlMs`, so a pass reads it once.
   */
  private verifyUrlOf(fleet: string): Promise<string | null> {
    const now = this.o.clock.now();
    const known = this.fleetUrls.get(fleet);
    if (known && now - known.at < (this.o.targetTtlMs ?? 10_000)) return known.url;
    const url = (async () => {
      const target = (await this.o.store.getFleet(fleet))?.target ?? { kind: 'default' as const };
      if (target.kind === 'default') return this.o.verifyUrl;
      if (target.kind === 'none') return null;
      return (await this.o.store.getTarget(target.name))?.verifyUrl ?? null;
    })();
    this.fleetUrls.set(fleet, { at: now, url });
    // A failed read is not kept: the next check asks again.
    url.catch(() => {
      if (this.fleetUrls.get(fleet)?.url === url) this.fleetUrls.delete(fleet);
    });
    return url;
  }

  /** Reads one relay back, records what was seen, and repairs or reports it. */
  async check(relayId: string): Promise<LiveStatus | null> {
    const relay = await this.read(relayId);
    if (!relay) return null;
    const want = expectationOf(relay);
    const host = relay.config.host;
    // Outside the read's try: a store error fails the check (logged), it is not zooid's answer.
    const baseUrl = (await this.verifyUrlOf(relay.fleet)) ?? `https://${host}/`;
    const started = this.o.clock.now();
    let got: FetchOutcome;
    try {
      got = await this.o.fetchInfo({
        baseUrl,
        host,
        timeoutMs: this.timeoutMs,
        signal: this.abort.signal,
      });
    } catch (err) {
      got = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    if (!this.running) return null;
    const now = this.o.clock.now();
    const durationMs = now - started;
    const observation = compareLive(want, got);
    const canRepair = syncedNow(relay);
    // As Command.observeRelay would decide it: a check that changes nothing but the time (the
    // usual periodic check) is not a commit, only a touch in the next batch.
    const next = nextLiveState(relay.live, observation, now, {
      shouldServe: relay.deletedAt === null && !relay.config.inactive,
      canRepair,
      policy: this.policy,
    });
    let live: LiveState;
    let repair = false;
    if (!next.changed && !next.repair && sameButTime(relay.live, next.live)) {
      live = next.live;
      this.touch(relayId, now);
    } else {
      const result = await this.o.command.observeRelay(relayId, {
        version: relay.version,
        observation,
        canRepair,
        policy: this.policy,
      });
      // Changed while it was read: its sync checks it again.
      if (!result) return null;
      live = result.relay.live;
      repair = result.repair;
      if (result.previous.status !== live.status) this.warned.delete(relayId);
    }
    this.o.onCheck?.({ relayId, status: live.status, durationMs });
    const fields = { relayId, host, version: relay.version, status: live.status, error: live.error };
    if (repair) {
      if (live.repairs > 1) {
        this.o.logger.warn(
          { ...fields, repairs: live.repairs, nextRepairAt: iso(live.nextRepairAt) },
          'relay still not live after a repair; repairing again (backing off)',
        );
      } else {
        this.o.logger.info(fields, 'relay not live past the grace period; repairing with a full PUT');
      }
      this.o.repair(relayId);
    } else if (want.served && REPAIRABLE.has(live.status) && canRepair) {
      // Soon while a slow reload may still clear it; after a repair, on the repair's backoff.
      const untilRepair = (live.nextRepairAt ?? 0) - this.o.clock.now();
      this.schedule(relayId, live.repairs === 0 ? this.recheckMs : Math.max(this.recheckMs, untilRepair));
    } else if (LOUD.has(live.status) && !this.warned.has(relayId)) {
      // Reported once it has lasted the grace (zooid may not have reloaded a change yet).
      const lasted = this.o.clock.now() - (live.since ?? this.o.clock.now());
      if (lasted >= this.policy.graceMs) {
        this.warned.add(relayId);
        this.o.logger.warn(
          fields,
          `relay is ${live.status}: bosun does not repair this; see README "Live status"`,
        );
      } else {
        this.schedule(relayId, this.policy.graceMs - lasted);
      }
    }
    return live.status;
  }
}

/** Everything but the check time is as it was (diffs are small: compared as JSON). */
const sameButTime = (a: LiveState, b: LiveState): boolean =>
  a.status === b.status &&
  a.since === b.since &&
  a.error === b.error &&
  a.repairs === b.repairs &&
  a.nextRepairAt === b.nextRepairAt &&
  JSON.stringify(a.diff) === JSON.stringify(b.diff);

/** Push sync is done with the relay (zooid acknowledged its current version): a repair may follow. */
const syncedNow = (relay: Relay): boolean =>
  relay.deletedAt === null && relay.sync.status === 'synced' && relay.sync.syncedVersion === relay.version;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface LiveVerifyOptions {
  store: Store;
  verifier: Verifier;
  clock: Clock;
  /** The period (BOSUN_VERIFY_INTERVAL_MS): the pass spreads its checks over it. */
  intervalMs: number;
  /** Inactive and deleted relays are checked (for `unexpected`) this long after their change. Default 1 h. */
  recentMs?: number;
}

/** The periodic pass's definition: its interval is live verification's (not a chore variable). */
export const liveVerifyDefinition = (intervalMs: number) =>
  ({
    name: 'live_verify',
    config: {
      interval: intervalMs,
      timeout: Math.max(60_000, intervalMs),
      enabled: intervalMs > 0,
      jitter: 0.05,
      runAtStart: true,
      needsLease: true,
    },
  }) as const satisfies ChoreDefinition;

/**
 * The periodic pass of live verification: every active relay, and relays deactivated or deleted
 * recently (or still served), are checked once per interval, spread evenly over it.
 */
export class LiveVerify extends Chore {
  constructor(private readonly o: LiveVerifyOptions) {
    super(liveVerifyDefinition(o.intervalMs));
  }

  async once(signal: AbortSignal): Promise<void> {
    const now = this.o.clock.now();
    const recent = now - (this.o.recentMs ?? 3_600_000);
    const ids: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.o.store.relaysToVerify({
        deletedSince: recent,
        limit: 1000,
        ...(after ? { after } : {}),
      });
      for (const r of page) {
        const loud = r.live.status === 'unexpected';
        if (r.deletedAt === null && !r.config.inactive) ids.push(r.id);
        else if (loud || (r.deletedAt ?? r.updatedAt) >= recent) ids.push(r.id);
      }
      if (page.length < 1000 || signal.aborted) break;
      after = page[page.length - 1]!.id;
    }
    this.o.verifier.spread(ids, this.o.intervalMs);
  }
}
