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
  const exp = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, failures - 1));
  const spread = exp * policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(exp + spread));
}
