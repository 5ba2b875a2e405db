/**
 * bench/live: live verification (src/live/) against the zooid emulator, beside baselines measured in
 * the same run.
 *
 *   checks:  N relays created through bosun and pushed to a zooid emulator (it serves each relay's
 *            NIP-11 document by Host on its own port); once every relay is live, the verifier checks
 *            all N again (fetchRelayInfo + compareLive + the record, bosun's BOSUN_VERIFY_CONCURRENCY)
 *            -> checks/s, vs plain node:http GETs of the same documents (same global keep-alive
 *            agent, same Host and Accept headers, same concurrency). Target ratio >= 0.5.
 *   sync:    bench:sync's latency workload (one change every 5 ms, commit -> PATCH at a no-op zooid
 *            that also serves NIP-11) with verification on vs off, in steady state: measured once
 *            the seed's syncs and the checks that follow them are done. The zooid runs in a child
 *            process (in production it is another machine: its side of the GETs is not bosun's
 *            cost). Runs alternate off, on, off, on, … (`--runs` each side, default 5). Target p99
 *            on/off <= 1.05, printed with a 95 % bootstrap interval (over runs, then samples), so a
 *            verdict inside the machine's run-to-run noise says so. `--control` runs both sides with
 *            verification off: an A/A run, to see the noise itself.
 *
 *   npm run bench:live [-- --n 10000] [-- --sync-n 3000] [-- --runs 5] [-- --only verify|sync] [-- --control]
 *
 * `--only <phase>` runs one phase. BENCH_PROF=<phase> writes a CPU profile of that phase's measured
 * part (not its seed) to BENCH_PROF_DIR (default /tmp/bprof) as a `.cpuprofile`, as `--cpu-prof`
 * does; bosun and the emulator share this process, so the profile holds both.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { globalAgent, request } from 'node:http';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadServeConfig } from '../src/config.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { createLogger } from '../src/logger.js';
import { nip98Ready } from '../src/nostr/nip98.js';
import { Peer } from '../src/peer.js';
import { startZooidEmulator } from '../src/push/zooid/emulator/index.js';
import { seededRandom } from '../test/support/random.js';
import { Child, serve } from './support/child.js';
import { CHORES_OFF, commitToPatchLatencies, noopZooid, pct } from './support/sync.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 10_000);
const SYNC_N = arg('--sync-n', 3000);
const RUNS = arg('--runs', 5);
/** `--control`: both sides of the sync phase run with verification off (an A/A run: what noise looks like). */
const CONTROL = process.argv.includes('--control');
const PHASES = ['verify', 'sync'] as const;
type Phase = (typeof PHASES)[number];
const phaseArg = (value: string | undefined, what: string): Phase | null => {
  if (value === undefined || value === '') return null;
  if (!(PHASES as readonly string[]).includes(value)) throw new Error(`${what}: one of ${PHASES.join(', ')}`);
  return value as Phase;
};
const onlyAt = process.argv.indexOf('--only');
const ONLY = phaseArg(onlyAt > 0 ? (process.argv[onlyAt + 1] ?? '') : undefined, '--only');
const PROF = phaseArg(process.env.BENCH_PROF, 'BENCH_PROF');
const PROF_DIR = process.env.BENCH_PROF_DIR ?? '/tmp/bprof';
const admin: Principal = { role: 'admin', actor: 'bench' };
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** Runs `body` under the CPU profiler when BENCH_PROF names `phase`; the profile goes to PROF_DIR. */
async function profiled<T>(phase: Phase, body: () => Promise<T>, label: string = phase): Promise<T> {
  if (PROF !== phase) return body();
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await body();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    mkdirSync(PROF_DIR, { recursive: true });
    const file = join(PROF_DIR, `live-${label}-${Date.now()}-${process.pid}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    console.log(`  CPU profile of ${label}: ${file}`);
  }
}

async function until(cond: () => boolean, limitMs: number, what: string): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Plain GETs of each host's NIP-11 document, `concurrency` at once, through Node's global agent. */
async function plainGets(url: string, hosts: string[], concurrency: number): Promise<number> {
  const u = new URL(url);
  let next = 0;
  let bad = 0;
  const get = (host: string) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        {
          hostname: u.hostname,
          port: Number(u.port),
          path: '/',
          agent: globalAgent,
          headers: { host, accept: 'application/nostr+json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode !== 200) bad++;
            JSON.parse(Buffer.concat(chunks).toString('utf8'));
            resolve();
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < hosts.length) await get(hosts[next++]!);
    }),
  );
  const rate = hosts.length / ((performance.now() - t0) / 1000);
  if (bad > 0) throw new Error(`baseline: ${bad} GETs were not 200`);
  return rate;
}

async function checks(dir: string): Promise<void> {
  const key = generateSecretKey();
  const zooid = await startZooidEmulator({ whitelist: [publicKeyOf(key)], record: false });
  try {
    const config = loadServeConfig({
      BOSUN_DATABASE_URL: `sqlite:${join(dir, 'checks.db')}`,
      PORT: '0',
      BOSUN_ADMIN_TOKEN: 'bench-admin-token-0123456789',
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_VERIFY_URL: zooid.url,
      ...CHORES_OFF,
    });
    const peer = await Peer.create(config, { logger: createLogger({ level: 'silent' }) });
    const pubkey = publicKeyOf(generateSecretKey());
    const ids: string[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      await peer.command.createRelay(admin, {
        id: `r${i}`,
        host: `r${i}.example.com`,
        info: { pubkey, name: `r${i}` },
      });
      ids.push(`r${i}`);
    }
    await peer.start();
    await peer.observer!.idle();
    const seeded = (performance.now() - t0) / 1000;
    const verifier = peer.verifier!;
    // The checks after each sync (1 s settle) run out; every relay is then live.
    await until(() => verifier.pending === 0, 600_000, 'the post-sync checks');
    const concurrency = config.verify!.concurrency;
    const hosts = ids.map((id) => `${id}.example.com`);
    const before = load();
    const base = await plainGets(zooid.url, hosts, concurrency);
    const rate = await profiled('verify', async () => {
      const t1 = performance.now();
      verifier.spread(ids, 0);
      await until(() => verifier.pending === 0, 600_000, 'the checks');
      return N / ((performance.now() - t1) / 1000);
    });
    const base2 = await plainGets(zooid.url, hosts, concurrency);
    await peer.close();
    const baseline = (base + base2) / 2;
    console.log(
      `checks (n=${fmt(N)}, ${concurrency} in flight = BOSUN_VERIFY_CONCURRENCY default; load average ${before})`,
    );
    console.log(`  seed: ${fmt(N)} relays created and pushed to the emulator in ${seeded.toFixed(1)} s`);
    console.log(
      `  plain node:http GETs (before, after) : ${fmt(base)}, ${fmt(base2)} req/s (mean ${fmt(baseline)})`,
    );
    console.log(
      `  verifier checks                      : ${fmt(rate)} checks/s  ratio ${(rate / baseline).toFixed(2)}`,
    );
    console.log(`  target: ratio >= 0.5 -> ${rate / baseline >= 0.5 ? 'met' : 'NOT met'}`);
  } finally {
    await zooid.close();
  }
}

/** The sync phase's zooid, in a child process: a no-op zooid serving NIP-11 (bench/support/sync.ts). */
async function zooidChild(): Promise<void> {
  const zooid = await noopZooid({ nip11: true });
  serve({
    url: () => ({ url: zooid.url }),
    arrivals: () => ({ arrivals: [...zooid.arrivals] }),
    close: () => {
      zooid.server.closeAllConnections();
      zooid.server.close();
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

async function syncRun(dir: string, verify: boolean): Promise<number[]> {
  const child = Child.fork(fileURLToPath(import.meta.url), ['zooid-child']);
  await child.ready;
  const { url } = await child.call<{ url: string }>('url');
  const key = generateSecretKey();
  try {
    const config = loadServeConfig({
      BOSUN_DATABASE_URL: `sqlite:${join(dir, `sync-${verify}-${++runNo}.db`)}`,
      PORT: '0',
      BOSUN_ADMIN_TOKEN: 'bench-admin-token-0123456789',
      ZOOID_API_URL: url,
      BOSUN_SECRET_KEY: key,
      BOSUN_SYNC_CONCURRENCY: '20',
      ...(verify ? { BOSUN_VERIFY_URL: url } : { BOSUN_VERIFY_INTERVAL_MS: '0' }),
      ...CHORES_OFF,
    });
    const peer = await Peer.create(config, { logger: createLogger({ level: 'silent' }) });
    if (verify !== (peer.verifier !== null)) throw new Error('verification not as asked');
    const pubkey = publicKeyOf(generateSecretKey());
    for (let i = 0; i < SYNC_N; i++) {
      await peer.command.createRelay(admin, {
        id: `r${i}`,
        host: `r${i}.example.com`,
        info: { pubkey, name: `r${i}` },
      });
    }
    await peer.start();
    await peer.observer!.idle();
    // Steady state, as bench:sync measures it: the seed's catch-up is over — its syncs and, with
    // verification on, the check that follows each (1 s after it) and their batched touch.
    const verifier = peer.verifier;
    if (verifier) {
      await until(() => verifier.pending === 0, 120_000, "the seed's post-sync checks");
      await verifier.flushTouches();
    }
    const arrivals = async () =>
      new Map((await child.call<{ arrivals: [string, number][] }>('arrivals')).arrivals);
    const latencies = await profiled(
      'sync',
      () => commitToPatchLatencies(peer, { arrivals }, admin, Math.min(SYNC_N, 1000)),
      `sync-verify-${verify ? 'on' : 'off'}`,
    );
    await peer.close();
    return latencies;
  } finally {
    await child.stop();
  }
}

let runNo = 0;
if (process.argv[2] === 'zooid-child') await zooidChild();
else {
  const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-live-'));
  try {
    await nip98Ready();
    console.log(
      `bench/live (node ${process.version}, ${cpus().length} CPUs, load average ${load()} at start; loopback, SQLite)`,
    );
    if (ONLY !== 'sync') await checks(dir);
    if (ONLY !== 'verify') await syncPhase(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function syncPhase(dir: string): Promise<void> {
  // Off, on, off, on, …: the machine's load drifts, so each side gets early and late runs.
  const runs: { verify: boolean; l: number[] }[] = [];
  for (let i = 0; i < 2 * RUNS; i++) {
    const side = i % 2 === 1;
    runs.push({ verify: side, l: await syncRun(dir, side && !CONTROL) });
  }
  const side = (v: boolean) => runs.filter((r) => r.verify === v).map((r) => r.l);
  const sorted = (rs: number[][]) => rs.flat().sort((a, b) => a - b);
  const off = sorted(side(false));
  const on = sorted(side(true));
  const ratio = pct(on, 99) / pct(off, 99);
  const [lo, hi] = p99RatioInterval(side(true), side(false));
  console.log(
    `push sync, bench:sync latency workload, steady state, zooid in a child process (n=${fmt(SYNC_N)}, ${off.length / RUNS} changes per run, ${RUNS} runs each side, load average ${load()})`,
  );
  for (const [name, l] of [
    ['verification off', off],
    [CONTROL ? 'verification off (control)' : 'verification on ', on],
  ] as const) {
    console.log(
      `  ${name}: commit -> PATCH p50 ${pct(l, 50).toFixed(2)} ms  p99 ${pct(l, 99).toFixed(2)} ms  max ${l.at(-1)!.toFixed(2)} ms`,
    );
  }
  const interval = `${ratio.toFixed(2)}x (95 % interval ${lo.toFixed(2)}-${hi.toFixed(2)}x)`;
  if (CONTROL) {
    console.log(`  p99 control/off ${interval}: two identical sides; this is the noise`);
    return;
  }
  const verdict = ratio <= 1.05 ? 'met' : 'NOT met';
  const resolved = hi <= 1.05 || lo > 1.05 ? 'the interval agrees' : 'the interval spans 1.05x: within noise';
  console.log(`  p99 on/off ${interval}; target <= 1.05x -> ${verdict} (${resolved})`);
}

/**
 * A 95 % interval for p99(a) / p99(b), by a hierarchical bootstrap: each resample draws the runs of
 * each side with replacement, then each drawn run's samples with replacement. Resampling runs keeps
 * the run-to-run drift of a shared machine in the interval (an i.i.d. bootstrap of the pooled samples
 * would claim a precision the runs don't have). Seeded, so one set of runs gives one interval.
 */
function p99RatioInterval(a: number[][], b: number[][], resamples = 2000): [number, number] {
  const random = seededRandom(0x9e3779b9);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  const p99 = (runs: number[][]) => {
    const all = runs.flatMap(() => pick(runs).map((_, __, run) => pick(run)));
    all.sort((x, y) => x - y);
    return pct(all, 99);
  };
  const ratios = Array.from({ length: resamples }, () => p99(a) / p99(b)).sort((x, y) => x - y);
  return [ratios[Math.floor(resamples * 0.025)]!, ratios[Math.floor(resamples * 0.975)]!];
}
