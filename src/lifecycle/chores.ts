import type { Command } from '../command.js';
import type { Clock } from '../domain/clock.js';
import type { Relay } from '../domain/relay.js';
import type { Observer } from '../push/observer.js';
import type { ZooidErrorKind, ZooidResult } from '../push/zooid/client.js';
import type { Store } from '../store/port.js';

/** What every chore is configured by (a Storj chore's Config: interval and timeout, plus a switch). */
export interface ChoreConfig {
  interval: number;
  timeout: number;
  enabled: boolean;
}

/** One pass of a periodic job; a Cycle runs it every interval. */
export interface Chore {
  readonly name: ChoreName;
  once(signal: AbortSignal): Promise<void>;
}

export const CHORE_NAMES = [
  'retry_sweeper',
  'drift_repair',
  'resync',
  'resync_failed',
  'credential_expiry',
  'activity_retention',
  'target_health',
] as const;
export type ChoreName = (typeof CHORE_NAMES)[number];

export const CHORE_DEFAULTS: Record<ChoreName, ChoreConfig> = {
  retry_sweeper: { interval: 5_000, timeout: 30_000, enabled: true },
  drift_repair: { interval: 60_000, timeout: 60_000, enabled: true },
  resync: { interval: 10 * 3_600_000, timeout: 3_600_000, enabled: true },
  resync_failed: { interval: 10 * 60_000, timeout: 300_000, enabled: true },
  credential_expiry: { interval: 60_000, timeout: 30_000, enabled: true },
  activity_retention: { interval: 3_600_000, timeout: 300_000, enabled: true },
  target_health: { interval: 30_000, timeout: 10_000, enabled: true },
};

const PAGE = 1000;

/**
 * Retries live in the database (`next_attempt_at`); the observer's timers are only a fast path.
 * This sweep hands every due retry to the observer, so a retry is never lost with a timer.
 */
export class RetrySweeper implements Chore {
  readonly name = 'retry_sweeper';
  constructor(
    private readonly store: Store,
    private readonly observer: Observer,
    private readonly clock: Clock,
  ) {}

  async once(): Promise<void> {
    for (const relay of await this.store.relaysDueForRetry(this.clock.now(), PAGE))
      this.observer.enqueue(relay.id);
  }
}

/**
 * Lost work: a relay whose change is older than `graceMs` but still not acknowledged, with no
 * retry scheduled (e.g. a notification and the log read both missed it). Normal syncs start within
 * milliseconds, so anything pending this long was dropped somewhere; it is synced again.
 */
export class DriftRepair implements Chore {
  readonly name = 'drift_repair';
  constructor(
    private readonly store: Store,
    private readonly observer: Observer,
    private readonly clock: Clock,
    private readonly graceMs = 60_000,
  ) {}

  async once(): Promise<void> {
    const cutoff = this.clock.now() - this.graceMs;
    for (const relay of await this.store.relaysNeedingSync(100_000)) {
      if (relay.sync.status === 'pending' && relay.updatedAt <= cutoff) this.observer.enqueue(relay.id);
    }
  }
}

/**
 * zooid cannot list or read back configs, so a relay edited or deleted behind bosun's back is only
 * found by saying it again: every live relay is re-asserted with a full PUT (404 → POST), in
 * batches so the fan-out stays bounded, like controller-runtime's periodic resync. Failed relays
 * are ResyncFailed's (or their operator's).
 */
export class Resync implements Chore {
  readonly name = 'resync';
  /** A Cycle runs at once on start; a restart should not re-assert the whole fleet, so skip it. */
  private skipNext = true;

  constructor(
    private readonly store: Store,
    private readonly observer: Observer,
    private readonly batchSize = 100,
  ) {}

  async once(signal: AbortSignal): Promise<void> {
    if (this.skipNext) {
      this.skipNext = false;
      return;
    }
    let after: string | undefined;
    for (;;) {
      const page = await this.store.listRelays({ limit: this.batchSize, ...(after ? { after } : {}) });
      for (const relay of page) {
        if (relay.sync.status !== 'failed') this.observer.enqueue(relay.id, { force: true });
      }
      await this.observer.idle();
      if (page.length < this.batchSize || signal.aborted) return;
      after = page[page.length - 1]!.id;
    }
  }
}

/**
 * `failed` is not forever for faults that can heal: a host or schema freed in zooid, a relay zooid
 * lost, an API URL or whitelist fixed, an outage longer than the retries. Failed relays whose fault
 * may heal (`mayHeal`) are re-asserted with a full PUT at this chore's slow pace, and at once when
 * the zooid target recovers; a config zooid rejected (400) waits for a change or a manual resync.
 */
export class ResyncFailed implements Chore {
  readonly name = 'resync_failed';

  constructor(
    private readonly store: Store,
    private readonly observer: Observer,
    private readonly mayHeal: (relay: Relay) => boolean,
  ) {}

  async once(signal: AbortSignal): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const page = await this.store.listRelays({
        status: 'failed',
        includeDeleted: true,
        limit: PAGE,
        ...(after ? { after } : {}),
      });
      for (const relay of page) if (this.mayHeal(relay)) this.observer.enqueue(relay.id, { force: true });
      if (page.length < PAGE || signal.aborted) return;
      after = page[page.length - 1]!.id;
    }
  }
}

