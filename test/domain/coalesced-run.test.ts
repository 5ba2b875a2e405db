import { describe, expect, it } from 'vitest';
import { CoalescedRun } from '../../src/domain/coalesced-run.js';

/** A task whose runs the test finishes one by one. */
function gatedTask() {
  const gates: (() => void)[] = [];
  let runs = 0;
  return {
    task: () => {
      runs++;
      return new Promise<void>((resolve) => gates.push(resolve));
    },
    finishRun: async () => {
      gates.shift()!();
      for (let i = 0; i < 5; i++) await Promise.resolve();
    },
    runs: () => runs,
  };
}

describe('CoalescedRun', () => {
  it('runs once per idle request, and once more after a run for any number of requests made during it', async () => {
    const t = gatedTask();
    const run = new CoalescedRun({ task: t.task, onError: () => {}, stopped: () => false });
    expect(run.current).toBeNull();
    run.request();
    expect(t.runs()).toBe(1);
    run.request();
    run.request();
    run.request();
    expect(t.runs()).toBe(1);
    const current = run.current;
    await t.finishRun();
    expect(t.runs()).toBe(2);
    expect(run.current).toBe(current);
    await t.finishRun();
    expect(t.runs()).toBe(2);
    await current;
    expect(run.current).toBeNull();
    run.request();
    expect(t.runs()).toBe(3);
    await t.finishRun();
    expect(run.current).toBeNull();
  });

  it('reports a failed run and waits for the next request; ignores requests once stopped', async () => {
    const errors: unknown[] = [];
    let stopped = false;
    let fail = true;
    let runs = 0;
    const run = new CoalescedRun({
      task: async () => {
        runs++;
        if (fail) throw new Error('log unreadable');
      },
      onError: (err) => errors.push(err),
      stopped: () => stopped,
    });
    run.request();
    await run.current;
    expect(errors.map((e) => (e as Error).message)).toEqual(['log unreadable']);
    expect(runs).toBe(1);
    fail = false;
    run.request();
    await run.current;
    expect(runs).toBe(2);
    stopped = true;
    run.request();
    expect(run.current).toBeNull();
    expect(runs).toBe(2);
  });

  it('stops re-running once stopped, even with a request pending', async () => {
    const t = gatedTask();
    let stopped = false;
    const run = new CoalescedRun({ task: t.task, onError: () => {}, stopped: () => stopped });
    run.request();
    run.request();
    stopped = true;
    await t.finishRun();
    expect(t.runs()).toBe(1);
    expect(run.current).toBeNull();
  });

  it('reports a failure once the run is over, so the error handler may request another run', async () => {
    let runs = 0;
    const seen: (Promise<void> | null)[] = [];
    const run: CoalescedRun = new CoalescedRun({
      task: async () => {
        runs++;
        if (runs === 1) throw new Error('busy');
      },
      onError: () => {
        seen.push(run.current);
        run.request();
      },
      stopped: () => false,
    });
    run.request();
    run.request(); // made during the failing run: it does not by itself cause another run
    const first = run.current;
    await first;
    expect(seen).toEqual([null]);
    expect(runs).toBe(2);
    await run.current;
    expect(runs).toBe(2);
    expect(run.current).toBeNull();
  });

  it('does not run again after a failure when the handler does not ask, even with requests made during it', async () => {
    const t = gatedTask();
    const errors: unknown[] = [];
    const run = new CoalescedRun({
      task: async () => {
        await t.task();
        throw new Error('down');
      },
      onError: (err) => errors.push(err),
      stopped: () => false,
    });
    run.request();
    const current = run.current;
    run.request();
    await t.finishRun();
    await current;
    expect(errors).toHaveLength(1);
    expect(t.runs()).toBe(1);
    expect(run.current).toBeNull();
  });
});
