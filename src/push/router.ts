import type { Logger } from 'pino';
import type { Command } from '../command.js';
import { backoffDelay } from '../domain/backoff.js';
import type { Clock } from '../domain/clock.js';
import type { Random } from '../domain/random.js';
import type { Relay } from '../domain/relay.js';
import { DEFAULT_TARGET } from '../domain/target.js';
import type { Store } from '../store/port.js';
import { type RetryPolicy, retryDelay } from './retry-policy.js';
import type { Elsewhere, SyncOutcome } from './syncer.js';
import type { ZooidResult } from './zooid/client.js';

/** Where one target's requests go and the key that signs them. */
export interface Destination {
  name: string;
  url: string;
  secretKey: string;
}

/** What a relay's fleet says about pushing it. */
export type Route =
  | { kind: 'push'; target: Destination }
  | { kind: 'pull' }
  /** The fleet names a target bosun cannot reach: the relay's sync fails with this and retries. */
  | { kind: 'unroutable'; target: string; error: string };

/** One target's syncer, as the router drives it. */
export interface TargetSyncer {
  /** Syncs the relay as the router just read it (see Infra.syncRelay). */
  syncRelay(
    relay: Relay,
    opts: { force?: boolean; due?: boolean; signal?: AbortSignal; elsewhere?: Elsewhere },
  ): Promise<SyncOutcome>;
  /** Deletes the relay from this target (404: already gone, a success). */
  removeCopy(relayId: string, signal?: AbortSignal): Promise<ZooidResult>;
  /** Until when a request for the relay whose answer was lost may still land here (Infra.pending). */
  pending(relayId: string): Promise<void> | undefined;
}

export interface RouterOptions {
  store: Store;
  /** Records the failure of a relay that cannot be routed (over the worker's fenced store). */
  command: Command;
  clock: Clock;
  random: Random;
  retry: RetryPolicy;
  logger: Logger;
  /** ZOOID_API_URL and BOSUN_SECRET_KEY: the target `default`. */
  defaultTarget: { url: string | undefined; secretKey: string | undefined };
  /**
   * How long a fleet's route (and a target row) is reused before it is read again. A TTL rather
   * than invalidation on writes: a fleet or target may be changed by another replica, whose
   * notifications do not reach this one's in-process cache. Default 2 s.
   */
  cacheTtlMs?: number;
  /** Requests in flight to one target at most; the rest wait without holding a worker. */
  perTargetConcurrency: number;
  /**
   * A target whose oldest request in flight is older than this, and than 10× its recent sync time,
   * takes no more until one returns (it may have stopped answering). Default 100 ms.
   */
  stallMs?: number;
  /**
   * Backoff of a target whose requests go unanswered (unreachable, timed out). Default: the retry
   * policy's curve, capped at 30 s — a target that returns is found by its probe or its next try.
   */
  targetBackoff?: { baseMs: number; capMs: number };
  /** Builds the syncer of a destination; `onResult` receives zooid's answer to each request. */
  syncerFor: (target: Destination, onResult: (result: ZooidResult) => void) => TargetSyncer;
  /** Puts a relay that waited for a free slot back on the work queue. */
  requeue: (relayId: string, opts: { force: boolean }) => void;
  onTargetResult?: (target: string, result: ZooidResult) => void;
  /** Every outcome of a relay routed to a target (pushed, held for its backoff, or unroutable). */
  onOutcome?: (target: string, outcome: SyncOutcome) => void;
}

/** One target's load, for the per-target gauges. */
export interface TargetLoad {
  target: string;
  /** Requests in flight to the target. */
  inFlight: number;
  /** Relays waiting for one of its slots. */
  waiting: number;
  /** Relays recorded retrying while the target backs off. */
  held: number;
}

/**
 * Failures that say the target, not this relay, is in trouble: no answer at all (refused, reset,
 * timed out). An answer — even a 5xx or a 403 — is about the request, and each relay records its own.
 */
const targetFault = (result: ZooidResult): boolean =>
  !result.ok && result.kind === 'transient' && result.status === undefined;

