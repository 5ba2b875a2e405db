import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { sleep } from '../../src/domain/clock.js';
import {
  type Service,
  ServiceError,
  ServiceGroup,
  ServiceGroupClosedError,
} from '../../src/lifecycle/group.js';
import { FakeClock } from '../support/clock.js';

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** A service that runs until its signal aborts, and records its close. */
function idle(name: string, log: string[]): Service {
  return {
    name,
    run: async (signal) => {
      await untilAborted(signal);
      log.push(`${name}:returned`);
    },
    close: async () => {
      log.push(`${name}:closed`);
    },
  };
}

function settledState(p: Promise<unknown>) {
  const state: { settled: boolean; value: unknown; error: unknown } = {
    settled: false,
    value: undefined,
    error: undefined,
  };
  p.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

describe('ServiceGroup.run', () => {
  it('resolves when every service has returned', async () => {
    const clock = new FakeClock(0);
    const group = new ServiceGroup({ clock });
    for (const [name, ms] of [
      ['a', 100],
      ['b', 200],
    ] as const) {
      group.add({ name, run: () => sleep(clock, ms), close: async () => {} });
    }
    const state = settledState(group.run());
    await clock.advance(199);
    expect(state.settled).toBe(false);
    await clock.advance(1);
    expect(state).toEqual({ settled: true, value: undefined, error: undefined });
  });

  it('a fatal error aborts the others and rejects with that first error once all returned', async () => {
    const clock = new FakeClock(0);
    const group = new ServiceGroup({ clock });
    const log: string[] = [];
    let apiSignal: AbortSignal | undefined;
    const boom = new Error('boom');
    group.add({
      name: 'api',
      run: async (signal) => {
        apiSignal = signal;
        await untilAborted(signal);
        await sleep(clock, 50); // winds down for 50 ms
        log.push(`api:returned@${clock.now()}`);
      },
      close: async () => {},
    });
    group.add({
      name: 'observer',
      run: async () => {
        await sleep(clock, 100);
        throw boom;
      },
      close: async () => {},
    });
    group.add({
      name: 'chores',
      run: async (signal) => {
        await untilAborted(signal);
        log.push(`chores:returned@${clock.now()}`);
        throw signal.reason; // a later rejection: ignored
      },
      close: async () => {},
    });
    const running = group.run();
    const state = settledState(running);
    await clock.advance(99);
    expect(apiSignal?.aborted).toBe(false);
    await clock.advance(1);
    expect(apiSignal?.aborted).toBe(true);
    expect(log).toEqual(['chores:returned@100']);
    expect(state.settled).toBe(false); // api is still winding down
    await clock.advance(49);
    expect(state.settled).toBe(false);
    await clock.advance(1);
    expect(state.settled).toBe(true);
    expect(log).toEqual(['chores:returned@100', 'api:returned@150']);
    const err = state.error as ServiceError;
    expect(err).toBeInstanceOf(ServiceError);
    expect(err.message).toBe('service "observer" run failed: boom');
    expect(err.service).toBe('observer');
    expect(err.cause).toBe(boom);
    expect(apiSignal?.reason).toBe(err);
    await expect(running).rejects.toBe(err);
  });

  it('treats a synchronous throw from run as fatal', async () => {
    const group = new ServiceGroup({ clock: new FakeClock(0) });
    const log: string[] = [];
    group.add(idle('a', log));
    group.add({
      name: 'bad',
      run: () => {
        throw new Error('sync');
      },
      close: async () => {},
    });
    await expect(group.run()).rejects.toThrow('service "bad" run failed: sync');
    expect(log).toEqual(['a:returned']);
  });

  it('close() stops running services and run() resolves', async () => {
    const clock = new FakeClock(0);
    const group = new ServiceGroup({ clock });
    const log: string[] = [];
    const signals: AbortSignal[] = [];
    group.add(idle('a', log));
    group.add({
      name: 'b',
      run: async (signal) => {
        signals.push(signal);
        await untilAborted(signal);
        throw signal.reason; // shutting down with an abort error is not fatal
      },
      close: async () => {},
    });
    const running = group.run();
    await clock.advance(1000);
    await group.close();
    await expect(running).resolves.toBeUndefined();
    expect(signals[0]?.reason).toBeInstanceOf(ServiceGroupClosedError);
    expect(log).toEqual(['a:returned', 'a:closed']);
  });

  it('stops when the signal given to run() aborts', async () => {
    const group = new ServiceGroup({ clock: new FakeClock(0) });
    const log: string[] = [];
    group.add(idle('a', log)).add(idle('b', log));
    const outer = new AbortController();
    const running = group.run(outer.signal);
    outer.abort(new Error('SIGTERM'));
    await expect(running).resolves.toBeUndefined();
    expect(log).toEqual(['a:returned', 'b:returned']);
    expect((group.signal.reason as Error).message).toBe('SIGTERM');
  });

  it('refuses add() after run() and a second run(); run() after close() starts nothing', async () => {
    const group = new ServiceGroup({ clock: new FakeClock(0) });
    const log: string[] = [];
    group.add(idle('a', log));
    const running = group.run();
    expect(() => group.add(idle('late', log))).toThrow('cannot add service "late"');
    await expect(group.run()).rejects.toThrow('already running');
    await group.close();
    await running;

    const closed = new ServiceGroup({ clock: new FakeClock(0) });
    const run = vi.fn(async () => {});
    closed.add({ name: 'x', run, close: async () => {} });
    await closed.close();
    await closed.run();
    expect(run).not.toHaveBeenCalled();
  });
});

describe('ServiceGroup.close', () => {
  it('closes in reverse order of add, one at a time, and is idempotent', async () => {
    const clock = new FakeClock(0);
    const group = new ServiceGroup({ clock });
    const log: string[] = [];
    for (const name of ['store', 'observer', 'api']) {
      group.add({
        name,
        run: async () => {},
        close: async () => {
          log.push(`${name}:start@${clock.now()}`);
          await sleep(clock, 100);
          log.push(`${name}:end@${clock.now()}`);
        },
      });
    }
    const first = group.close();
    const second = group.close();
    expect(second).toBe(first);
    await clock.advance(300);
    await first;
    expect(log).toEqual([
      'api:start@0',
      'api:end@100',
      'observer:start@100',
      'observer:end@200',
      'store:start@200',
      'store:end@300',
    ]);
    expect(group.close()).toBe(first);
    await group.close();
    expect(log).toHaveLength(6);
    expect(group.signal.aborted).toBe(true);
  });

  it('collects close errors and still closes the rest', async () => {
    const group = new ServiceGroup({ clock: new FakeClock(0) });
    const log: string[] = [];
    const bad = new Error('flush failed');
    group.add(idle('a', log));
    group.add({
      name: 'b',
      run: async () => {},
      close: async () => {
        log.push('b:closed');
        throw bad;
      },
    });
    group.add(idle('c', log));
    const err = (await group.close().catch((e: unknown) => e)) as AggregateError;
    expect(err).toBeInstanceOf(AggregateError);
    expect(err.message).toBe('closing services failed: service "b" close failed: flush failed');
    expect(err.errors).toHaveLength(1);
    expect(err.errors[0]).toBeInstanceOf(ServiceError);
    expect(err.errors[0].service).toBe('b');
    expect(err.errors[0].cause).toBe(bad);
    expect(log).toEqual(['c:closed', 'b:closed', 'a:closed']);
    // Idempotent also when it failed: the same rejected promise.
    await expect(group.close()).rejects.toBe(err);
  });

  it('logs and moves on when a close exceeds closeTimeoutMs', async () => {
    const clock = new FakeClock(0);
    const logger = pino({ level: 'silent' });
    const warn = vi.spyOn(logger, 'warn');
    const group = new ServiceGroup({ clock, closeTimeoutMs: 1000, logger });
    const log: string[] = [];
    group.add(idle('a', log));
    group.add({
      name: 'stuck',
      run: async () => {},
      close: () => new Promise<void>(() => {}),
    });
    const state = settledState(group.close());
    await clock.advance(999);
    expect(log).toEqual([]);
    expect(warn).not.toHaveBeenCalled();
    await clock.advance(1);
    expect(log).toEqual(['a:closed']);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledWith(
      { component: 'stuck', timeoutMs: 1000 },
      'service close timed out; moving on',
    );
    expect(state.settled).toBe(true);
    const err = state.error as AggregateError;
    expect(err.errors.map((e: Error) => e.message)).toEqual([
      'service "stuck" close failed: timed out after 1000 ms',
    ]);
    expect(clock.pending()).toBe(0);
  });
});
