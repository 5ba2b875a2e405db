import { describe, expect, it } from 'vitest';
import { backoffDelay, jittered } from '../../src/domain/backoff.js';

const draws = (...values: number[]) => {
  const left = [...values];
  return () => {
    const r = left.shift();
    if (r === undefined) throw new Error('no draw left');
    return r;
  };
};

describe('backoffDelay', () => {
  it('doubles from the base after each failure and stops at the cap', () => {
    const curve = { baseMs: 100, capMs: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(curve, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
    // No failure yet counts as the first; a huge count is the cap, not Infinity or NaN.
    expect(backoffDelay(curve, 0)).toBe(100);
    expect(backoffDelay(curve, 5000)).toBe(1000);
    // A cap below the base wins.
    expect(backoffDelay({ baseMs: 100, capMs: 50 }, 1)).toBe(50);
  });

  it('spreads symmetrically with `spread`: d·(1 + s·(2r − 1)), one draw per delay', () => {
    const curve = { baseMs: 1000, capMs: 60_000, jitter: { spread: 0.1 } };
    const random = draws(0, 0.5, 0.75);
    expect(backoffDelay(curve, 1, random)).toBe(900);
    expect(backoffDelay(curve, 2, random)).toBe(2000);
    expect(backoffDelay(curve, 3, random)).toBeCloseTo(4200, 9);
    expect(() => random()).toThrow('no draw left');
  });

  it('spreads only downwards with `below`: d − r·d·below, never later than the curve', () => {
    const curve = { baseMs: 1000, capMs: 30_000, jitter: { below: 0.5 } };
    expect(backoffDelay(curve, 1, draws(0))).toBe(1000);
    expect(backoffDelay(curve, 1, draws(0.5))).toBe(750);
    expect(backoffDelay(curve, 6, draws(0.999))).toBeCloseTo(15_015, 6);
    for (const r of [0, 0.1, 0.5, 0.9, 0.999_999]) {
      const d = jittered(8000, { below: 0.5 }, r);
      expect(d).toBeGreaterThan(4000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });

  it('refuses a jittered curve without a random source instead of silently not jittering', () => {
    expect(() => backoffDelay({ baseMs: 1, capMs: 2, jitter: { spread: 0.2 } }, 1)).toThrow(RangeError);
  });
});