interface TargetState {
  name: string;
  /** Identity of the syncer below: rebuilt when a target's URL or key changes. */
  key: string;
  syncer: TargetSyncer;
  inFlight: number;
  /** When each request in flight started, oldest first (Map keeps insertion order). */
  starts: Map<number, number>;
  /** Recent time of a sync zooid answered (moving average, ms); 0 before the first. */
  latencyMs: number;
  /** Relays that found every slot taken, and whether their sync was forced. */
  waiting: Map<string, boolean>;
  failures: number;
  /** No request is sent before then (its consecutive failures' backoff). */
  downUntil: number;
  /** Why the target is backing off: the last unanswered request's error. */
  lastError: string;
  /** Relays recorded `retrying` because the target was backing off, and whether forced. */
  held: Map<string, boolean>;
}

/**
 * Push routing (issue 17): each relay goes to its fleet's target — `default` (ZOOID_API_URL) for a
 * fleet with no row, a named target, or nowhere for a pull-only fleet. Every target has its own
 * in-flight limit and backoff, so one down or slow zooid cannot hold the workers the others need:
 * a relay whose target is full waits outside the work queue (put back on it if the target starts
 * failing), and a relay whose target is backing off sends nothing and is recorded `retrying` until
 * the backoff ends — or until the target answers a sync or its probe, which releases it at once.
 */
export class Router {
  private readonly routes = new Map<string, { route: Route; at: number }>();
  /** Targets by name, as a relay that lives on one is reached there (same TTL as routes). */
  private readonly destinations = new Map<string, { route: Route; at: number }>();
  private readonly targets = new Map<string, TargetState>();
  /** Relays held for a backoff that ended early: their stored retry time no longer applies. */
  private readonly released = new Set<string>();
  /** Numbers each request sent, to find its start among the in-flight ones. */
  private requests = 0;
  private readonly ttlMs: number;

  constructor(private readonly options: RouterOptions) {
    this.ttlMs = options.cacheTtlMs ?? 2000;
  }

  /**
   * The target answered (a sync succeeded, or its health probe did): its backoff ends now, and the
   * relays held for it are tried at once rather than when the backoff would have ended.
   */
  release(target: string): void {
    const state = this.targets.get(target);
    if (!state) return;
    state.failures = 0;
    state.downUntil = 0;
    state.lastError = '';
    for (const [relayId, force] of state.held) {
      this.released.add(relayId);
      this.options.requeue(relayId, { force });
    }
    state.held.clear();
  }

  /** Each target's requests in flight and relays waiting for it (targets pushed to since start). */
  load(): TargetLoad[] {
    return [...this.targets].map(([target, s]) => ({
      target,
      inFlight: s.inFlight,
      waiting: s.waiting.size,
      held: s.held.size,
    }));
  }

  /**
   * Until when a request for the relay whose answer was lost may still land at any target. Each
   * target's syncer holds its own next request back; a request to another target must wait too.
   */
  pending(relayId: string): Promise<void> | undefined {
    for (const state of this.targets.values()) {
      const open = state.syncer.pending(relayId);
      if (open) return open;
    }
    return undefined;
  }

  /** Forgets every cached route: the next sync of each fleet reads it again. */
  invalidate(): void {
    this.routes.clear();
    this.destinations.clear();
  }

  /**
   * Syncs a relay to its fleet's target. A relay that lives on another target (its `pushedTarget`)
   * is moved: created on the fleet's target, then deleted from the other (Infra, `elsewhere`). A
   * deleted relay is deleted where it lives — and on its fleet's target too, where a move cut
   * short may have created it. A live relay of a pull-only fleet is left where it is: bosun no
   * longer pushes it, and its copy stays on the target it lived on (the fleet's agents may serve it
   * from there).
   */
  async syncRelay(
    relayId: string,
    opts: { force?: boolean; signal?: AbortSignal } = {},
  ): Promise<SyncOutcome> {
    const relay = await this.options.store.getRelay(relayId);
    if (!relay) return { kind: 'skipped', reason: 'missing' };
    const route = await this.route(relay.fleet, relay.updatedAt);
    const lives = relay.sync.pushedTarget;
    const elsewhere = lives !== null && (route.kind !== 'push' || route.target.name !== lives);
    if (elsewhere && (route.kind === 'push' || relay.deletedAt !== null)) {
      const from = await this.destination(lives);
      if (from.kind !== 'push')
        return this.told(from.target, await this.failUnroutable(relay, from, opts.force ?? false, true));
      if (route.kind !== 'push') return this.send(relay, this.stateOf(from.target), opts);
      const fromState = this.stateOf(from.target);
      const remove = (id: string, signal?: AbortSignal) => fromState.syncer.removeCopy(id, signal);
      return this.send(relay, this.stateOf(route.target), { ...opts, elsewhere: { name: lives, remove } });
    }
    if (route.kind === 'pull') return { kind: 'skipped', reason: 'pull_only' };
    if (route.kind === 'unroutable')
      return this.told(route.target, await this.failUnroutable(relay, route, opts.force ?? false));
    return this.send(relay, this.stateOf(route.target), opts);
  }

