import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { type Activity, RELAY_CHANGE_TYPES } from '../domain/activity.js';
import { backoffDelay } from '../domain/backoff.js';
import type { Clock, TimerHandle } from '../domain/clock.js';
import { CoalescedRun } from '../domain/coalesced-run.js';
import type { Notifier } from '../notifier.js';
import type { Store } from '../store/port.js';
import type { SyncOutcome } from './syncer.js';
import { WorkQueue } from './workqueue.js';

/**
 * Relays synced at once, by default (`BOSUN_SYNC_CONCURRENCY`). A sync is mostly waiting on zooid, so
 * workers are cheap; under a steady write load 20 left changes queued behind in-flight requests
 * (commit → PATCH p99 of hundreds of ms in bench:load) where 80 keeps up.
 */
export const SYNC_CONCURRENCY = 80;

export interface ObserverOptions {
  store: Store;
  notifier: Notifier;
  clock: Clock;
  logger: Logger;
  /** Makes zooid match the relay's current state; called at most once at a time per relay. */
  sync: (relayId: string, signal: AbortSignal, opts: { force: boolean }) => Promise<SyncOutcome>;
  /** Relays synced at once. Default SYNC_CONCURRENCY. */
  concurrency?: number;
  cursorName?: string;
  pageSize?: number;
  /**
   * After the sync itself threw (not a zooid failure: e.g. the database is full or down), the relay
   * is tried again after this delay, doubling on each consecutive failure up to
   * `internalRetryMaxMs`. Defaults 1 s and 30 s.
   */
  internalRetryMs?: number;
  internalRetryMaxMs?: number;
  onSyncStart?: (commitLatencyMs: number) => void;
  onOutcome?: (outcome: SyncOutcome) => void;
  onQueueDepth?: (depth: number) => void;
  onCursor?: (position: number) => void;
}

/** What the chores, the verifier and the peer ask of push sync: one observer, or one per held target. */
export type PushQueue = Pick<Observer, 'enqueue' | 'idle' | 'retryFailedNow'>;

const TRIGGERS: ReadonlySet<string> = new Set(RELAY_CHANGE_TYPES);

/** What the observer holds for one relay between syncs; dropped once it holds nothing. */
interface RelayState {
  /** The activities its next sync will account for. */
  activities: Activity[];
  /** The next sync re-asserts the whole config even if bosun believes zooid has it. */
  force: boolean;
  /** Consecutive syncs that threw inside bosun (reset by one that returns). */
  internalFailures: number;
  /** The fast path of a scheduled retry (the database's `next_attempt_at` is the durable one). */
  retryTimer: TimerHandle | undefined;
}

/**
 * The durable observer that drives push sync. It follows the activity log from a
 * persisted cursor in two phases: first it reads everything after the cursor and collapses it to
 * each relay's final state (one sync per relay, however many changes it saw), then it follows new
 * activities as they are committed — woken by the notifier, but always reading the log.
 *
 * The cursor only moves past an activity once the sync it caused is done or durably scheduled as
 * a retry, so a crash re-reads whatever was in flight. Retries live in the database
 * (`next_attempt_at`); the timers here are only a fast path, re-armed from it on start.
 */
export class Observer {
  private queue!: WorkQueue;
  private readonly cursorName: string;
  private readonly pageSize: number;
  private abort!: AbortController;
  /** Activities whose sync is not done yet, in id order (Map keeps insertion order). */
  private readonly outstanding = new Map<number, string>();
  private readonly relays = new Map<string, RelayState>();
  private highWater = 0;
  private persisted = -1;
  /** Reads of the log after the high-water mark, one at a time; wake-ups meanwhile coalesce. */
  private readonly reads = new CoalescedRun({
    task: async () => {
      for (const relayId of await this.readAll()) this.queue.add(relayId);
      this.options.onQueueDepth?.(this.queue.depth);
    },
    onError: (err) => {
      this.options.logger.error({ err }, 'observer could not read the activity log; retrying');
      this.options.onQueueDepth?.(this.queue.depth);
      this.options.clock.setTimeout(() => this.wake(), this.options.internalRetryMs ?? 1000);
    },
    stopped: () => this.stopped,
  });
  private flushScheduled = false;
  /**
   * Cursor writes, one at a time: syncs done while one is in flight coalesce into the next. (A
   * round trip each on PostgreSQL; without this, nearly every sync wrote its own.)
   */
  private readonly flushes = new CoalescedRun({
    task: () => this.flush(),
    onError: (err) => this.options.logger.error({ err }, 'could not persist the observer cursor'),
    stopped: () => false,
  });
  private unsubscribe: (() => void) | null = null;
  private stopped = false;
  private started = false;

