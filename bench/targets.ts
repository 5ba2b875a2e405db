/**
 * bench/targets: push sync spread over several zooid targets (issue 17), against no-op zooids
 * (answer 2xx at once, check nothing), each figure beside its baseline measured in the same run.
 *
 *   catch-up: N relays in 4 fleets committed while push sync is down, then bosun starts and syncs
 *             them all — with the 4 fleets pinned to 1 target, and to 4 targets (one each); rounds
 *             alternate (1, 4, 4, 1, …), each on a copy of its layout's seeded database, medians
 *             -> syncs/s of each, and 4 ÷ 1 (target ≈ 1.0: spreading must cost nothing)
 *   latency:  on the 4-target peer, one change every 5 ms round robin over the 4 targets' relays;
 *             commit returning -> PATCH arriving, for the relays of the 3 targets that stay healthy
 *             — once with all 4 answering, once with the 4th never answering (every request to it
 *             times out after BOSUN_SYNC_TIMEOUT_MS) -> p50/p99, and one down ÷ all up
 *             (target p99 <= 1.2×)
 *
 * SQLite (bosun's default), loopback only, stops by itself.
 *
 *   npm run bench:targets                     (10,000 relays, 3 rounds each, 3,000 changes a run, 10 s timeout)
 *   npm run bench:targets -- --quick          (2,000 relays, 2 rounds, 800 changes, 2 s timeout: about a minute)
 *   npm run bench:targets -- --n 10000 --rounds 3 --changes 3000 --timeout-ms 10000 --target-concurrency 5
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadServeConfig } from '../src/config.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { createLogger } from '../src/logger.js';
import { nip98Ready } from '../src/nostr/nip98.js';
import { Peer } from '../src/peer.js';
import { CHORES_OFF, type NoopZooid, noopZooid, pct } from './support/sync.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const QUICK = process.argv.includes('--quick');
const N = Number(arg('--n') ?? (QUICK ? 2000 : 10_000));
const ROUNDS = Number(arg('--rounds') ?? (QUICK ? 2 : 3));
const CHANGES = Number(arg('--changes') ?? (QUICK ? 800 : 3000));
const TIMEOUT_MS = Number(arg('--timeout-ms') ?? (QUICK ? 2000 : 10_000));
// Unset: bosun's default (BOSUN_SYNC_TARGET_CONCURRENCY=0, i.e. BOSUN_SYNC_CONCURRENCY).
const TARGET_CONCURRENCY = arg('--target-concurrency');
const TARGETS = 4;
const EVERY_MS = 5;
const admin: Principal = { role: 'admin', actor: 'bench' };
if (2 * CHANGES > N)
  throw new Error('--changes must be at most half of --n (each run changes its own relays)');

const fleetOf = (i: number) => `f${i % TARGETS}`;
const key = generateSecretKey();
const pubkey = publicKeyOf(generateSecretKey());
const dirs: string[] = [];
const zooids: NoopZooid[] = [];
for (let t = 0; t < TARGETS; t++) zooids.push(await noopZooid());

const newDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-targets-'));
  dirs.push(dir);
  return dir;
};

/** A peer (not started) on the SQLite file in `dir`; chores off, so push sync is all it does. */
function peerOn(dir: string): Promise<Peer> {
  const config = loadServeConfig({
    BOSUN_DATABASE_URL: `sqlite:${join(dir, 'bosun.db')}`,
    PORT: '0',
    BOSUN_ADMIN_TOKEN: 'bench-admin-token-0123456789',
    BOSUN_SECRET_KEY: key,
    BOSUN_SYNC_TIMEOUT_MS: String(TIMEOUT_MS),
    ...(TARGET_CONCURRENCY ? { BOSUN_SYNC_TARGET_CONCURRENCY: TARGET_CONCURRENCY } : {}),
    ...CHORES_OFF,
  });
  return Peer.create(config, { logger: createLogger({ level: 'silent' }) });
}

/**
 * A database with the 4 no-op zooids registered, fleet f<k> pinned to target t<targetOf(k)>, and N
 * relays committed (none pushed): the directory holding it, copied for each round.
 */
async function seed(targetOf: (fleet: number) => number): Promise<string> {
  const dir = newDir();
  const peer = await peerOn(dir);
  for (let t = 0; t < TARGETS; t++) {
    await peer.command.createTarget(admin, { name: `t${t}`, url: zooids[t]!.url }, { defaultKey: true });
  }
  for (let f = 0; f < TARGETS; f++) {
    await peer.command.setFleetTarget(admin, `f${f}`, { kind: 'target', name: `t${targetOf(f)}` });
  }
  for (let i = 0; i < N; i++) {
    await peer.command.createRelay(admin, {
      id: `r${i}`,
      host: `r${i}.example.com`,
      fleet: fleetOf(i),
      info: { pubkey, name: `r${i}` },
    });
  }
  await peer.close();
  return dir;
}

/** A peer on a fresh copy of a seeded database. */
async function seededPeer(template: string): Promise<Peer> {
  const dir = newDir();
  cpSync(template, dir, { recursive: true });
  return peerOn(dir);
}