  /**
   * Whose push work a relay's next sync is, by target (the per-target push leases): its fleet's
   * target (a move included: the new target's sync does it); for a deleted relay whose fleet no
   * longer pushes there, the target it lives on; for an unroutable fleet, the target it names;
   * null when nothing is to be pushed (pull-only). Mirrors syncRelay's choices.
   */
  async ownerOf(relay: Relay): Promise<string | null> {
    const route = await this.route(relay.fleet, relay.updatedAt);
    if (route.kind === 'push') return route.target.name;
    const lives = relay.sync.pushedTarget;
    const elsewhere = lives !== null && (route.kind !== 'unroutable' || route.target !== lives);
    if (elsewhere && relay.deletedAt !== null) return lives;
    return route.kind === 'unroutable' ? route.target : null;
  }

  /** Sends the relay's sync to a target, within its in-flight limit and outside its backoff. */
  private async send(
    relay: Relay,
    state: TargetState,
    opts: { force?: boolean; signal?: AbortSignal; elsewhere?: Elsewhere },
  ): Promise<SyncOutcome> {
    const relayId = relay.id;
    const target = state.name;
    const force = opts.force ?? false;
    // Another target's request for the relay may still land (it timed out): this one waits until
    // it cannot, as that target's own next request would, so the two never overlap (a move's
    // DELETE landing before a late create, or after the relay came back). Tried again then.
    for (const other of this.targets.values()) {
      const open = other === state ? undefined : other.syncer.pending(relayId);
      if (!open) continue;
      void open.then(() => this.options.requeue(relayId, { force }));
      return this.told(target, { kind: 'skipped', reason: 'busy' });
    }
    if (state.downUntil > this.options.clock.now())
      return this.told(target, await this.hold(relay, state, force, opts.elsewhere !== undefined));
    if (state.inFlight >= this.limitOf(state)) {
      state.waiting.set(relayId, (state.waiting.get(relayId) ?? false) || force);
      return this.told(target, { kind: 'skipped', reason: 'waiting' });
    }
    // A relay held for a backoff that ended early is due now, whatever retry time it stored.
    const due = this.released.delete(relayId);
    const request = ++this.requests;
    const started = this.options.clock.now();
    state.inFlight++;
    state.starts.set(request, started);
    try {
      const outcome = await state.syncer.syncRelay(relay, due ? { ...opts, due } : opts);
      if (outcome.kind === 'synced') {
        const ms = this.options.clock.now() - started;
        state.latencyMs = state.latencyMs === 0 ? ms : 0.8 * state.latencyMs + 0.2 * ms;
      }
      return this.told(target, outcome);
    } finally {
      state.inFlight--;
      state.starts.delete(request);
      this.handOutSlots(state);
    }
  }

  private told(target: string, outcome: SyncOutcome): SyncOutcome {
    this.options.onOutcome?.(target, outcome);
    return outcome;
  }

  /**
   * The route of a fleet's relays, read at most once per TTL — and again for a relay changed since
   * it was read (`changedAt`): a fleet that changes target resyncs its relays, which must not go
   * to the old target from a cached route (another replica's change reaches no in-process cache).
   */
  async route(fleet: string, changedAt = 0): Promise<Route> {
    const now = this.options.clock.now();
    const cached = this.routes.get(fleet);
    if (cached && now - cached.at < this.ttlMs && changedAt < cached.at) return cached.route;
    const route = await this.readRoute(fleet);
    this.routes.set(fleet, { route, at: now });
    return route;
  }

