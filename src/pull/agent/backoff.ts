/**
 * Reconnect delays of the autoconfig stream (docs/stream-protocol.md §2, §7). Every wait is
 * d − r·d/2 for r ∈ [0, 1) from the injected random, so it lies in (d/2, d].
 */
import { backoffDelay, type Jitter, jittered } from '../../domain/backoff.js';
import type { Random } from '../../domain/random.js';

export const NORMAL_BASE_MS = 1_000;
export const NORMAL_CAP_MS = 30_000;
export const EXTENDED_BASE_MS = 5 * 60_000;
export const EXTENDED_CAP_MS = 60 * 60_000;
export const RETRY_FIELD_MIN_MS = 100;
export const RETRY_FIELD_MAX_MS = 60_000;
/** No wait is ever longer (Retry-After included). */
export const MAX_WAIT_MS = 60 * 60_000;

/** Never later than the curve, never sooner than half of it. */
const JITTER: Jitter = { below: 0.5 };

/** min(cap, base·2^(n−1)) for the n-th consecutive failure (n ≥ 1). */
export function curveDelay(base: number, cap: number, n: number): number {
  return backoffDelay({ baseMs: base, capMs: cap }, n);
}

export function jitter(d: number, r: number): number {
  return jittered(d, JITTER, r);
}

export interface FailureWait {
  /** 401/403, 3xx, other 4xx, certificate errors once started: switch to the extended curve. */
  extended?: boolean;
  /** Parsed Retry-After of a 429/503, in ms. */
  retryAfterMs?: number | undefined;
}

/**
 * Two curves with their own counters. The extended curve, once entered, applies to every failure
 * until an applied put ends it; `retry:` only ever changes the normal curve.
 */
export class Backoff {
  private base = NORMAL_BASE_MS;
  private normalFailures = 0;
  private extendedFailures = 0;
  private extendedActive = false;

  constructor(private readonly random: Random) {}

  /** The normal-curve base: 1 s, or the server's last `retry:`. */
  get normalBase(): number {
    return this.base;
  }

  get extended(): boolean {
    return this.extendedActive;
  }

  /** A `retry: <ms>` field: sets the normal base (clamped to 100–60 000 ms) and resets its counter. */
  setRetryField(ms: number): void {
    this.base = Math.min(RETRY_FIELD_MAX_MS, Math.max(RETRY_FIELD_MIN_MS, ms));
    this.normalFailures = 0;
  }

  /** The connection had been healthy for ≥ 60 s: the normal curve starts over. */
  resetNormal(): void {
    this.normalFailures = 0;
  }

  /** A put was applied: the extended curve ends. */
  putApplied(): void {
    this.extendedActive = false;
    this.extendedFailures = 0;
  }

  /** Counts a failure and returns how long to wait before the next attempt. */
  failure(opts: FailureWait = {}): number {
    if (opts.extended) this.extendedActive = true;
    const r = this.random();
    let wait: number;
    if (this.extendedActive) {
      this.extendedFailures++;
      wait = jitter(curveDelay(EXTENDED_BASE_MS, EXTENDED_CAP_MS, this.extendedFailures), r);
    } else {
      this.normalFailures++;
      wait = jitter(curveDelay(this.base, NORMAL_CAP_MS, this.normalFailures), r);
    }
    if (opts.retryAfterMs !== undefined) wait = Math.max(wait, opts.retryAfterMs * (1 + 0.2 * r));
    return Math.min(wait, MAX_WAIT_MS);
  }

  /** A `reconnect` event (not a failure): r·delayMs, by default r·base. */
  reconnectWait(delayMs: number | undefined): number {
    return Math.min(MAX_WAIT_MS, this.random() * (delayMs ?? this.base));
  }
}

/** Retry-After as delta-seconds or an HTTP date, in ms from `now`; undefined when absent or unusable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_WAIT_MS);
  // HTTP dates (IMF-fixdate, RFC 850, asctime) all start with a day name.
  const at = /^[A-Za-z]{3}/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_WAIT_MS);
}
