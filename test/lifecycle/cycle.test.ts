import { describe, expect, it, vi } from 'vitest';
import { sleep } from '../../src/domain/clock.js';
import {
  Cycle,
  type CycleOptions,
  type CycleRunInfo,
  CycleStoppedError,
  CycleTimeoutError,
} from '../../src/lifecycle/cycle.js';
import { FakeClock } from '../support/clock.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function setup(options: Partial<CycleOptions> = {}) {
  const clock = new FakeClock(0);
  const errors: unknown[] = [];
  const runs: CycleRunInfo[] = [];
  const cycle = new Cycle({
    name: 'test',
    interval: 1000,
    clock,
    onError: (err, name) => {
      expect(name).toBe('test');
      errors.push(err);
    },
    onRun: (info) => runs.push(info),
    ...options,
  });
  return { clock, cycle, errors, runs };
}

/** Tracks how many runs are in flight at once. */
function concurrency() {
  let active = 0;
  let max = 0;
  return {
    enter() {
      active++;
      max = Math.max(max, active);
    },
    leave() {
      active--;
    },
    get max() {
      return max;
    },
  };
}

describe('Cycle interval', () => {
  it('runs at once, then exactly one interval after each run ends', async () => {
    const { clock, cycle, runs, errors } = setup();
    const starts: number[] = [];
    const done = cycle.run(async (signal) => {
      starts.push(clock.now());
      await sleep(clock, 300, signal);
    });
    expect(starts).toEqual([0]);
    await clock.advance(1299);
    expect(starts).toEqual([0]);
    await clock.advance(1);
    expect(starts).toEqual([0, 1300]);
    await clock.advance(1299);
    expect(starts).toEqual([0, 1300]);
    await clock.advance(1);
    expect(starts).toEqual([0, 1300, 2600]);
    await clock.advance(300);
    expect(runs).toEqual([
      { name: 'test', durationMs: 300, ok: true },
      { name: 'test', durationMs: 300, ok: true },
      { name: 'test', durationMs: 300, ok: true },
    ]);
    expect(errors).toEqual([]);
    expect(clock.pending()).toBe(1);
    expect(clock.nextDue()).toBe(3900);
    await cycle.stop();
    await done;
    expect(clock.pending()).toBe(0);
  });

  it('with runAtStart false, first runs one interval after start; a trigger still runs at once', async () => {
    const { clock, cycle } = setup({ runAtStart: false });
    const starts: number[] = [];
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(999);
    expect(starts).toEqual([]);
    await clock.advance(1);
    expect(starts).toEqual([1000]);
    await clock.advance(500);
    cycle.trigger();
    await clock.advance(0);
    expect(starts).toEqual([1000, 1500]);
    await cycle.stop();
    await done;
  });

  it('is active from the moment a run is due or triggered until it returns', async () => {
    const { clock, cycle } = setup({ runAtStart: false });
    let release = deferred();
    const done = cycle.run(() => release.promise);
    expect(cycle.active).toBe(false);
    await clock.advance(1000);
    expect(cycle.active).toBe(true);
    release.resolve();
    await clock.advance(0);
    expect(cycle.active).toBe(false);
    release = deferred();
    cycle.trigger();
    expect(cycle.active).toBe(true);
    await clock.advance(0);
    expect(cycle.active).toBe(true);
    release.resolve();
    await clock.advance(0);
    expect(cycle.active).toBe(false);
    await cycle.stop();
    await done;
  });

  it('keeps exact spacing for instant jobs', async () => {
    const { clock, cycle } = setup({ interval: 250 });
    const starts: number[] = [];
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(1000);
    expect(starts).toEqual([0, 250, 500, 750, 1000]);
    await cycle.stop();
    await done;
  });

  it('applies jitter as interval·(1 + jitter·(2r − 1)) with a pinned random', async () => {
    const values = [0, 0.5, 0.75, 0.9999, 0.25];
    const random = vi.fn(() => values.shift() ?? 0.5);
    const { clock, cycle } = setup({ interval: 1000, jitter: 0.2, random });
    const starts: number[] = [];
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    // The first wait is 800 ms (r = 0): nothing at 799, a run at 800.
    await clock.advance(799);
    expect(starts).toEqual([0]);
    await clock.advance(1);
    expect(starts).toEqual([0, 800]);
    for (let i = 0; i < 4; i++) await clock.next();
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    expect(gaps).toEqual([800, 1000, 1100, 1200, 900]);
    expect(random).toHaveBeenCalledTimes(6); // one per armed wait, including the one pending now
    await cycle.stop();
    await done;
  });

  it('keeps every jittered wait within interval·(1 ± jitter)', async () => {
    let seed = 42;
    const lcg = () => {
      seed = (seed * 1664525 + 1013904223) % 2 ** 32;
      return seed / 2 ** 32;
    };
    const { clock, cycle } = setup({ interval: 1000, jitter: 0.3, random: lcg });
    const starts: number[] = [];
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(0); // let the first run end and arm its wait
    for (let i = 0; i < 200; i++) await clock.next();
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    expect(gaps).toHaveLength(200);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(700);
      expect(gap).toBeLessThanOrEqual(1300);
    }
    expect(Math.min(...gaps)).toBeLessThan(800);
    expect(Math.max(...gaps)).toBeGreaterThan(1200);
    await cycle.stop();
    await done;
  });

  it('does not draw randomness without jitter', async () => {
    const random = vi.fn(() => 0);
    const { clock, cycle } = setup({ random });
    const done = cycle.run(async () => {});
    await clock.advance(3000);
    expect(random).not.toHaveBeenCalled();
    await cycle.stop();
    await done;
  });

  it('rejects invalid options and a second run()', async () => {
    const clock = new FakeClock(0);
    expect(() => new Cycle({ name: 'x', interval: 0, clock })).toThrow(RangeError);
    expect(() => new Cycle({ name: 'x', interval: 10, timeout: -1, clock })).toThrow(RangeError);
    expect(() => new Cycle({ name: 'x', interval: 10, jitter: 1.5, clock })).toThrow(/jitter/);
    const cycle = new Cycle({ name: 'x', interval: 10, clock });
    const done = cycle.run(async () => {});
    await expect(cycle.run(async () => {})).rejects.toThrow('cycle "x" is already running');
    await cycle.stop();
    await done;
  });
});

