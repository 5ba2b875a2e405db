import type { Clock } from '../domain/clock.js';
import type { Relay } from '../domain/relay.js';
import { Chore, defineChore } from '../lifecycle/chore.js';
import type { Store } from '../store/port.js';
import type { PushQueue } from './observer.js';

const PAGE = 1000;

export const RETRY_SWEEPER = defineChore('retry_sweeper', {
  interval: 5_000,
  timeout: 30_000,
});

export const DRIFT_REPAIR = defineChore('drift_repair', {
  interval: 60_000,
  timeout: 60_000,
});

export const RESYNC = defineChore('resync', {
  interval: 10 * 3_600_000,
  timeout: 3_600_000,
  // Spread out so replicas and restarts don't re-assert the whole fleet at once.
  jitter: 0.2,
  // A restart should not re-assert the whole fleet either.
  runAtStart: false,
});

export const RESYNC_FAILED = defineChore('resync_failed', {
  interval: 10 * 60_000,
  timeout: 300_000,
});

/**
 * Retries live in the database (`next_attempt_at`); the observer's timers are only a fast path.
 * This sweep hands every due retry to the observer, so a retry is never lost with a timer.
 */
export class RetrySweeper extends Chore {
  constructor(
    private readonly store: Store,
    private readonly observer: PushQueue,
    private readonly clock: Clock,
  ) {
    super(RETRY_SWEEPER);
  }

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
export class DriftRepair extends Chore {
  constructor(
    private readonly store: Store,
    private readonly observer: PushQueue,
    private readonly clock: Clock,
    private readonly graceMs = 60_000,
  ) {
    super(DRIFT_REPAIR);
  }

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
export class Resync extends Chore {
  constructor(
    private readonly store: Store,
    private readonly observer: PushQueue,
    private readonly batchSize = 100,
  ) {
    super(RESYNC);
  }

  async once(signal: AbortSignal): Promise<void> {
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
export class ResyncFailed extends Chore {
  constructor(
    private readonly store: Store,
    private readonly observer: PushQueue,
    private readonly mayHeal: (relay: Relay) => boolean,
  ) {
    super(RESYNC_FAILED);
  }

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
