/**
 * A Cycle runs one job periodically, modelled on Storj's `sync2.Cycle`: the job runs at
 * once when the cycle starts (or, with `runAtStart: false`, one interval later), then again
 * `interval` after each run ends, until the cycle is stopped.
 *
 * Semantics (all timing goes through the injected Clock, so tests drive a FakeClock):
 * - Never two runs at once. A run is cooperative: its signal is aborted on timeout or stop, and the
 *   cycle waits for the job to return before doing anything else.
 * - `trigger()` asks for a run now. Triggers that arrive while a run is in flight coalesce into exactly
 *   one extra run right after it. A triggered run replaces the pending interval run: the interval timer
 *   restarts when it ends.
 * - `triggerWait()` is a trigger whose promise resolves when a run that started after the call has
 *   finished (whether that run succeeded or failed — failures go to `onError`). It rejects with a
 *   CycleStoppedError if the cycle is stopped before that run completes.
 * - `pause()` stops interval runs (including the initial run, if the cycle has not started yet).
 *   Like Storj, explicit requests still work while paused: `trigger()` and `triggerWait()` run the job
 *   at once; they are not deferred until `restart()`. `restart()` unpauses and re-arms the interval
 *   timer from now (the next interval run is one interval later, not immediate).
 * - A run that overruns `timeout` has its signal aborted with a CycleTimeoutError and counts as failed
 *   (`onError` gets the timeout error, `onRun` gets `ok: false`), even if the job ignored the signal and
 *   resolved afterwards. Any error from a run is reported through `onError`; the cycle goes on.
 * - `stop()` (idempotent) aborts the in-flight run's signal with a CycleStoppedError, and resolves once
 *   `run()` has returned. A job that rejects because stop aborted it is not reported to `onError`
 *   (`onRun` still sees `ok: false`). After stop, triggers are no-ops and `triggerWait()` rejects.
 *   Aborting the signal given to `run()` stops the cycle the same way (its reason becomes the run's
 *   abort reason). `run()` resolves (never rejects) when the cycle ends. Do not await `stop()` from
 *   inside the job itself: it waits for the job to return.
 */
import type { Clock, TimerHandle } from '../domain/clock.js';
import { type Random, systemRandom } from '../domain/random.js';

export interface CycleRunInfo {
  name: string;
  /** Measured on the cycle's clock, from the job's start until it returned. */
  durationMs: number;
  ok: boolean;
}

export type CycleJob = (signal: AbortSignal) => Promise<void>;

export interface CycleOptions {
  name: string;
  /** Milliseconds between the end of one run and the start of the next interval run. */
  interval: number;
  /** Per-run timeout in milliseconds; the run's signal is aborted with a CycleTimeoutError. */
  timeout?: number;
  /** Fraction in [0, 1]: each wait is interval·(1 + jitter·(2r − 1)), i.e. within interval·(1 ± jitter). */
  jitter?: number;
  /** Run at once when the cycle starts (default), or first one interval later. */
  runAtStart?: boolean;
  clock: Clock;
  random?: Random;
  onError?: (err: unknown, name: string) => void;
  onRun?: (info: CycleRunInfo) => void;
}

/** The abort reason of a run that overran its timeout. Its name is 'TimeoutError', like DOMException's. */
export class CycleTimeoutError extends Error {
  override readonly name = 'TimeoutError';
  readonly code = 'ETIMEDOUT';
  readonly cycle: string;
  readonly timeoutMs: number;

  constructor(cycle: string, timeoutMs: number) {
    super(`cycle "${cycle}" run timed out after ${timeoutMs} ms`);
    this.cycle = cycle;
    this.timeoutMs = timeoutMs;
  }
}

/** The abort reason of a run interrupted by stop(), and the rejection of triggerWait() after stop. */
export class CycleStoppedError extends Error {
  override readonly name = 'AbortError';
  readonly cycle: string;