describe('Cycle trigger', () => {
  it('coalesces three triggers during a run into exactly one extra run', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    const gates: Deferred[] = [];
    const c = concurrency();
    const done = cycle.run(async () => {
      starts.push(clock.now());
      c.enter();
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
      c.leave();
    });
    await clock.advance(100);
    cycle.trigger();
    cycle.trigger();
    cycle.trigger();
    await clock.advance(100);
    expect(starts).toEqual([0]);
    gates[0]?.resolve();
    await clock.advance(0);
    expect(starts).toEqual([0, 200]);
    expect(clock.pending()).toBe(0); // no interval timer while a run is in flight
    gates[1]?.resolve();
    await clock.advance(0);
    expect(starts).toEqual([0, 200]);
    await clock.advance(999);
    expect(starts).toEqual([0, 200]);
    await clock.advance(1);
    expect(starts).toEqual([0, 200, 1200]);
    expect(c.max).toBe(1);
    gates[2]?.resolve();
    await cycle.stop();
    await done;
  });

  it('runs at once when idle and restarts the interval after that run', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(500);
    cycle.trigger();
    await clock.advance(0);
    expect(starts).toEqual([0, 500]);
    await clock.advance(999);
    expect(starts).toEqual([0, 500]);
    await clock.advance(1);
    expect(starts).toEqual([0, 500, 1500]);
    await cycle.stop();
    await done;
  });

  it('coalesces a trigger made before run() with the initial run', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    cycle.trigger();
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(999);
    expect(starts).toEqual([0]);
    await cycle.stop();
    await done;
  });

  it('triggerWait resolves when the run it asked for has finished', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    const done = cycle.run(async (signal) => {
      starts.push(clock.now());
      await sleep(clock, 500, signal);
    });
    await clock.advance(100);
    // A run is in flight (0..500): the requested run is the next one (500..1000).
    let resolvedAt = -1;
    const waited = cycle.triggerWait().then(() => {
      resolvedAt = clock.now();
    });
    let secondAt = -1;
    const second = cycle.triggerWait().then(() => {
      secondAt = clock.now();
    });
    await clock.advance(899);
    expect(starts).toEqual([0, 500]);
    expect(resolvedAt).toBe(-1);
    await clock.advance(1);
    await waited;
    await second;
    expect(resolvedAt).toBe(1000);
    expect(secondAt).toBe(1000);
    expect(starts).toEqual([0, 500]);

    // Idle: runs at once (1200..1700), and the next interval run is at 2700.
    await clock.advance(200);
    const idle = cycle.triggerWait();
    await clock.advance(0);
    expect(starts).toEqual([0, 500, 1200]);
    await clock.advance(500);
    await idle;
    expect(clock.now()).toBe(1700);
    await clock.advance(999);
    expect(starts).toEqual([0, 500, 1200]);
    await clock.advance(1);
    expect(starts).toEqual([0, 500, 1200, 2700]);
    await cycle.stop();
    await done;
  });

  it('triggerWait resolves even when its run fails (the error goes to onError)', async () => {
    const { clock, cycle, errors } = setup();
    let calls = 0;
    const done = cycle.run(async () => {
      calls++;
      if (calls === 2) throw new Error('second run failed');
    });
    await clock.advance(10);
    await cycle.triggerWait();
    expect(calls).toBe(2);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('second run failed');
    await cycle.stop();
    await done;
  });
});

