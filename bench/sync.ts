/**
 * bench/sync: push-sync throughput and latency against a no-op zooid (answers 2xx at once, checks
 * nothing), beside the raw rate of NIP-98-signed loopback HTTP requests measured in the same run.
 *
 *   throughput: N relays committed while push sync is down, then bosun starts and syncs them all
 *               (one signed POST + one sync-state commit each, 20 in flight) -> relay syncs/s
 *   latency:    one change every 5 ms to distinct relays while bosun runs; time from the change's
 *               commit returning to its PATCH arriving at zooid (an upper bound on commit -> sync start)
 *
 * Targets: throughput >= 0.7 of the raw signed-request rate; p99 commit -> sync start <= 10 ms (SQLite).
 *
 *   npm run bench:sync [-- --n 3000]
 *   BOSUN_SIGN_WORKERS=0 npm run bench:sync   (bosun signs on its main thread, for comparison)
 *   npm run bench:sync -- --postgres [postgres://user@host/db] [--n 3000]   (target p99 <= 20 ms; a
 *                                               scratch schema, dropped after)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadServeConfig } from '../src/config.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { createLogger } from '../src/logger.js';
import { createNip98Signer, nip98Backend, nip98Ready } from '../src/nostr/nip98.js';
import { Peer } from '../src/peer.js';
import { postgresArg } from './support/child.js';
import { CHORES_OFF, commitToPatchLatencies, noopZooid, pct } from './support/sync.js';

const argN = process.argv.indexOf('--n');
const N = argN > 0 ? Number(process.argv[argN + 1]) : 3000;
const CONCURRENCY = 20;
// Bare `--postgres` is the local test server: before, it silently measured SQLite.
const POSTGRES = postgresArg();
const pgSchema = `bench_sync_${Math.random().toString(16).slice(2, 10)}`;
const databaseUrl = (dir: string) => {
  if (!POSTGRES) return `sqlite:${join(dir, 'bosun.db')}`;
  const u = new URL(POSTGRES);
  u.searchParams.set('schema', pgSchema);
  return u.toString();
};
const P99_TARGET_MS = POSTGRES ? 20 : 10;
const admin: Principal = { role: 'admin', actor: 'bench' };

async function signedBaseline(url: string, key: string, body: string): Promise<number> {
  const signer = createNip98Signer(key);
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const i = next++;
        const target = `${url}/relay/base-${i}`;
        const res = await fetch(target, {
          method: 'POST',
          headers: {
            authorization: await signer.sign(target, 'POST', body),
            'content-type': 'application/json',
          },
          body,
        });
        await res.arrayBuffer();
      }
    }),
  );
  return N / ((performance.now() - start) / 1000);
}

const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-sync-'));
const zooid = await noopZooid();
const key = generateSecretKey();
const pubkey = publicKeyOf(generateSecretKey());
try {
  await nip98Ready();
  const sample = JSON.stringify({
    host: 'x.example.com',
    schema: 'x',
    secret: key,
    info: { pubkey, name: 'x' },
  });
  const raw = await signedBaseline(zooid.url, key, sample.padEnd(600, ' '));

  const config = loadServeConfig({
    BOSUN_DATABASE_URL: databaseUrl(dir),
    PORT: '0',
    BOSUN_ADMIN_TOKEN: 'bench-admin-token-0123456789',
    ZOOID_API_URL: zooid.url,
    BOSUN_SECRET_KEY: key,
    BOSUN_SYNC_CONCURRENCY: String(CONCURRENCY),
    // Unset: bosun's default; `BOSUN_SIGN_WORKERS=0 npm run bench:sync` compares with in-thread signing.
    ...(process.env.BOSUN_SIGN_WORKERS ? { BOSUN_SIGN_WORKERS: process.env.BOSUN_SIGN_WORKERS } : {}),
    ...CHORES_OFF,
  });
  const peer = await Peer.create(config, { logger: createLogger({ level: 'silent' }) });
  for (let i = 0; i < N; i++) {
    await peer.command.createRelay(admin, {
      id: `r${i}`,
      host: `r${i}.example.com`,
      info: { pubkey, name: `r${i}` },
    });
  }
  const t0 = performance.now();
  await peer.start(); // catch-up: every relay synced once
  await peer.pushQueue!.idle();
  const syncs = N / ((performance.now() - t0) / 1000);

  const L = Math.min(N, 1000);
  const latencies = await commitToPatchLatencies(peer, zooid, admin, L);
  await peer.close();

  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `bench/sync ${POSTGRES ? 'postgres' : 'sqlite'} (n=${N}, ${CONCURRENCY} in flight, signer ${nip98Backend()}, sign workers ${config.sync.signWorkers}, node ${process.version})`,
  );
  console.log(`  baseline signed loopback requests : ${fmt(raw)} req/s`);
  console.log(
    `  bosun relay syncs (catch-up)      : ${fmt(syncs)} syncs/s  ratio ${(syncs / raw).toFixed(2)}`,
  );
  console.log(
    `  commit -> PATCH at zooid (n=${L})   : p50 ${pct(latencies, 50).toFixed(2)} ms  p99 ${pct(latencies, 99).toFixed(2)} ms  max ${latencies.at(-1)!.toFixed(2)} ms`,
  );
  console.log(
    `  targets: ratio >= 0.7 -> ${syncs / raw >= 0.7 ? 'met' : 'NOT met'}; p99 <= ${P99_TARGET_MS} ms -> ${pct(latencies, 99) <= P99_TARGET_MS ? 'met' : 'NOT met'}`,
  );
} finally {
  zooid.server.close();
  rmSync(dir, { recursive: true, force: true });
  if (POSTGRES) {
    const client = new pg.Client({ connectionString: POSTGRES });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`);
    await client.end();
  }
}
