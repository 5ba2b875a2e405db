/**
 * bench/ingest: committed commands per second through Command (validation, merge patch, one
 * transaction writing the relay row and its activity), beside the raw better-sqlite3 rate of one
 * INSERT per transaction measured in the same run on the same disk. Target: ratio ≥ 0.5.
 *
 *   npm run bench:ingest [-- --n 20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Command } from '../src/command.js';
import { systemClock } from '../src/domain/clock.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { Notifier } from '../src/notifier.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const N = Number(process.argv[process.argv.indexOf('--n') + 1]) || 20_000;
const RELAYS = 100;
const admin: Principal = { role: 'admin', actor: 'bench' };

function rawBaseline(dir: string): number {
  const db = new Database(join(dir, 'raw.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, relay_id TEXT, payload TEXT, created_at INTEGER)');
  const insert = db.prepare('INSERT INTO t (relay_id, payload, created_at) VALUES (?, ?, ?)');
  const tx = db.transaction((i: number) =>
    insert.run(`r${i % RELAYS}`, `{"version":${i},"name":"n${i}"}`, Date.now()),
  );
  const start = performance.now();
  for (let i = 0; i < N; i++) tx(i);
  const rate = N / ((performance.now() - start) / 1000);
  db.close();
  return rate;
}

async function commandRate(dir: string): Promise<{ update: number; create: number }> {
  const store = new SqliteStore(join(dir, 'bosun.db'));
  const command = new Command(store, new Notifier(), systemClock);
  const pubkey = publicKeyOf(generateSecretKey());
  const creates = Math.min(N, 5000);
  let start = performance.now();
  for (let i = 0; i < creates; i++) {
    await command.createRelay(admin, {
      id: `r${i}`,
      host: `r${i}.example.com`,
      info: { pubkey, name: `r${i}` },
    });
  }
  const create = creates / ((performance.now() - start) / 1000);
  start = performance.now();
  for (let i = 0; i < N; i++) {
    await command.updateRelay(admin, `r${i % RELAYS}`, { info: { name: `n${i}` } });
  }
  const update = N / ((performance.now() - start) / 1000);
  await store.close();
  return { update, create };
}

const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-'));
try {
  const raw = rawBaseline(dir);
  const { update, create } = await commandRate(dir);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(`bench/ingest (n=${N}, node ${process.version})`);
  console.log(`  baseline raw better-sqlite3, 1 INSERT per tx : ${fmt(raw)} tx/s`);
  console.log(
    `  bosun updateRelay, 1 command per tx          : ${fmt(update)} commands/s  ratio ${(update / raw).toFixed(2)}`,
  );
  console.log(
    `  bosun createRelay, 1 command per tx          : ${fmt(create)} commands/s  ratio ${(create / raw).toFixed(2)}`,
  );
  console.log(`  target: updateRelay ratio >= 0.5 -> ${update / raw >= 0.5 ? 'met' : 'NOT met'}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