/**
 * Expires tokens past their expiry and, given the Command, drops rotated relay credentials whose
 * grace period has ended (each such relay gets a new version; agents dropped them on their own
 * timers already).
 */
export class CredentialExpiry implements Chore {
  readonly name = 'credential_expiry';
  expired = 0;
  /** Relays whose expired rotated credentials were dropped. */
  credentialsDropped = 0;
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly command?: Pick<Command, 'expireCredentials'>,
  ) {}

  async once(signal?: AbortSignal): Promise<void> {
    this.expired += await this.store.expireTokens(this.clock.now());
    if (!this.command) return;
    for (;;) {
      const due = await this.store.relaysWithExpiredCredentials(this.clock.now(), PAGE);
      let changed = 0;
      for (const relay of due) {
        if (signal?.aborted) return;
        if (await this.command.expireCredentials(relay.id)) changed++;
      }
      this.credentialsDropped += changed;
      // A page where nothing changed would come back the same (e.g. a clock behind the database).
      if (due.length < PAGE || changed === 0) return;
    }
  }
}

/**
 * Keeps the activity log bounded: deletes activities older than the retention window, but never
 * one the observer has not finished with, and never the newest (ids must keep increasing).
 */
export class ActivityRetention implements Chore {
  readonly name = 'activity_retention';
  pruned = 0;
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly retentionMs: number,
    /** The highest activity id nothing still needs (the observer's cursor, or the log's end). */
    private readonly safeUpTo: () => Promise<number>,
  ) {}

  async once(signal: AbortSignal): Promise<void> {
    const before = this.clock.now() - this.retentionMs;
    const maxId = await this.safeUpTo();
    for (;;) {
      const n = await this.store.pruneActivities({ before, maxId, limit: 10_000 });
      this.pruned += n;
      if (n < 10_000 || signal.aborted) return;
    }
  }
}

export interface TargetStatus {
  url: string;
  /** The probe answered and the recent syncs did not all fail; null before the first probe. */
  up: boolean | null;
  latencyMs: number | null;
  checkedAt: string | null;
  /** Why the target is not up: the probe's error, or the last of the syncs that failed in a row. */
  error: string | null;
  /** Syncs in a row that zooid refused (401, 403) or could not serve (5xx, network, timeout). */
  syncFailures: number;
}

/** Sync failures that speak about zooid itself, not about one relay's config. */
const UNHEALTHY: ReadonlySet<ZooidErrorKind> = new Set(['auth', 'forbidden', 'transient']);
/** Syncs that must fail in a row before the target is taken as not up (one may be a fluke). */
const FAILING_AFTER = 3;

export interface TargetHealthHooks {
  /** After every probe and every change of `up`. */
  onStatus?: (status: TargetStatus) => void;
  /** The probe got an answer again after it got none: failed relays are worth a try now. */
  onRecovered?: () => void;
}

/**
 * The health of the zooid instance: the probe AND the outcomes of recent syncs. The probe is an
 * unsigned request (zooid answers 401), so an answer only shows zooid is reachable; a zooid that
 * refuses bosun's key (403), its signatures (401), or every write (5xx) answers the probe too. So
 * the target is not up while the last syncs all failed that way — until one succeeds, or zooid
 * answers it in a way that speaks about the relay (400, 404, 409).
 */
export class TargetHealth implements Chore {
  readonly name = 'target_health';
  private probe: Omit<TargetStatus, 'syncFailures'>;
  private failures = 0;
  private lastFailure = '';
  private lastUp: boolean | null = null;

  constructor(
    private readonly apiUrl: string,
    private readonly clock: Clock,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly hooks: TargetHealthHooks = {},
  ) {
    this.probe = { url: apiUrl, up: null, latencyMs: null, checkedAt: null, error: null };
  }

  status(): TargetStatus {
    const failing = this.failures >= FAILING_AFTER;
    const why = `the last ${this.failures} syncs failed: ${this.lastFailure}`;
    return {
      ...this.probe,
      up: failing ? false : this.probe.up,
      error: this.probe.error ?? (failing ? why : null),
      syncFailures: this.failures,
    };
  }

  /** The outcome of one sync request to this target (from push sync). */
  recordSync(result: ZooidResult): void {
    if (!result.ok && UNHEALTHY.has(result.kind)) {
      this.failures++;
      this.lastFailure = result.message;
    } else {
      this.failures = 0;
      this.lastFailure = '';
    }
    const status = this.status();
    if (status.up !== this.lastUp) this.publish(status);
  }

  async once(signal: AbortSignal): Promise<void> {
    const started = performance.now();
    let up = false;
    let error: string | null = null;
    try {
      const res = await this.fetchImpl(`${this.apiUrl.replace(/\/+$/, '')}/relay/`, {
        method: 'GET',
        signal,
      });
      await res.arrayBuffer();
      up = true;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      error = cause ?? (err instanceof Error ? err.message : String(err));
    }
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    const recovered = up && this.probe.up === false;
    this.probe = {
      url: this.apiUrl,
      up,
      latencyMs: up ? latencyMs : null,
      checkedAt: new Date(this.clock.now()).toISOString(),
      error,
    };
    this.publish(this.status());
    if (recovered) this.hooks.onRecovered?.();
  }

  private publish(status: TargetStatus): void {
    this.lastUp = status.up;
    this.hooks.onStatus?.(status);
  }
}
