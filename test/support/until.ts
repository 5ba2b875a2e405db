/**
 * Polls `check` every `everyMs` until it holds, or fails after `ms` naming `what`. Resolves with
 * the real time it took, in whole ms. Real time, not a fake clock: the parts under test
 * (emulators, PostgreSQL, child processes) answer over loopback on their own schedule.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what = 'condition',
  everyMs = 20,
): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return Math.round(performance.now() - start);
}
