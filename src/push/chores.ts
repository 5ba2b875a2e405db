import type { Clock } from '../domain/clock.js';
import type { Relay } from '../domain/relay.js';
import type { Chore } from '../lifecycle/chore.js';
import type { Store } from '../store/port.js';
import type { Observer } from './observer.js';

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
