import type { Clock } from './domain/clock.js';
import { Chore, defineChore } from './lifecycle/chore.js';
import type { Store } from './store/port.js';

export const ACTIVITY_RETENTION = defineChore('activity_retention', {
  interval: 3_600_000,
  timeout: 300_000,
});

/**
 * Keeps the activity log bounded: deletes activities older than the retention window, but never
 * one the observer has not finished with, and never the newest (ids must keep increasing).
 */
export class ActivityRetention extends Chore {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly retentionMs: number,
    /** The highest activity id nothing still needs (the observer's cursor, or the log's end). */
    private readonly safeUpTo: () => Promise<number>,
  ) {
    super(ACTIVITY_RETENTION);
  }

  async once(signal: AbortSignal): Promise<void> {
    const before = this.clock.now() - this.retentionMs;
    const maxId = await this.safeUpTo();
    for (;;) {
      const n = await this.store.pruneActivities({ before, maxId, limit: 10_000 });
      if (n < 10_000 || signal.aborted) return;
    }
  }
}
