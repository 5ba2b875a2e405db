/**
 * bench/ingest: committed commands per second through Command (merge patch, validation of the
 * patched sections, one transaction writing the relay row and its activity), beside the raw driver
 * rate of one INSERT per transaction with the same connection settings, measured in the same run
 * on the same disk. Target: ratio ≥ 0.5. On SQLite the two alternate in rounds (medians).
 *
 *   npm run bench:ingest [-- --n 20000]                                   SQLite (better-sqlite3)
 *   npm run bench:ingest -- --postgres [postgres://user@host/db] [--n 5000]  PostgreSQL (pg)
 *
 * On PostgreSQL the raw baseline is single-row INSERTs (autocommit, a prepared statement) from one
 * connection into a scratch schema; bosun runs in another scratch schema. Both are dropped after.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Command } from '../src/command.js';
import { systemClock } from '../src/domain/clock.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { applyRelayPatch, type Relay } from '../src/domain/relay.js';
import { Notifier } from '../src/notifier.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/port.js';
import { RELAY_COLUMNS, toRow } from '../src/store/rows.js';
import { migrations } from '../src/store/sqlite/migrations.js';
import { SQLITE_PRAGMAS, SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { arg, postgresArg } from './support/child.js';

const POSTGRES = postgresArg();
const N = Number(arg('--n')) || (POSTGRES ? 5000 : 20_000);
const RELAYS = 100;
const ROUNDS = 5;
const admin: Principal = { role: 'admin', actor: 'bench' };

/** One raw round: `n` single-INSERT transactions on a fresh table, with bosun's pragmas. */
function sqliteBaseline(dir: string, round: number, n: number): number {
  const db = new Database(join(dir, `raw-${round}.db`));
  for (const pragma of SQLITE_PRAGMAS) db.pragma(pragma);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, relay_id TEXT, payload TEXT, created_at INTEGER)');
  const insert = db.prepare('INSERT INTO t (relay_id, payload, created_at) VALUES (?, ?, ?)');
  const tx = db.transaction((i: number) =>
    insert.run(`r${i % RELAYS}`, `{"version":${i},"name":"n${i}"}`, Date.now()),
  );
  const start = performance.now();
  for (let i = 0; i < n; i++) tx(i);
  const rate = n / ((performance.now() - start) / 1000);
  db.close();
  return rate;
}

/** What one update writes, given the relay before it: the config's JSON and the activity payload. */
type UpdateStep = (relay: Relay, i: number) => { relay: Relay; config: string; payload: string };

/**
 * The floor under bosun's update on SQLite: the two statements its transaction runs (append the
 * activity to the relay's chain, rewrite the changed columns of the relay row), issued raw on a
 * database with bosun's schema and relays — no bosun code. Shows how much of the gap to the
 * 1-INSERT baseline is the second row every change must write, and how much is bosun.
 */
function floorStep(relays: Relay[]): UpdateStep {
  const configs = new Map(relays.map((r) => [r.id, JSON.stringify(r.config)]));
  return (relay, i) => ({
    relay: { ...relay, version: relay.version + 1, rev: relay.rev + 1 },
    config: configs.get(relay.id)!.replace(/"name":"[^"]*"/, `"name":"n${i}"`),
    payload: `{"version":${relay.version + 1},"fields":["info"]}`,
  });
}

/**
 * The floor plus the least work any updateRelay must do in JavaScript: merge and validate the patch
 * (the domain's own function), derive the next relay, serialize its config and its activity. No
 * locks, cache, async layers or store port: what is left between this and bosun is bosun's code.
 */
const minimumStep: UpdateStep = (relay, i) => {
  const { fleet, config } = applyRelayPatch(relay, { info: { name: `n${i}` } });
  const next = { ...relay, fleet, config, version: relay.version + 1, rev: relay.rev + 1 };
  return {
    relay: next,
    config: JSON.stringify(config),
    payload: JSON.stringify({ version: next.version, fields: ['info'] }),
  };
};

/** `n` updates of `relays` round robin, each one transaction of bosun's two statements. */
function sqliteTwoStatements(file: string, n: number, relays: Relay[], step: UpdateStep): number {
  const db = new Database(file);
  for (const pragma of SQLITE_PRAGMAS) db.pragma(pragma);
  for (const m of migrations) db.exec(m.sql);
  const insertRelay = db.prepare(
    `INSERT INTO relays (${RELAY_COLUMNS.join(', ')}) VALUES (${RELAY_COLUMNS.map((c) => `@${c}`).join(', ')})`,
  );
  for (const relay of relays) insertRelay.run(toRow(relay, (b) => (b ? 1 : 0)));
  const append = db.prepare(
    `INSERT INTO activities (type, relay_id, owner, actor, payload, created_at, prev_id)
     VALUES ('update_relay', ?, ?, 'bench', ?, ?, (SELECT last_activity_id FROM relays WHERE id = ?))`,
  );
  const rewrite = db.prepare(
    'UPDATE relays SET version = ?, rev = ?, config = ?, updated_at = ?, last_activity_id = ? WHERE id = ? AND rev = ?',
  );
  const current = [...relays];
  const tx = db.transaction((i: number) => {
    const j = i % current.length;
    const relay = current[j]!;
    const { relay: next, config, payload } = step(relay, i);
    const now = Date.now();
    const { lastInsertRowid } = append.run(relay.id, relay.owner, payload, now, relay.id);
    if (
      rewrite.run(next.version, next.rev, config, now, lastInsertRowid, relay.id, relay.rev).changes !== 1
    ) {
      throw new Error('bench: stale rev');
    }
    current[j] = next;
  });
  const start = performance.now();
  for (let i = 0; i < n; i++) tx.immediate(i);
  const rate = n / ((performance.now() - start) / 1000);
  db.close();
  return rate;
}