describe('Cycle failures', () => {
  it('aborts a run that overruns its timeout, reports it failed, and goes on', async () => {
    const { clock, cycle, errors, runs } = setup({ timeout: 200 });
    const starts: number[] = [];
    const signals: AbortSignal[] = [];
    let calls = 0;
    const done = cycle.run(async (signal) => {
      calls++;
      starts.push(clock.now());
      signals.push(signal);
      if (calls === 1) await sleep(clock, 1000, signal); // honours the signal: rejects at 200
      if (calls === 2) await sleep(clock, 300); // ignores the signal, resolves at 300: still a failure
    });
    await clock.advance(199);
    expect(signals[0]?.aborted).toBe(false);
    await clock.advance(1);
    expect(signals[0]?.aborted).toBe(true);
    const reason = signals[0]?.reason;
    expect(reason).toBeInstanceOf(CycleTimeoutError);
    expect(reason.name).toBe('TimeoutError');
    expect(reason.timeoutMs).toBe(200);
    expect(errors).toEqual([reason]);
    expect(runs).toEqual([{ name: 'test', durationMs: 200, ok: false }]);

    await clock.advance(1000); // 1200: second run
    expect(starts).toEqual([0, 1200]);
    await clock.advance(300); // 1500: it returns, 100 ms past its timeout
    expect(signals[1]?.aborted).toBe(true);
    expect(errors).toHaveLength(2);
    expect(errors[1]).toBeInstanceOf(CycleTimeoutError);
    expect(runs[1]).toEqual({ name: 'test', durationMs: 300, ok: false });

    await clock.advance(1000); // 2500: third run, instant and fine
    expect(starts).toEqual([0, 1200, 2500]);
    expect(runs[2]).toEqual({ name: 'test', durationMs: 0, ok: true });
    expect(signals[2]?.aborted).toBe(false);
    expect(errors).toHaveLength(2);
    await cycle.stop();
    await done;
  });

  it('reports an error in one run and keeps the cycle going', async () => {
    const { clock, cycle, errors, runs } = setup();
    const starts: number[] = [];
    const boom1 = new Error('boom 1');
    const boom3 = new Error('boom 3');
    const done = cycle.run(async () => {
      starts.push(clock.now());
      if (starts.length === 1) throw boom1;
      if (starts.length === 3) throw boom3;
    });
    await clock.advance(3000);
    expect(starts).toEqual([0, 1000, 2000, 3000]);
    expect(errors).toEqual([boom1, boom3]);
    expect(runs.map((r) => r.ok)).toEqual([false, true, false, true]);
    await cycle.stop();
    await done;
  });

  it('survives hooks that throw', async () => {
    const clock = new FakeClock(0);
    const starts: number[] = [];
    const cycle = new Cycle({
      name: 'hooks',
      interval: 100,
      clock,
      onError: () => {
        throw new Error('onError broke');
      },
      onRun: () => {
        throw new Error('onRun broke');
      },
    });
    const done = cycle.run(async () => {
      starts.push(clock.now());
      throw new Error('job');
    });
    await clock.advance(200);
    expect(starts).toEqual([0, 100, 200]);
    await cycle.stop();
    await done;
  });
});