  /**
   * Where a target is reached, by name: how a relay that lives on one is deleted there. Read at most
   * once per TTL, like routes.
   */
  private async destination(name: string): Promise<Exclude<Route, { kind: 'pull' }>> {
    const now = this.options.clock.now();
    const cached = this.destinations.get(name);
    if (cached && now - cached.at < this.ttlMs && cached.route.kind !== 'pull') return cached.route;
    const found = await this.readDestination(name);
    const route: Exclude<Route, { kind: 'pull' }> =
      found.kind === 'push'
        ? found
        : {
            kind: 'unroutable',
            target: name,
            error: `the relay lives on the target ${name}, which bosun cannot reach to delete it there: ${found.error}`,
          };
    this.destinations.set(name, { route, at: now });
    return route;
  }

  private async readDestination(name: string): Promise<Exclude<Route, { kind: 'pull' }>> {
    const { url, secretKey } = this.options.defaultTarget;
    if (name === DEFAULT_TARGET) {
      if (!url || !secretKey)
        return { kind: 'unroutable', target: name, error: 'ZOOID_API_URL or BOSUN_SECRET_KEY is not set' };
      return { kind: 'push', target: { name, url, secretKey } };
    }
    const row = await this.options.store.getTarget(name);
    if (!row) return { kind: 'unroutable', target: name, error: 'it does not exist (any more)' };
    const key = row.secretKey ?? secretKey;
    if (!key)
      return {
        kind: 'unroutable',
        target: name,
        error: 'it has no secret_key and BOSUN_SECRET_KEY is not set',
      };
    return { kind: 'push', target: { name: row.name, url: row.url, secretKey: key } };
  }

  private async readRoute(fleet: string): Promise<Route> {
    const record = await this.options.store.getFleet(fleet);
    const target = record?.target ?? { kind: 'default' as const };
    if (target.kind === 'none') return { kind: 'pull' };
    const { url, secretKey } = this.options.defaultTarget;
    if (target.kind === 'default') {
      if (!url || !secretKey) {
        return {
          kind: 'unroutable',
          target: DEFAULT_TARGET,
          error: `fleet ${fleet} uses the target default, but ZOOID_API_URL is not set: set it, or pin the fleet to a target (PUT /v1/fleets/${fleet})`,
        };
      }
      return { kind: 'push', target: { name: DEFAULT_TARGET, url, secretKey } };
    }
    const row = await this.options.store.getTarget(target.name);
    if (!row) {
      return {
        kind: 'unroutable',
        target: target.name,
        error: `fleet ${fleet} uses the target ${target.name}, which does not exist`,
      };
    }
    const key = row.secretKey ?? secretKey;
    if (!key) {
      return {
        kind: 'unroutable',
        target: row.name,
        error: `the target ${row.name} has no secret_key and BOSUN_SECRET_KEY is not set: nothing can sign its requests`,
      };
    }
    return { kind: 'push', target: { name: row.name, url: row.url, secretKey: key } };
  }

  private stateOf(target: Destination): TargetState {
    const key = `${target.url}\n${target.secretKey}`;
    let state = this.targets.get(target.name);
    if (!state || state.key !== key) {
      const syncer = this.options.syncerFor(target, (result) => this.record(target.name, result));
      // A changed URL or key starts afresh; relays still waiting keep their place.
      state = {
        name: target.name,
        key,
        syncer,
        inFlight: state?.inFlight ?? 0,
        starts: state?.starts ?? new Map(),
        latencyMs: 0,
        waiting: state?.waiting ?? new Map(),
        failures: 0,
        downUntil: 0,
        lastError: '',
        held: state?.held ?? new Map(),
      };
      this.targets.set(target.name, state);
    }
    return state;
  }

  private record(target: string, result: ZooidResult): void {
    this.options.onTargetResult?.(target, result);
    const state = this.targets.get(target);
    if (!state) return;
    if (result.ok || !targetFault(result)) {
      if (state.failures > 0 || state.held.size > 0) this.release(target);
      return;
    }
    state.failures++;
    state.lastError = result.message;
    const { baseMs, capMs } = this.options.retry;
    const curve = this.options.targetBackoff ?? { baseMs, capMs: Math.min(capMs, 30_000) };
    state.downUntil = this.options.clock.now() + backoffDelay(curve, state.failures);
    this.options.logger.warn(
      { target, failures: state.failures, retryAt: state.downUntil },
      'zooid target failing: its relays wait for its backoff',
    );
    // Relays waiting for a slot would otherwise wait in memory for a target that is not answering:
    // put back on the queue, they find it backing off and are recorded as retrying.
    const waiting = [...state.waiting];
    state.waiting.clear();
    for (const [relayId, force] of waiting) this.options.requeue(relayId, { force });
  }