async function postgresBaseline(url: string, schema: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(
      `CREATE TABLE "${schema}".t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, relay_id TEXT, payload TEXT, created_at BIGINT)`,
    );
    const text = `INSERT INTO "${schema}".t (relay_id, payload, created_at) VALUES ($1, $2, $3)`;
    const start = performance.now();
    for (let i = 0; i < N; i++) {
      await client.query({
        name: 'raw_insert',
        text,
        values: [`r${i % RELAYS}`, `{"version":${i},"name":"n${i}"}`, Date.now()],
      });
    }
    return N / ((performance.now() - start) / 1000);
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await client.end();
  }
}

/** Creates RELAYS relays (timed: the create rate) and returns a function timing `n` updates. */
async function commandRounds(store: Store) {
  const command = new Command(store, new Notifier(), systemClock);
  const pubkey = publicKeyOf(generateSecretKey());
  const creates = Math.min(N, 5000);
  const start = performance.now();
  for (let i = 0; i < creates; i++) {
    await command.createRelay(admin, {
      id: `r${i}`,
      host: `r${i}.example.com`,
      info: { pubkey, name: `r${i}` },
    });
  }
  const create = creates / ((performance.now() - start) / 1000);
  let next = 0;
  const updates = async (n: number) => {
    const begin = performance.now();
    for (let k = 0; k < n; k++, next++) {
      await command.updateRelay(admin, `r${next % RELAYS}`, { info: { name: `n${next}` } });
    }
    return n / ((performance.now() - begin) / 1000);
  };
  return { create, updates };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function report(
  backend: string,
  raw: number,
  update: number,
  create: number,
  sqlite?: { floor: number; minimum: number },
) {
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const rounds = backend === 'pg' ? '' : `, median of ${ROUNDS} alternating rounds`;
  console.log(`bench/ingest ${backend} (n=${N}${rounds}, node ${process.version})`);
  console.log(`  baseline raw ${backend}, 1 INSERT per tx : ${fmt(raw)} tx/s`);
  console.log(
    `  bosun updateRelay, 1 command per tx     : ${fmt(update)} commands/s  ratio ${(update / raw).toFixed(2)}`,
  );
  console.log(
    `  bosun createRelay, 1 command per tx     : ${fmt(create)} commands/s  ratio ${(create / raw).toFixed(2)}`,
  );
  if (sqlite) {
    const { floor, minimum } = sqlite;
    console.log(
      `  floor: bosun's 2 update statements, raw  : ${fmt(floor)} tx/s  ratio ${(floor / raw).toFixed(2)}  (bosun at ${(update / floor).toFixed(2)} of it)`,
    );
    console.log(
      `  minimum: floor + patch, validate, JSON   : ${fmt(minimum)} tx/s  ratio ${(minimum / raw).toFixed(2)}  (bosun at ${(update / minimum).toFixed(2)} of it)`,
    );
  }
  console.log(`  target: updateRelay ratio >= 0.5 -> ${update / raw >= 0.5 ? 'met' : 'NOT met'}`);
}

if (POSTGRES) {
  const tag = randomBytes(4).toString('hex');
  const rawSchema = `bench_raw_${tag}`;
  const schema = `bench_ingest_${tag}`;
  const u = new URL(POSTGRES);
  u.searchParams.set('schema', schema);
  try {
    const raw = await postgresBaseline(POSTGRES, rawSchema);
    const { store } = await openStore(u.toString(), { poolSize: 4 });
    const { create, updates } = await commandRounds(store);
    const update = await updates(N);
    await store.close();
    report('pg', raw, update, create);
  } finally {
    const client = new pg.Client({ connectionString: POSTGRES });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
} else {
  // Raw and bosun rounds alternate, and each figure is the median of its rounds, so a load swing
  // on the machine hits both sides alike.
  const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-'));
  try {
    const store = new SqliteStore(join(dir, 'bosun.db'));
    const { create, updates } = await commandRounds(store);
    const per = Math.ceil(N / ROUNDS);
    const relays = await store.getRelays(Array.from({ length: RELAYS }, (_, i) => `r${i}`));
    const raw: number[] = [];
    const floor: number[] = [];
    const minimum: number[] = [];
    const update: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(sqliteBaseline(dir, r, per));
      floor.push(sqliteTwoStatements(join(dir, `floor-${r}.db`), per, relays, floorStep(relays)));
      minimum.push(sqliteTwoStatements(join(dir, `minimum-${r}.db`), per, relays, minimumStep));
      update.push(await updates(per));
    }
    await store.close();
    report('better-sqlite3', median(raw), median(update), create, {
      floor: median(floor),
      minimum: median(minimum),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
