import { describe, expect, it } from 'vitest';
import { Backoff, curveDelay, jitter, parseRetryAfter } from '../../../src/pull/agent/backoff.js';

const waits = (b: Backoff, n: number, opts = {}) => Array.from({ length: n }, () => b.failure(opts));

describe('normal curve', () => {
  it('r=0: 1, 2, 4, 8, 16, 30, 30 s', () => {
    expect(waits(new Backoff(() => 0), 7)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
  });

  it('r=0.5: three quarters; r→1: just above half', () => {
    expect(waits(new Backoff(() => 0.5), 3)).toEqual([750, 1_500, 3_000]);
    for (const w of waits(new Backoff(() => 0.999999), 7)) expect(w).toBeGreaterThan(0);
    const [w1] = waits(new Backoff(() => 0.999999), 1);
    expect(w1).toBeGreaterThan(500);
    expect(w1).toBeLessThan(500.01);
  });

  it('`retry:` sets the base (clamped to 100–60 000 ms) and resets the counter', () => {
    const b = new Backoff(() => 0);
    waits(b, 3);
    b.setRetryField(5_000);
    expect(waits(b, 4)).toEqual([5_000, 10_000, 20_000, 30_000]);
    b.setRetryField(10);
    expect(b.normalBase).toBe(100);
    expect(waits(b, 2)).toEqual([100, 200]);
    b.setRetryField(10_000_000);
    expect(b.normalBase).toBe(60_000);
    expect(waits(b, 1)).toEqual([30_000]);
  });

  it('resetNormal starts over', () => {
    const b = new Backoff(() => 0);
    waits(b, 4);
    b.resetNormal();
    expect(waits(b, 1)).toEqual([1_000]);
  });
});

describe('extended curve', () => {
  it('5 min base, 1 h cap, own counter; all failures use it until a put is applied', () => {
    const b = new Backoff(() => 0);
    waits(b, 2); // normal: 1 s, 2 s
    expect(waits(b, 1, { extended: true })).toEqual([300_000]);
    expect(waits(b, 5)).toEqual([600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000]);
    b.setRetryField(10); // never shortens it
    expect(waits(b, 1)).toEqual([3_600_000]);
    b.putApplied();
    expect(b.extended).toBe(false);
    expect(waits(b, 1)).toEqual([100]); // normal again, counter reset by retry:
    expect(waits(b, 1, { extended: true })).toEqual([300_000]);
  });

  it('r→1 halves', () => {
    const [w] = waits(new Backoff(() => 0.999), 1, { extended: true });
    expect(w).toBeGreaterThan(150_000);
    expect(w).toBeLessThanOrEqual(300_000);
  });
});

describe('Retry-After', () => {
  it('max(backoff, Retry-After·(1+0.2r)), at most 1 h', () => {
    expect(new Backoff(() => 0).failure({ retryAfterMs: 120_000 })).toBe(120_000);
    expect(new Backoff(() => 0.5).failure({ retryAfterMs: 100_000 })).toBeCloseTo(110_000, 6);
    expect(new Backoff(() => 0).failure({ retryAfterMs: 10 })).toBe(1_000);
    expect(new Backoff(() => 0.9).failure({ retryAfterMs: 3_600_000 })).toBe(3_600_000);
  });

  it('parses delta-seconds and HTTP dates', () => {
    const now = Date.UTC(2026, 0, 1);
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('99999999', now)).toBe(3_600_000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe('reconnect', () => {
  it('waits r·delayMs, by default r·base', () => {
    expect(new Backoff(() => 0.5).reconnectWait(10_000)).toBe(5_000);
    expect(new Backoff(() => 0.5).reconnectWait(undefined)).toBe(500);
    expect(new Backoff(() => 0).reconnectWait(10_000)).toBe(0);
  });
});

it('curve helpers', () => {
  expect(curveDelay(1_000, 30_000, 1)).toBe(1_000);
  expect(curveDelay(1_000, 30_000, 2000)).toBe(30_000);
  expect(jitter(1_000, 0)).toBe(1_000);
  expect(jitter(1_000, 0.5)).toBe(750);
});
