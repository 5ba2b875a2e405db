/**
 * A real `bosun serve` for benchmarks: bin/bosun.js (dist/, built by `npm run build`) in a child
 * process on a random loopback port, like test/support/spawn.ts's startServe, but with its log
 * written to a file rather than kept in memory (under load, info-level request logs run to tens of
 * MB), and with its RSS and CPU time readable from /proc.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './child.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin/bosun.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, statSync(path).mtimeMs);
    }
  }
  return newest;
}

/**
 * Builds dist/ (tsc -p tsconfig.build.json) when it is missing or older than src/, so the process
 * measured runs the code in the tree. Returns what it did, for the benchmark's header.
 */
export function ensureDist(): string {
  const entry = join(ROOT, 'dist/cli/run.js');
  if (existsSync(entry) && statSync(entry).mtimeMs >= newestMtime(join(ROOT, 'src')))
    return 'dist up to date';
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
  if (!existsSync(entry)) throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`);
  return r.status === 0 ? 'dist rebuilt from src' : 'dist rebuilt from src (tsc reported errors)';
}

export interface BosunServe {
  pid: number;
  url: string;
  port: number;
  /** The bosun process has exited. */
  exited: () => boolean;
  /** Resident set size now (KiB), from /proc/<pid>/status; undefined off Linux or after exit. */
  rssKiB: () => number | undefined;
  /** CPU time used so far (s), from /proc/<pid>/stat; undefined off Linux or after exit. */
  cpuSeconds: () => number | undefined;
  /** The last `bytes` of its log. */
  tail: (bytes?: number) => string;
  /** Log lines by level (pino numbers: 30 info, 40 warn, 50 error, 60 fatal) and in all. */
  logCounts: () => { lines: number; warn: number; error: number };
  /** SIGTERM, then waits for the exit (SIGKILL after `graceMs`); resolves with how it ended. */
  stop: (graceMs?: number) => Promise<{ code: number | null; signal: string | null; ms: number }>;
  /** SIGKILL at once (for exit paths). */
  kill: () => void;
}

/** Reads VmRSS (KiB) of a process; undefined when /proc is not there. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime of a process in seconds (USER_HZ 100, as on Linux x86/arm). */
export function cpuOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Starts `bosun serve --port 0` with `env` (plus PATH/HOME, and any `BOSUN_*` setting of the bench's
 * own environment that `env` does not set, so a bench can be run A/B on a tuning setting such as
 * `BOSUN_SYNC_CONCURRENCY=20 npm run bench:load`), its stdout and stderr appended to `logFile`, and
 * resolves once it logs `bosun listening` (so `BOSUN_LOG_LEVEL` must be info or more verbose).
 * `nodeArgs` go to node before the script (e.g. --cpu-prof).
 */
export async function startBosunServe(
  env: Record<string, string>,
  logFile: string,
  { nodeArgs = [], timeoutMs = 30_000 }: { nodeArgs?: string[]; timeoutMs?: number } = {},
): Promise<BosunServe> {
  const fd = openSync(logFile, 'a');
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && (['PATH', 'HOME', 'TMPDIR', 'LANG'].includes(k) || k.startsWith('BOSUN_')))
      base[k] = v;
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'serve', '--port', '0'], {
    env: { ...base, ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const pid = child.pid!;
  let exit: { code: number | null; signal: string | null } | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  const tail = (bytes = 4000) => {
    const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    return text.slice(-bytes);
  };
  const deadline = Date.now() + timeoutMs;
  let url: string | undefined;
  while (!url) {
    if (exit) throw new Error(`bosun exited (${exit.signal ?? exit.code}) before listening:\n${tail()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`bosun did not log "bosun listening" within ${timeoutMs} ms:\n${tail()}`);
    }
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('"msg":"bosun listening"'));
    if (line) url = (JSON.parse(line) as { url: string }).url;
    else await sleep(50);
  }
  const countOf = (buf: Buffer, needle: string) => {
    let n = 0;
    for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + needle.length)) n++;
    return n;
  };
  return {
    pid,
    url,
    port: Number(new URL(url).port),
    exited: () => exit !== undefined,
    rssKiB: () => (exit ? undefined : rssOf(pid)),
    cpuSeconds: () => (exit ? undefined : cpuOf(pid)),
    tail,
    logCounts: () => {
      const buf = readFileSync(logFile);
      return {
        lines: countOf(buf, '\n'),
        warn: countOf(buf, '{"level":40,'),
        error: countOf(buf, '{"level":50,') + countOf(buf, '{"level":60,'),
      };
    },
    stop: async (graceMs = 15_000) => {
      const t0 = performance.now();
      if (!exit) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return { code: exit!.code, signal: exit!.signal, ms: performance.now() - t0 };
    },
    kill: () => {
      if (!exit) child.kill('SIGKILL');
    },
  };
}

/** GET /metrics (no auth), as a map from `name{labels}` to value. */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