/** Starts push sync on a seeded peer and times the catch-up: every relay synced once. */
async function catchUp(peer: Peer): Promise<number> {
  const t0 = performance.now();
  await peer.start();
  await peer.observer!.idle();
  return N / ((performance.now() - t0) / 1000);
}

/**
 * One change every 5 ms to relays r<from>.. (round robin over the targets, as the fleets are), then
 * commit -> PATCH of the changes to targets 0..2, sorted (ms). Waits for those PATCHes only: the
 * 4th target may be hanging.
 */
async function latencies(peer: Peer, from: number): Promise<number[]> {
  for (const z of zooids) z.arrivals.clear();
  const committedAt = new Map<number, number>();
  for (let i = from; i < from + CHANGES; i++) {
    await peer.command.updateRelay(admin, `r${i}`, { info: { name: `changed-${i}` } });
    committedAt.set(i, performance.now());
    await new Promise((r) => setTimeout(r, EVERY_MS));
  }
  const healthy = [...committedAt].filter(([i]) => i % TARGETS !== TARGETS - 1);
  const arrived = ([i]: [number, number]) => zooids[i % TARGETS]!.arrivals.has(`r${i}`);
  const deadline = performance.now() + 120_000;
  while (!healthy.every(arrived)) {
    if (performance.now() > deadline) throw new Error('healthy targets did not get every PATCH in 120 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  return healthy.map(([i, at]) => zooids[i % TARGETS]!.arrivals.get(`r${i}`)! - at).sort((a, b) => a - b);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  await nip98Ready();
  const oneTemplate = await seed(() => 0);
  const fourTemplate = await seed((f) => f);
  const oneRates: number[] = [];
  const fourRates: number[] = [];
  // Alternating (1, 4, 4, 1, …): a machine that speeds up or slows down over the run favours neither.
  for (let r = 0; r < ROUNDS; r++) {
    for (const layout of r % 2 === 0 ? [1, 4] : [4, 1]) {
      const peer = await seededPeer(layout === 1 ? oneTemplate : fourTemplate);
      (layout === 1 ? oneRates : fourRates).push(await catchUp(peer));
      await peer.close();
    }
  }
  const oneRate = median(oneRates);
  const fourRate = median(fourRates);

  const four = await seededPeer(fourTemplate);
  await catchUp(four);
  const config = four.config.sync;
  const allUp = await latencies(four, 0);
  zooids[TARGETS - 1]!.hang = true;
  // What the hung target holds: its requests in flight, sampled (out of BOSUN_SYNC_CONCURRENCY workers).
  let hungInFlight = 0;
  const sampler = setInterval(() => {
    const load = four.router!.load().find((l) => l.target === `t${TARGETS - 1}`);
    hungInFlight = Math.max(hungInFlight, load?.inFlight ?? 0);
  }, 10);
  const oneDown = await latencies(four, CHANGES);
  clearInterval(sampler);
  await four.close();

  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const ms = (n: number) => `${n.toFixed(2)} ms`;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  const p99Ratio = pct(oneDown, 99) / pct(allUp, 99);
  console.log(
    `bench/targets sqlite (n=${N}, ${TARGETS} no-op targets, ${config.concurrency} in flight, ${config.targetConcurrency} per target, timeout ${config.timeoutMs} ms, node ${process.version})`,
  );
  const each = (xs: number[]) => xs.map(fmt).join(', ');
  console.log(
    `  catch-up, every fleet on 1 target (baseline) : ${fmt(oneRate)} syncs/s  (median of ${each(oneRates)})`,
  );
  console.log(
    `  catch-up, fleets spread over ${TARGETS} targets       : ${fmt(fourRate)} syncs/s  (median of ${each(fourRates)})  ratio ${ratio(fourRate, oneRate)}`,
  );
  console.log(
    `  commit -> PATCH, healthy targets, all ${TARGETS} up (baseline, n=${allUp.length}) : p50 ${ms(pct(allUp, 50))}  p99 ${ms(pct(allUp, 99))}  max ${ms(allUp.at(-1)!)}`,
  );
  console.log(
    `  commit -> PATCH, healthy targets, 1 timing out (n=${oneDown.length})    : p50 ${ms(pct(oneDown, 50))}  p99 ${ms(pct(oneDown, 99))}  max ${ms(oneDown.at(-1)!)}  p99 ratio ${p99Ratio.toFixed(2)}×`,
  );
  console.log(
    `  the timing-out target held up to ${hungInFlight} of ${config.concurrency} workers (requests in flight to it)`,
  );
  console.log(
    `  targets: catch-up ratio ≈ 1.0 (0.9–1.1) -> ${Math.abs(fourRate / oneRate - 1) <= 0.1 ? 'met' : 'NOT met'}; p99 ratio <= 1.2× -> ${p99Ratio <= 1.2 ? 'met' : 'NOT met'}`,
  );
} finally {
  for (const z of zooids) {
    z.server.closeAllConnections();
    z.server.close();
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
