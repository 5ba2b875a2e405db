import { describe, expect, it } from 'vitest';
import { ExpiryTimers, MAX_TIMER_STEP_MS } from '../../src/pull/agent/expiry.js';
import { FakeClock } from '../support/clock.js';

function setup() {
  const clock = new FakeClock();
  const fired: string[] = [];
  const conflicts: string[] = [];
  const timers = new ExpiryTimers(
    clock,
    (id, c) => fired.push(`${id} ${c.name}=${c.value}`),
    (id, name) => conflicts.push(`${id} ${name}`),
  );
  return { clock, fired, conflicts, timers, t0: clock.now() };
}

describe('ExpiryTimers', () => {
  it('fires once at expiresAt, not before', async () => {
    const { clock, fired, timers, t0 } = setup();
    timers.commit('a', [{ name: 'secret', value: 'k', expiresAt: t0 + 300 }]);
    await clock.advance(299);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual(['a secret=k']);
    await clock.advance(10_000);
    expect(fired).toEqual(['a secret=k']);
    expect(timers.armed()).toBe(0);
  });

  it('40 days ahead: re-armed in steps of at most 2^31−1 ms, never early', async () => {
    const { clock, fired, timers, t0 } = setup();
    const at = t0 + 40 * 86_400_000;
    timers.commit('a', [{ name: 'secret', value: 'k', expiresAt: at }]);
    let steps = 0;
    while (clock.now() < at - 1) {
      const due = clock.nextDue()!;
      expect(due - clock.now()).toBeLessThanOrEqual(MAX_TIMER_STEP_MS);
      await clock.advance(Math.min(due, at - 1) - clock.now());
      steps++;
      expect(fired).toEqual([]);
    }
    expect(steps).toBe(2);
    await clock.advance(1);
    expect(fired).toEqual(['a secret=k']);
  });

  it('strips expired entries and keeps the first expiresAt of a repeat', () => {
    const { timers, conflicts, t0 } = setup();
    const first = { name: 'secret', value: 'k', expiresAt: t0 + 1_000 };
    expect(
      timers.effective('a', [
        { name: 'secret', value: 'old', expiresAt: t0 },
        first,
        { ...first, expiresAt: t0 + 9_000 },
      ]),
    ).toEqual([first]);
    timers.commit('a', [first]);
    expect(timers.effective('a', [{ ...first, expiresAt: t0 + 5_000 }])).toEqual([first]);
    expect(conflicts).toEqual(['a secret']);
    timers.commit('a', [{ ...first, expiresAt: t0 + 5_000 }]);
    expect(timers.armed()).toBe(1);
  });

  it('one timer per (relay, name, value)', async () => {
    const { clock, fired, timers, t0 } = setup();
    timers.commit('a', [
      { name: 'secret', value: 'k', expiresAt: t0 + 10 },
      { name: 'other', value: 'k', expiresAt: t0 + 10 },
    ]);
    timers.commit('b', [{ name: 'secret', value: 'k', expiresAt: t0 + 10 }]);
    expect(timers.armed()).toBe(3);
    await clock.advance(10);
    expect(fired.sort()).toEqual(['a other=k', 'a secret=k', 'b secret=k']);
  });

  it('a rep that no longer lists it, forget() and cancelAll() disarm', async () => {
    const { clock, fired, timers, t0 } = setup();
    const cred = { name: 'secret', value: 'k', expiresAt: t0 + 10 };
    timers.commit('a', [cred]);
    timers.commit('a', []);
    timers.commit('b', [cred]);
    timers.forget('b');
    timers.commit('c', [cred]);
    timers.cancelAll();
    expect(clock.pending()).toBe(0);
    await clock.advance(100);
    expect(fired).toEqual([]);
  });

  it('a fired credential stays expired while reps keep listing it', async () => {
    const { clock, fired, timers, t0 } = setup();
    const cred = { name: 'secret', value: 'k', expiresAt: t0 + 10 };
    timers.commit('a', [cred]);
    await clock.advance(10);
    expect(timers.effective('a', [{ ...cred, expiresAt: t0 + 99_999 }])).toEqual([]);
    timers.commit('a', [{ ...cred, expiresAt: t0 + 99_999 }]);
    await clock.advance(200_000);
    expect(fired).toEqual(['a secret=k']);
  });
});