describe('Cycle pause and restart', () => {
  it('pause stops interval runs; trigger still runs; restart resets the timer', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(500);
    cycle.pause();
    expect(clock.pending()).toBe(0);
    await clock.advance(5000); // t = 5500
    expect(starts).toEqual([0]);

    cycle.trigger(); // explicit requests still run while paused
    await clock.advance(0);
    expect(starts).toEqual([0, 5500]);
    expect(clock.pending()).toBe(0); // and arm no interval timer afterwards

    await clock.advance(500); // t = 6000
    cycle.restart();
    await clock.advance(999);
    expect(starts).toEqual([0, 5500]);
    await clock.advance(1); // t = 7000
    expect(starts).toEqual([0, 5500, 7000]);

    await clock.advance(300); // t = 7300: restart while running resets the interval timer
    cycle.restart();
    await clock.advance(700); // 8000 would have been the next run
    expect(starts).toEqual([0, 5500, 7000]);
    await clock.advance(300);
    expect(starts).toEqual([0, 5500, 7000, 8300]);
    await cycle.stop();
    await done;
  });

  it('paused before run(): no initial run until triggered or restarted', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    cycle.pause();
    const done = cycle.run(async () => {
      starts.push(clock.now());
    });
    await clock.advance(5000);
    expect(starts).toEqual([]);
    expect(clock.pending()).toBe(0);
    await cycle.triggerWait();
    expect(starts).toEqual([5000]);
    cycle.restart();
    await clock.advance(1000);
    expect(starts).toEqual([5000, 6000]);
    await cycle.stop();
    await done;
  });

  it('pause during a run arms no timer after it', async () => {
    const { clock, cycle } = setup();
    const starts: number[] = [];
    const done = cycle.run(async (signal) => {
      starts.push(clock.now());
      await sleep(clock, 200, signal);
    });
    await clock.advance(100);
    cycle.pause();
    await clock.advance(100);
    expect(clock.pending()).toBe(0);
    await clock.advance(10_000);
    expect(starts).toEqual([0]);
    await cycle.stop();
    await done;
  });
});

describe('Cycle stop', () => {
  it('aborts the in-flight run, resolves run(), and turns triggers into no-ops', async () => {
    const { clock, cycle, errors, runs } = setup();
    const starts: number[] = [];
    let signal: AbortSignal | undefined;
    let runResolvedAt = -1;
    const done = cycle
      .run(async (s) => {
        signal = s;
        starts.push(clock.now());
        await sleep(clock, 1000, s);
      })
      .then(() => {
        runResolvedAt = clock.now();
      });
    await clock.advance(100);
    const queued = cycle.triggerWait(); // waits for the next run, which will never come
    const queuedResult = queued.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    const stopped = cycle.stop();
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBeInstanceOf(CycleStoppedError);
    await stopped;
    await done;
    expect(runResolvedAt).toBe(100);
    expect(await queuedResult).toBeInstanceOf(CycleStoppedError);
    expect(errors).toEqual([]); // a run aborted by stop is not an error
    expect(runs).toEqual([{ name: 'test', durationMs: 100, ok: false }]);
    expect(clock.pending()).toBe(0);

    cycle.trigger();
    cycle.restart();
    await clock.advance(10_000);
    expect(starts).toEqual([0]);
    await expect(cycle.triggerWait()).rejects.toBeInstanceOf(CycleStoppedError);
    await expect(cycle.stop()).resolves.toBeUndefined();
  });

  it('stop waits for a job that ignores its signal', async () => {
    const { clock, cycle } = setup();
    const done = cycle.run(async () => {
      await sleep(clock, 300);
    });
    await clock.advance(100);
    let stoppedAt = -1;
    const stopped = cycle.stop().then(() => {
      stoppedAt = clock.now();
    });
    await clock.advance(199);
    expect(stoppedAt).toBe(-1);
    await clock.advance(1);
    await stopped;
    await done;
    expect(stoppedAt).toBe(300);
  });

  it('rejects a triggerWait whose run is aborted by stop', async () => {
    const { clock, cycle } = setup();
    let calls = 0;
    const done = cycle.run(async (signal) => {
      calls++;
      if (calls === 2) await sleep(clock, 1000, signal);
    });
    await clock.advance(10);
    const waited = cycle.triggerWait().then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await clock.advance(10);
    expect(calls).toBe(2);
    await cycle.stop();
    await done;
    expect(await waited).toBeInstanceOf(CycleStoppedError);
  });

  it('stops when the outer signal aborts, passing its reason to the run', async () => {
    const { clock, cycle, errors } = setup();
    const outer = new AbortController();
    let signal: AbortSignal | undefined;
    const starts: number[] = [];
    const done = cycle.run(async (s) => {
      signal = s;
      starts.push(clock.now());
      await sleep(clock, 500, s);
    }, outer.signal);
    await clock.advance(50);
    const reason = new Error('shutting down');
    outer.abort(reason);
    await done;
    expect(signal?.reason).toBe(reason);
    expect(errors).toEqual([]);
    await clock.advance(5000);
    expect(starts).toEqual([0]);
    expect(clock.pending()).toBe(0);
  });

  it('stop before run(): run() returns without running', async () => {
    const { cycle } = setup();
    const fn = vi.fn(async () => {});
    await cycle.stop();
    await cycle.run(fn);
    expect(fn).not.toHaveBeenCalled();
  });
});
