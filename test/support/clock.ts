import type { Clock, TimerHandle } from '../../src/domain/clock.js';

class FakeTimer implements TimerHandle {
  readonly __timer = true as const;
  constructor(
    readonly due: number,
    readonly seq: number,
    readonly fn: () => void,
  ) {}
}

/**
 * A manual clock for tests. `advance(ms)` fires due timers in time order and lets promise chains
 * settle between them, so code that awaits after a timer runs as it would in real time.
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private timers = new Set<FakeTimer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = new FakeTimer(this.current + Math.max(0, ms), this.seq++, fn);
    this.timers.add(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as FakeTimer);
  }

  /** Number of timers still armed. */
  pending(): number {
    return this.timers.size;
  }

  /** Time of the next armed timer, if any. */
  nextDue(): number | undefined {
    let next: number | undefined;
    for (const t of this.timers) if (next === undefined || t.due < next) next = t.due;
    return next;
  }

  /**
   * Moves time `ms` ahead, firing due timers in order. `between`, if given, is awaited after each
   * timer at that timer's instant: the work a timer starts (a push, a signed request) ends before
   * time moves on, as it would in real time. Without it, work in flight sees time jump — a NIP-98
   * signature made before a jump of minutes is stale when zooid checks it after.
   */
  async advance(ms: number, between?: () => Promise<void>): Promise<void> {
    const target = this.current + ms;
    await settle();
    for (;;) {
      const next = this.earliest();
      if (!next || next.due > target) break;
      this.timers.delete(next);
      this.current = Math.max(this.current, next.due);
      next.fn();
      await settle();
      await between?.();
    }
    this.current = target;
    await settle();
  }

  /** Advances to the next armed timer and fires it (and any due at the same instant). */
  async next(): Promise<void> {
    const due = this.nextDue();
    if (due !== undefined) await this.advance(due - this.current);
  }

  private earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) {
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets pending promise callbacks and I/O callbacks run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
