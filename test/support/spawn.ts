import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitOn } from './wait-on.js';

const BIN = fileURLToPath(new URL('../../bin/bosun.js', import.meta.url));

export interface Spawned {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the first stdout/stderr line matching, or rejects on exit/timeout. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs the real bosun CLI (compiled by the global setup) in a child process, so tests can SIGKILL it.
 * `umask` (e.g. 0o000) runs it through `sh -c 'umask …; exec node …'`.
 */
export function spawnBosun(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
  opts: { umask?: number } = {},
): Spawned {
  const command =
    opts.umask === undefined
      ? [process.execPath, BIN, ...args]
      : ['/bin/sh', '-c', `umask ${opts.umask.toString(8)}; exec "$@"`, 'sh', process.execPath, BIN, ...args];
  const child = spawn(command[0]!, command.slice(1), {
    // Live verification off unless a test asks (it would read https://<host>/ of test relays).
    env: { ...process.env, BOSUN_LOG_LEVEL: 'info', BOSUN_VERIFY_INTERVAL_MS: '0', ...env },
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      resolve({ code, signal });
      for (const w of waiters) w();
    }),
  );
  const waitFor = (pattern: RegExp, timeoutMs = 20_000) =>
    waitOn(
      waiters,
      () => out.split('\n').find((l) => pattern.test(l)),
      () => child.exitCode !== null || child.signalCode !== null,
      (why) =>
        new Error(
          why === 'ended'
            ? `bosun exited before ${pattern}: ${out.slice(-2000)}`
            : `timed out waiting for ${pattern}: ${out.slice(-2000)}`,
        ),
      timeoutMs,
    );
  return { child, output: () => out, waitFor, exited };
}

/** Starts `bosun serve` on a random port and resolves with its URL. */
export async function startServe(
  env: Record<string, string>,
  cwd?: string,
): Promise<Spawned & { url: string }> {
  const s = spawnBosun(['serve', '--port', '0'], env, cwd);
  const line = await s.waitFor(/"msg":"bosun listening"/);
  const url = (JSON.parse(line) as { url: string }).url;
  return { ...s, url };
}

/** SIGKILLs each process still running and waits until all have exited (after tests that spawn many). */
export async function killAll(procs: Spawned[]): Promise<void> {
  for (const p of procs)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}
