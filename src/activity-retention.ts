import type { Clock } from './domain/clock.js';
import type { Chore } from './lifecycle/chore.js';
import type { Store } from './store/port.js';

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
