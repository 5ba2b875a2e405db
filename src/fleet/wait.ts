import type { ScheduledRelay } from '../domain/fleet/plan.js';
import type { RelaySyncView } from './api-syncer.js';

export interface WaitProgress {
  total: number;
  synced: string[];
  failed: { id: string; error: string }[];
  pending: string[];
}

export interface WaitOutcome extends WaitProgress {
  timedOut: boolean;
}

/**
 * Polls the sync state of the relays an apply scheduled until each is synced (zooid acknowledged
 * the applied version or a newer one) or failed (no more retries), or the timeout passes.
 */
export async function waitForSync(opts: {
  scheduled: ScheduledRelay[];
  poll: () => Promise<Map<string, RelaySyncView>>;
  intervalMs: number;
  timeoutMs: number;
  onProgress?: (p: WaitProgress) => void;
  /** Time, injectable for tests. The default timer keeps the process alive while it waits. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}): Promise<WaitOutcome> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = now() + opts.timeoutMs;
  for (;;) {
    const states = await opts.poll();
    const progress: WaitProgress = { total: opts.scheduled.length, synced: [], failed: [], pending: [] };
    for (const relay of opts.scheduled) {
      const s = states.get(relay.id);
      if (!s) progress.failed.push({ id: relay.id, error: 'no longer in the fleet (deleted or moved)' });
      else if (s.status === 'synced' && s.synced_version >= relay.version) progress.synced.push(relay.id);
      // A pull-only fleet's agents configure zooid: there is no push to wait for.
      else if (s.status === 'pull') progress.synced.push(relay.id);
      else if (s.status === 'failed') progress.failed.push({ id: relay.id, error: s.error });
      else progress.pending.push(relay.id);
    }
    opts.onProgress?.(progress);
    if (progress.pending.length === 0) return { ...progress, timedOut: false };
    if (now() >= deadline) return { ...progress, timedOut: true };
    await sleep(Math.min(opts.intervalMs, Math.max(0, deadline - now())));
  }
}
