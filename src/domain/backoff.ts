import type { Random } from './random.js';

/**
 * How each delay d is spread with r ∈ [0, 1) from the injected random:
 * - `spread`: d·(1 + spread·(2r − 1)), within d·(1 ± spread), so failures at one moment scatter;
 * - `below`: d − r·d·below, within (d·(1 − below), d] (the agent stream's reconnects, §7 of
 *   docs/stream-protocol.md: never later than the curve).
 */
export type Jitter = { spread: number } | { below: number };

/** A capped exponential backoff: base, 2·base, 4·base, … up to cap, each spread by its jitter. */
export interface BackoffCurve {
  baseMs: number;
  capMs: number;
  jitter?: Jitter;
}

/**
 * The wait after the n-th consecutive failure (n ≥ 1; 0 counts as 1): min(cap, base·2^(n−1)),
 * then jittered with one draw of `random` (required when the curve has a jitter). The one
 * backoff of bosun: push retries, zooid's weak retries, the observer, the change feed and the
 * agent all use it.
 */
export function backoffDelay(curve: BackoffCurve, failures: number, random?: Random): number {
  const d = Math.min(curve.capMs, curve.baseMs * 2 ** Math.max(0, failures - 1));
  if (!curve.jitter) return d;
  if (!random) throw new RangeError('backoffDelay: a jittered curve needs a random source');
  return jittered(d, curve.jitter, random());
}

/** `d` spread by `jitter` with the draw `r` (see Jitter). */
export function jittered(d: number, jitter: Jitter, r: number): number {
  return 'spread' in jitter ? d + d * jitter.spread * (2 * r - 1) : d - r * d * jitter.below;
}
