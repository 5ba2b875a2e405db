import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../src/push/workqueue.js';

/** A process function whose calls stay open until the test finishes them. */
function gated() {
  const calls: string[] = [];
  const open = new Map<string, (() => void)[]>();
  const process = (key: string) =>
    new Promise<void>((resolve) => {
      calls.push(key);
      open.set(key, [...(open.get(key) ?? []), resolve]);
    });
  const finish = async (key: string) => {
    const waiting = open.get(key) ?? [];
    const resolve = waiting.shift();
    if (!resolve) throw new Error(`${key} is not in flight`);
    resolve();
    // Let the queue's finally block and pump run.
    await new Promise((r) => setImmediate(r));
  };
  return { calls, process, finish };
}

/** A queue of `concurrency` workers whose runs the test finishes one by one. */
function gatedQueue(concurrency: number) {
  const g = gated();
  return { g, q: new WorkQueue(concurrency, g.process, () => {}) };
}

describe('WorkQueue', () => {
  it('refuses a concurrency that is not a positive integer', () => {
    for (const c of [0, -1, 1.5, Number.NaN]) {
      expect(
        () =>
          new WorkQueue(
            c,
            async () => {},
            () => {},
          ),
      ).toThrow(/concurrency/);
    }
  });

  it('queues a key at most once while it waits', async () => {
    const { g, q } = gatedQueue(1);
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('b');
    expect(q.depth).toBe(1);
    await g.finish('a');
    await g.finish('b');
    await q.idle();
    expect(g.calls).toEqual(['a', 'b']);
  });

  it('never processes one key twice at once; an add during processing runs it once more after', async () => {
    const { g, q } = gatedQueue(4);
    q.add('a');
    q.add('a'); // in flight: marks dirty
    q.add('a'); // coalesces with the first dirty mark
    expect(g.calls).toEqual(['a']);
    expect(q.inFlight).toBe(1);
    await g.finish('a');
    expect(g.calls).toEqual(['a', 'a']);
    await g.finish('a');
    await q.idle();
    expect(g.calls).toEqual(['a', 'a']);
  });

  it('processes at most `concurrency` keys at a time, in arrival order', async () => {
    const { g, q } = gatedQueue(2);
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    expect(g.calls).toEqual(['a', 'b']);
    expect(q.inFlight).toBe(2);
    expect(q.depth).toBe(2);
    await g.finish('b');
    expect(g.calls).toEqual(['a', 'b', 'c']);
    await g.finish('a');
    await g.finish('c');
    await g.finish('d');
    await q.idle();
    expect(q.inFlight).toBe(0);
  });

  it('reports a failing key and goes on with the others', async () => {
    const errors: [string, unknown][] = [];
    const q = new WorkQueue(
      1,
      async (key) => {
        if (key === 'bad') throw new Error('boom');
      },
      (key, err) => errors.push([key, err]),
    );
    q.add('bad');
    q.add('good');
    await q.idle();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.[0]).toBe('bad');
  });

  it('drain drops waiting and dirty keys, waits for in-flight work and takes nothing after', async () => {
    const { g, q } = gatedQueue(1);
    q.add('a');
    q.add('b');
    q.add('a'); // dirty
    let drained = false;
    const draining = q.drain().then(() => {
      drained = true;
    });
    q.add('c');
    await new Promise((r) => setImmediate(r));
    expect(drained).toBe(false);
    await g.finish('a');
    await draining;
    expect(g.calls).toEqual(['a']);
    expect(q.depth).toBe(0);
  });

  it('idle resolves at once when there is nothing to do', async () => {
    const q = new WorkQueue(
      1,
      async () => {},
      () => {},
    );
    await expect(q.idle()).resolves.toBeUndefined();
  });
});