  constructor(private readonly options: ObserverOptions) {
    this.cursorName = options.cursorName ?? 'observer';
    this.pageSize = options.pageSize ?? 1000;
    this.fresh();
  }

  /** A new queue and abort signal: at construction, and when started again after stop(). */
  private fresh(): void {
    this.abort = new AbortController();
    // Every in-flight sync listens on this one signal.
    setMaxListeners(0, this.abort.signal);
    this.queue = new WorkQueue(
      this.options.concurrency ?? SYNC_CONCURRENCY,
      (id) => this.process(id),
      (id, err) => this.options.logger.error({ err, relayId: id }, 'sync worker failed'),
    );
  }

  get running(): boolean {
    return this.started && !this.stopped;
  }

  /** Phase 1 (catch-up) runs before this resolves; phase 2 (live) continues in the background. */
  async start(): Promise<void> {
    // Started again after stop() resolved (a replica that gets the worker lease back): begin anew
    // from the persisted cursor, exactly like a restarted process.
    if (this.stopped) {
      this.outstanding.clear();
      this.relays.clear();
      this.highWater = 0;
      this.persisted = -1;
      this.started = false;
      this.stopped = false;
      this.fresh();
    }
    // Subscribe first: a change committed while we catch up wakes a re-read, so none slips by.
    // Sync bookkeeping (complete/fail) never needs a sync: skipping those wake-ups saves a log read
    // and a cursor write per sync. The next read passes over them anyway.
    this.unsubscribe = this.options.notifier.subscribe((activities) => {
      if (activities.some((a) => TRIGGERS.has(a.type))) this.wake();
    });
    this.highWater = await this.options.store.getCursor(this.cursorName);
    this.persisted = this.highWater;
    const caughtUp = await this.readAll();
    for (const relayId of caughtUp) this.queue.add(relayId);
    await this.armStoredWork();
    this.started = true;
    this.options.logger.info(
      { cursor: this.persisted, relays: caughtUp.size, through: this.highWater },
      'observer caught up; following the activity log',
    );
    this.wake();
  }

  /** Stops taking work, lets in-flight syncs finish, and persists the cursor. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    for (const state of this.relays.values()) this.cancelRetry(state);
    await this.reads.current;
    await this.queue.drain();
    await this.flushes.current;
    await this.flush();
  }

  /** Aborts in-flight syncs (after a shutdown grace period ran out, or when the worker lease is lost). */
  abortInFlight(reason = 'bosun is shutting down'): void {
    this.abort.abort(new Error(reason));
  }

  /**
   * Asks for a sync of one relay now, outside the log (retry sweeper, drift repair). `force`
   * re-asserts the full config (PUT) even when bosun believes zooid is up to date.
   */
  enqueue(relayId: string, opts: { force?: boolean } = {}): void {
    if (this.stopped) return;
    if (opts.force) this.stateOf(relayId).force = true;
    this.queue.add(relayId);
  }

  /**
   * Relays waiting out an internal-failure backoff are tried now: the cause is gone (the database
   * takes writes again), so there is no point in waiting up to 30 s.
   */
  retryFailedNow(): void {
    if (this.stopped) return;
    for (const [relayId, state] of this.relays) {
      if (state.internalFailures === 0) continue;
      this.cancelRetry(state);
      this.queue.add(relayId);
    }
  }

  get inFlight(): number {
    return this.queue.inFlight;
  }

  get queueDepth(): number {
    return this.queue.depth;
  }

  get cursor(): number {
    return this.currentCursor();
  }

  /** Resolves when nothing is queued, in flight or unread (for tests and graceful shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      await this.reads.current;
      await this.queue.idle();
      if (!this.reads.current && this.queue.depth === 0 && this.queue.inFlight === 0) break;
    }
    await this.flushes.current;
    await this.flush();
  }

  private wake(): void {
    // During catch-up, start() reads the log itself and wakes once more when it is done.
    if (this.started) this.reads.request();
  }

  /** Reads every activity after the high-water mark; returns the relays it touched. */
  private async readAll(): Promise<Set<string>> {
    const touched = new Set<string>();
    for (;;) {
      const page = await this.options.store.activitiesAfter({ after: this.highWater, limit: this.pageSize });
      for (const activity of page) {
        if (TRIGGERS.has(activity.type)) {
          this.outstanding.set(activity.id, activity.relayId);
          const state = this.stateOf(activity.relayId);
          state.activities.push(activity);
          // A resync (an operator's, a live repair's) re-asserts the whole record in zooid (a full
          // PUT), not only what bosun believes differs, which may be nothing.
          if (activity.type === 'resync_relay') state.force = true;
          touched.add(activity.relayId);
        }
        this.highWater = activity.id;
      }
      if (page.length < this.pageSize) break;
    }
    this.scheduleFlush();
    return touched;
  }