  /**
   * A relay whose target is backing off is not sent, but recorded: `retrying`, with the target's
   * error and the end of its backoff, so its state says why it waits and until when.
   */
  private async hold(
    relay: Relay,
    state: TargetState,
    force: boolean,
    moving: boolean,
  ): Promise<SyncOutcome> {
    const { status, nextAttemptAt, syncedVersion, ackedDeleted } = relay.sync;
    const upToDate =
      !moving &&
      status === 'synced' &&
      syncedVersion === relay.version &&
      (relay.deletedAt === null || ackedDeleted);
    if (!force && status === 'failed') return { kind: 'skipped', reason: 'failed' };
    if (!force && upToDate) return { kind: 'skipped', reason: 'up_to_date' };
    state.held.set(relay.id, (state.held.get(relay.id) ?? false) || force);
    const at = state.downUntil;
    const error = state.lastError;
    // Already recorded for this backoff (or a later retry): nothing new to write.
    if (status === 'retrying' && nextAttemptAt !== null && nextAttemptAt >= at)
      return { kind: 'skipped', reason: 'not_due', retryAt: nextAttemptAt };
    await this.options.command.failRelaySync(relay.id, {
      version: relay.version,
      error,
      attempts: relay.sync.attempts,
      nextAttemptAt: at,
    });
    return { kind: 'retry', at, error };
  }

  /**
   * A target that failed and has not answered since gets one request at a time once its backoff
   * is over (a probe): a target still hung then holds one worker per timeout, not its whole limit
   * after every backoff. Its first answer (`release`) gives it its full limit back.
   */
  private limitOf(state: TargetState): number {
    if (state.failures > 0) return 1;
    // A request unanswered for far longer than this target takes may hang until its timeout: no
    // more are sent until one returns, so a target that stops answering keeps the workers it has
    // rather than taking every one (each held for a whole timeout) before its first failure.
    const oldest = state.starts.values().next().value;
    const stallMs = Math.max(this.options.stallMs ?? 100, 10 * state.latencyMs);
    if (oldest !== undefined && this.options.clock.now() - oldest > stallMs) return state.inFlight;
    return this.options.perTargetConcurrency;
  }

  /** Hands freed slots to relays that waited for them. */
  private handOutSlots(state: TargetState): void {
    let free = this.limitOf(state) - state.inFlight;
    for (const [relayId, force] of state.waiting) {
      if (free-- <= 0) break;
      state.waiting.delete(relayId);
      this.options.requeue(relayId, { force });
    }
  }

  /** A relay whose target cannot be reached fails like a zooid failure: recorded, retried later. */
  private async failUnroutable(
    relay: Relay,
    route: Extract<Route, { kind: 'unroutable' }>,
    force: boolean,
    leaving = false,
  ): Promise<SyncOutcome> {
    const { status, nextAttemptAt, error, syncedVersion } = relay.sync;
    const now = this.options.clock.now();
    // Nothing to send: a target gone missing does not fail a relay zooid already has (unless the
    // relay must leave the target that went missing: its move is not done).
    if (!force && !leaving && status === 'synced' && syncedVersion === relay.version)
      return { kind: 'skipped', reason: 'up_to_date' };
    if (!force && error === route.error) {
      if (status === 'failed') return { kind: 'skipped', reason: 'failed' };
      if (status === 'retrying' && nextAttemptAt !== null && nextAttemptAt > now)
        return { kind: 'skipped', reason: 'not_due', retryAt: nextAttemptAt };
    }
    const attempts = relay.sync.attempts + 1;
    const delay = retryDelay(this.options.retry, attempts, this.options.random);
    const at = delay === null ? null : now + delay;
    await this.options.command.failRelaySync(relay.id, {
      version: relay.version,
      error: route.error,
      attempts,
      nextAttemptAt: at,
    });
    this.options.logger.warn({ relayId: relay.id, target: route.target, retryAt: at }, route.error);
    return at === null ? { kind: 'failed', error: route.error } : { kind: 'retry', at, error: route.error };
  }
}
