import { backoffDelay } from '../domain/backoff.js';
import type { Random } from '../domain/random.js';

export interface RetryPolicy {
  /** First retry delay (ms). */
  baseMs: number;
  /** Largest delay (ms). */
  capMs: number;
  /** Attempts (the first sync included) after which the relay is marked failed. */
  maxAttempts: number;
  /** ± fraction of the delay, so relays that failed together don't retry together. */
  jitter: number;
}

/**
 * Delay before retry after the n-th consecutive failure: min(cap, base·2^(n−1)) ± jitter, or null
 * when n reached the maximum number of attempts.
 */
export function retryDelay(policy: RetryPolicy, failures: number, random: Random): number | null {
  if (failures >= policy.maxAttempts) return null;
  const curve = { baseMs: policy.baseMs, capMs: policy.capMs, jitter: { spread: policy.jitter } };
  return Math.max(0, Math.round(backoffDelay(curve, failures, random)));
}
