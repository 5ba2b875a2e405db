/**
 * Waits for `ready` to give a value: checked now and whenever the owner of `waiters` calls them
 * (new output, a new event, the end). Rejects with `failure('ended')` once `ended` is true first,
 * or with `failure('timed out')` after `timeoutMs`.
 */
export function waitOn<T>(
  waiters: Set<() => void>,
  ready: () => T | undefined,
  ended: () => boolean,
  failure: (why: 'ended' | 'timed out') => Error,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const check = () => {
      const value = ready();
      if (value !== undefined) {
        done();
        resolve(value);
      } else if (ended()) {
        done();
        reject(failure('ended'));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(failure('timed out'));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
    check();
  });
}
