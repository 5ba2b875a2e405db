/**
 * Time is injected everywhere something waits (retries, backoff, chores, stream timeouts), so tests
 * drive a fake clock instead of sleeping.
 */
export interface TimerHandle {
  readonly __timer: true;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Node's timers overflow above 2^31−1 ms (≈24.8 days) and fire at once; longer waits re-arm in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

class SystemTimer implements TimerHandle {
  readonly __timer = true as const;
  inner: NodeJS.Timeout | undefined;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const handle = new SystemTimer();
    const due = Date.now() + Math.max(0, ms);
    const arm = () => {
      const left = due - Date.now();
      if (left > MAX_TIMER_MS) {
        handle.inner = setTimeout(arm, MAX_TIMER_MS);
      } else {
        handle.inner = setTimeout(fn, Math.max(0, left));
      }
      handle.inner.unref?.();
    };
    arm();
    return handle;
  },
  clearTimeout(handle) {
    const inner = (handle as SystemTimer).inner;
    if (inner) clearTimeout(inner);
  },
};

/** Resolves after `ms` on `clock`, or rejects with the signal's reason when aborted. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new Error('aborted'));
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
