import { describe, expect, it } from 'vitest';
import { defineChore } from '../../src/lifecycle/chore.js';
import { TARGET_HEALTH } from '../../src/push/zooid/target-health.js';

describe('defineChore', () => {
  it('gives a chore the usual defaults under what it sets itself', () => {
    expect(defineChore('x', { interval: 1000, timeout: 500 })).toEqual({
      name: 'x',
      config: {
        interval: 1000,
        timeout: 500,
        enabled: true,
        jitter: 0.05,
        runAtStart: true,
        needsLease: true,
      },
    });
    expect(
      defineChore('y', { interval: 1, timeout: 1, jitter: 0.2, runAtStart: false }).config,
    ).toMatchObject({
      jitter: 0.2,
      runAtStart: false,
      needsLease: true,
    });
    // Every replica probes its targets: not only the lease holder.
    expect(TARGET_HEALTH.config.needsLease).toBe(false);
  });
});