  /** Relays whose state says they still need a sync: scheduled retries and work a crash lost. */
  private async armStoredWork(): Promise<void> {
    const now = this.options.clock.now();
    for (const relay of await this.options.store.relaysNeedingSync(1_000_000)) {
      if (
        relay.sync.status === 'retrying' &&
        relay.sync.nextAttemptAt !== null &&
        relay.sync.nextAttemptAt > now
      ) {
        this.scheduleRetry(relay.id, relay.sync.nextAttemptAt);
      } else {
        this.queue.add(relay.id);
      }
    }
  }

  private async process(relayId: string): Promise<void> {
    const before = this.stateOf(relayId);
    const activities = before.activities;
    const force = before.force;
    before.activities = [];
    before.force = false;
    this.cancelRetry(before);
    const now = this.options.clock.now();
    for (const a of activities) this.options.onSyncStart?.(now - a.createdAt);

    let outcome: SyncOutcome;
    try {
      outcome = await this.options.sync(relayId, this.abort.signal, { force });
    } catch (err) {
      // Not done and not durably scheduled: keep the activities outstanding and try again, backing
      // off so that a long outage neither re-pushes every relay to zooid nor logs it every second.
      // (Looked up again: the record may have been dropped and re-made while the sync ran.)
      const state = this.stateOf(relayId);
      const failures = ++state.internalFailures;
      const retryInMs = backoffDelay(
        { baseMs: this.options.internalRetryMs ?? 1000, capMs: this.options.internalRetryMaxMs ?? 30_000 },
        failures,
      );
      this.options.logger.error(
        { err, relayId, failures, retryInMs },
        'relay sync failed inside bosun; retrying',
      );
      state.activities = [...activities, ...state.activities];
      this.scheduleRetry(relayId, this.options.clock.now() + retryInMs);
      return;
    }
    const state = this.relays.get(relayId);
    if (state) state.internalFailures = 0;
    this.options.onOutcome?.(outcome);
    if (outcome.kind === 'skipped' && outcome.reason === 'busy') {
      // Not done, and not scheduled anywhere durable: another target's request for the relay may
      // still land, and this sync comes after it. Its activities stay outstanding (the cursor
      // waits for them) until it has run: at `retryAt`, or when the router puts it back.
      const waiting = this.stateOf(relayId);
      waiting.activities = [...activities, ...waiting.activities];
      if (outcome.retryAt !== undefined) this.scheduleRetry(relayId, outcome.retryAt);
      return;
    }
    if (outcome.kind === 'retry') this.scheduleRetry(relayId, outcome.at);
    if (outcome.kind === 'skipped' && outcome.retryAt !== undefined)
      this.scheduleRetry(relayId, outcome.retryAt);
    this.dropIfEmpty(relayId);
    for (const a of activities) this.outstanding.delete(a.id);
    this.scheduleFlush();
  }

  private stateOf(relayId: string): RelayState {
    let state = this.relays.get(relayId);
    if (!state) {
      state = { activities: [], force: false, internalFailures: 0, retryTimer: undefined };
      this.relays.set(relayId, state);
    }
    return state;
  }

  /** A relay with nothing pending, no failures to remember and no retry armed needs no record. */
  private dropIfEmpty(relayId: string): void {
    const state = this.relays.get(relayId);
    if (
      state &&
      state.activities.length === 0 &&
      !state.force &&
      state.internalFailures === 0 &&
      state.retryTimer === undefined
    ) {
      this.relays.delete(relayId);
    }
  }

  private cancelRetry(state: RelayState): void {
    if (state.retryTimer === undefined) return;
    this.options.clock.clearTimeout(state.retryTimer);
    state.retryTimer = undefined;
  }

  private scheduleRetry(relayId: string, at: number): void {
    if (this.stopped) return;
    const state = this.stateOf(relayId);
    this.cancelRetry(state);
    state.retryTimer = this.options.clock.setTimeout(
      () => {
        state.retryTimer = undefined;
        this.queue.add(relayId);
      },
      Math.max(0, at - this.options.clock.now()),
    );
  }

  private currentCursor(): number {
    const first = this.outstanding.keys().next();
    return first.done ? this.highWater : first.value - 1;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushes.request();
    });
  }

  private async flush(): Promise<void> {
    const cursor = this.currentCursor();
    if (cursor === this.persisted) return;
    await this.options.store.setCursor(this.cursorName, cursor);
    this.persisted = cursor;
    this.options.onCursor?.(cursor);
  }
}
