/**
 * Multi-process benchmarks: the orchestrator forks this same script in another mode (`Child.fork`)
 * and drives it with commands over IPC (`serve` on the child side). Shared by bench/stream and
 * bench/load. Timestamps are `performance.timeOrigin + now()`, comparable across processes on one
 * machine.
 */
import { type ChildProcess, fork } from 'node:child_process';

/** Wall-clock ms with sub-ms precision, comparable across processes on one machine. */
export const now = () => performance.timeOrigin + performance.now();

/** The value after `name` on the command line, if any. */
export const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};

/** Nearest-rank percentiles (each p in 0..100; 100 is the max) of an unsorted array, sorted once; NaN when empty. */
export function quantiles(xs: readonly number[], ps: readonly number[]): number[] {
  const s = Float64Array.from(xs).sort();
  return ps.map((p) =>
    s.length === 0
      ? Number.NaN
      : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!,
  );
}

/** Nearest-rank percentile (p in 0..100) of an unsorted array; NaN when empty. */
export const pct = (xs: readonly number[], p: number): number => quantiles(xs, [p])[0]!;

/**
 * `--postgres` alone means the local test server (PostgreSQL at 127.0.0.1:5432, database `test`);
 * `--postgres <url>` another; absent, undefined (SQLite).
 */
export function postgresArg(): string | undefined {
  const i = process.argv.indexOf('--postgres');
  if (i < 0) return undefined;
  const next = process.argv[i + 1];
  return next !== undefined && !next.startsWith('--') ? next : 'postgres://postgres@127.0.0.1:5432/test';
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Msg = { id: number; cmd: string; [k: string]: unknown };
export type Reply = { id: number; [k: string]: unknown };
export type Handlers = Record<
  string,
  (msg: Msg) => Promise<Record<string, unknown>> | Record<string, unknown>
>;

/**
 * Child side: answers the orchestrator's commands over IPC. The child exits if the orchestrator
 * goes away (IPC channel closed), so an orchestrator that dies leaves nothing running.
 */
export function serve(handlers: Handlers): void {
  process.on('message', async (msg: Msg) => {
    try {
      const handler = handlers[msg.cmd];
      if (!handler) throw new Error(`unknown command ${msg.cmd}`);
      const out = await handler(msg);
      process.send!({ id: msg.id, ...out });
    } catch (err) {
      process.send!({ id: msg.id, error: String((err as Error).stack ?? err) });
    }
  });
  process.once('disconnect', () => process.exit(0));
  process.send!({ id: 0, ready: true });
}

/** Process memory after a full GC (needs --expose-gc to collect; otherwise as it stands). */
export function gcMemory(): Record<string, unknown> {
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external };
}

/** Orchestrator side: a forked child answering `serve` commands. */
export class Child {
  private seq = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  readonly ready: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    let ready!: () => void;
    let failed!: (err: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      ready = resolve;
      failed = reject;
    });
    this.ready.catch(() => {}); // awaited by the caller; never an unhandled rejection
    proc.on('message', (r: Reply) => {
      if (r.id === 0) return ready();
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
    proc.on('exit', (code, signal) => {
      const error = `child exited (${signal ?? code})`;
      failed(new Error(error));
      for (const resolve of this.waiting.values()) resolve({ id: -1, error });
      this.waiting.clear();
    });
  }

  /** Forks `script` with `args` under tsx; `execArgv` adds node flags (e.g. --expose-gc). */
  static fork(script: string, args: string[], execArgv: string[] = []): Child {
    return new Child(fork(script, args, { execArgv: ['--import', 'tsx', ...execArgv] }));
  }

  async call<T = Record<string, number>>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
      throw new Error(`${cmd}: child already exited`);
    }
    const id = this.seq++;
    const reply = await new Promise<Reply>((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.send({ id, cmd, ...args });
    });
    if (reply.error) throw new Error(`${cmd}: ${reply.error}`);
    return reply as T;
  }

  /** Asks the child to close (its `close` command) and waits for it to exit; kills it after `ms`. */
  async stop(ms = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    await this.call('close').catch(() => this.proc.kill('SIGKILL'));
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Waiting, in a client process, for a condition on state that events update: `until` resolves
 * once `cond()` holds, re-checked at each `progress()`; rejects after `timeoutMs`.
 */
export function progressWaiter(who: string) {
  let onProgress: () => void = () => {};
  return {
    progress: () => onProgress(),
    until: (cond: () => boolean, timeoutMs: number, what: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${who}: timed out waiting for ${what}`)), timeoutMs);
        onProgress = () => {
          if (cond()) {
            clearTimeout(timer);
            onProgress = () => {};
            resolve();
          }
        };
        onProgress();
      }),
  };
}