  constructor(cycle: string) {
    super(`cycle "${cycle}" stopped`);
    this.cycle = cycle;
  }
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Cycle {
  readonly name: string;
  private readonly interval: number;
  private readonly timeout: number | undefined;
  private readonly jitter: number;
  private readonly runAtStart: boolean;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly onError: ((err: unknown, name: string) => void) | undefined;
  private readonly onRun: ((info: CycleRunInfo) => void) | undefined;

  private started = false;
  private stopped = false;
  private paused = false;
  /** An interval run is due (the timer fired, or the cycle just started unpaused). */
  private due = false;
  /** trigger() asked for a run that has not started yet. */
  private triggered = false;
  /** Between taking a run and re-arming the timer after it. */
  private busy = false;
  private inFlight: AbortController | undefined;
  private timer: TimerHandle | undefined;
  private wake: (() => void) | undefined;
  /** triggerWait() callers whose run has not started yet. */
  private queued: Waiter[] = [];
  private loopDone: Promise<void> | undefined;

  constructor(options: CycleOptions) {
    const { name, interval, timeout, jitter = 0 } = options;
    if (!Number.isFinite(interval) || interval <= 0) {
      throw new RangeError(`cycle "${name}": interval must be a positive number of ms, got ${interval}`);
    }
    if (timeout !== undefined && (!Number.isFinite(timeout) || timeout <= 0)) {
      throw new RangeError(`cycle "${name}": timeout must be a positive number of ms, got ${timeout}`);
    }
    if (!Number.isFinite(jitter) || jitter < 0 || jitter > 1) {
      throw new RangeError(`cycle "${name}": jitter must be between 0 and 1, got ${jitter}`);
    }
    this.name = name;
    this.interval = interval;
    this.timeout = timeout;
    this.jitter = jitter;
    this.runAtStart = options.runAtStart ?? true;
    this.clock = options.clock;
    this.random = options.random ?? systemRandom;
    this.onError = options.onError;
    this.onRun = options.onRun;
  }

  /**
   * Runs `fn` now (or one interval from now without `runAtStart`), then `interval` after each run ends,
   * until stop() or until `signal` aborts.
   * Resolves when the cycle has ended and the last run has returned. Calling it twice throws.
   */
  run(fn: CycleJob, signal?: AbortSignal): Promise<void> {
    if (this.started) return Promise.reject(new Error(`cycle "${this.name}" is already running`));
    this.started = true;
    if (this.stopped) return Promise.resolve();
    if (signal?.aborted) {
      this.halt(signal.reason);
      return Promise.resolve();
    }
    const onAbort = () => this.halt(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (!this.paused) {
      if (this.runAtStart) this.due = true;
      else this.arm();
    }
    this.loopDone = this.loop(fn).finally(() => {
      signal?.removeEventListener('abort', onAbort);
      this.clearTimer();
    });
    return this.loopDone;
  }

  /** Requests a run now; coalesces with other requests made before that run starts. No-op after stop. */
  trigger(): void {
    if (this.stopped) return;
    this.triggered = true;
    this.wakeUp();
  }

  /** Requests a run now and resolves when a run that started after this call has finished. */
  triggerWait(): Promise<void> {
    if (this.stopped) return Promise.reject(new CycleStoppedError(this.name));
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ resolve, reject });
      this.trigger();
    });
  }

  /** A run is in flight, or due to start (its timer fired or a trigger asked for it). */
  get active(): boolean {
    return this.busy || this.due || this.triggered;
  }

  /** Stops interval runs until restart(); trigger() and triggerWait() still run the job. */
  pause(): void {
    if (this.stopped) return;
    this.paused = true;
    this.due = false;
    this.clearTimer();
  }

  /** Unpauses and resets the interval timer: the next interval run is one interval from now. */
  restart(): void {
    if (this.stopped) return;
    this.paused = false;
    // Idle and running: re-arm now. In a run: the loop arms when it ends. Not started: run() starts it.
    if (this.loopDone && !this.busy) this.arm();
  }

  /** Stops the cycle (idempotent); resolves when run() has returned (at once if it never ran). */
  stop(): Promise<void> {
    this.halt(new CycleStoppedError(this.name));
    return this.loopDone ?? Promise.resolve();
  }

  private halt(reason: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimer();
    this.inFlight?.abort(reason);
    const waiters = this.queued;
    this.queued = [];
    for (const w of waiters) w.reject(new CycleStoppedError(this.name));
    this.wakeUp();
  }

  private async loop(fn: CycleJob): Promise<void> {
    while (!this.stopped) {
      if (this.triggered || this.due) {
        this.triggered = false;
        this.due = false;
        this.busy = true;
        this.clearTimer();
        const waiters = this.queued;
        this.queued = [];
        await this.runOnce(fn);
        this.busy = false;
        if (this.stopped) {
          for (const w of waiters) w.reject(new CycleStoppedError(this.name));
          break;
        }
        for (const w of waiters) w.resolve();
        if (!this.paused) this.arm();
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private async runOnce(fn: CycleJob): Promise<void> {
    const controller = new AbortController();
    this.inFlight = controller;
    const startedAt = this.clock.now();
    const limit = this.timeout;
    let timedOut = false;
    const timer =
      limit === undefined
        ? undefined
        : this.clock.setTimeout(() => {
            if (controller.signal.aborted) return;
            timedOut = true;
            controller.abort(new CycleTimeoutError(this.name, limit));
          }, limit);
    let failed = false;
    let error: unknown;
    try {
      await fn(controller.signal);
    } catch (err) {
      failed = true;
      error = err;
    } finally {
      if (timer) this.clock.clearTimeout(timer);
      this.inFlight = undefined;
    }
    if (timedOut) {
      failed = true;
      error = controller.signal.reason;
    }
    const abortedByStop = controller.signal.aborted && !timedOut;
    if (failed && !abortedByStop) this.report(error);
    if (this.onRun) {
      try {
        this.onRun({ name: this.name, durationMs: this.clock.now() - startedAt, ok: !failed });
      } catch {
        // A hook must not break the cycle.
      }
    }
  }

  private report(err: unknown): void {
    if (!this.onError) return;
    try {
      this.onError(err, this.name);
    } catch {
      // A hook must not break the cycle.
    }
  }

  private arm(): void {
    this.clearTimer();
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.due = true;
      this.wakeUp();
    }, this.nextDelay());
  }

  private nextDelay(): number {
    if (this.jitter === 0) return this.interval;
    const r = this.random();
    return Math.max(0, Math.round(this.interval * (1 + this.jitter * (2 * r - 1))));
  }

  private clearTimer(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
