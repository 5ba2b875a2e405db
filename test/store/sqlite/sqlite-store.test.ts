import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { Relay } from '../../../src/domain/relay.js';
import { RELAY_COLUMNS, toRow } from '../../../src/store/rows.js';
import { migrations } from '../../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { keypair, tempDir } from '../../support/env.js';
import { relayRecord } from '../../support/relays.js';
import { storeConformance } from '../conformance.js';
import { expectMigrated6, MIGRATION_6_ACTIVITIES, MIGRATION_6_RELAYS } from '../migration-6.js';
import { expectMigrated9, migration9Relays } from '../migration-9.js';

storeConformance('sqlite', async () => {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'db', 'bosun.db'));
  return {
    store,
    cleanup: async () => {
      await store.close();
      dir.cleanup();
    },
  };
});

describe('SQLite adapter', () => {
  it('applies numbered migrations once, in WAL mode, and survives reopening', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bosun.db');
    await new SqliteStore(file).close();
    const second = new SqliteStore(file);
    await second.setCursor('x', 1);
    await second.close();
    const db = new Database(file, { readonly: true });
    const applied = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
    expect(applied).toEqual(migrations.map((m) => ({ version: m.version })));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    dir.cleanup();
  });

  it('counts the relays that live on a target by index (DELETE /v1/targets), not by a scan', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bosun.db');
    await new SqliteStore(file).close();
    const db = new Database(file, { readonly: true });
    const plan = db
      .prepare("EXPLAIN QUERY PLAN SELECT COUNT(*) AS n FROM relays WHERE pushed_target = 'eu-1'")
      .all();
    expect(JSON.stringify(plan)).toContain('USING COVERING INDEX relays_pushed_target');
    db.close();
    dir.cleanup();
  });

  it("migration 4 chains an existing database's history per relay and drops the index", async () => {
    // A database as bosun left it at migration 3, with relays a and b and history a, b, a, a.
    const { dir, file, db, insertRelay } = databaseAt(3);
    const { pubkey } = keypair();
    for (const id of ['a', 'b', 'c']) insertRelay(relayRecord(id, pubkey));
    const insertActivity = db.prepare(
      "INSERT INTO activities (type, relay_id, actor, payload, created_at) VALUES ('update_relay', ?, 't', '{}', 1)",
    );
    for (const id of ['a', 'b', 'a', 'a']) insertActivity.run(id);
    db.close();

    const store = new SqliteStore(file);
    const view = new Database(file, { readonly: true });
    expect(view.prepare('SELECT id, prev_id FROM activities ORDER BY id').all()).toEqual([
      { id: 1, prev_id: null },
      { id: 2, prev_id: null },
      { id: 3, prev_id: 1 },
      { id: 4, prev_id: 3 },
    ]);
    expect(view.prepare('SELECT id, last_activity_id FROM relays ORDER BY id').all()).toEqual([
      { id: 'a', last_activity_id: 4 },
      { id: 'b', last_activity_id: 2 },
      { id: 'c', last_activity_id: null },
    ]);
    expect(view.prepare("SELECT name FROM sqlite_master WHERE name = 'activities_relay'").all()).toEqual([]);
    view.close();
    // New activities continue the chain.
    await store.commit({
      relays: [],
      activities: [
        { type: 'resync_relay', relayId: 'a', owner: 'alice', actor: 't', payload: {}, createdAt: 2 },
      ],
    });
    const history = await store.activitiesAfter({ after: 0, relayId: 'a', limit: 10 });
    expect(history.map((a) => a.id)).toEqual([1, 3, 4, 5]);
    await store.close();
    dir.cleanup();
  });

  it("migration 6 records each activity's owner and each relay's first version", async () => {
    const { dir, file, db, insertRelay } = databaseAt(5);
    const { pubkey } = keypair();
    for (const [id, owner, version] of MIGRATION_6_RELAYS)
      insertRelay(relayRecord(id, pubkey, { owner, version }));
    const insertActivity = db.prepare(
      "INSERT INTO activities (type, relay_id, actor, payload, created_at) VALUES (?, ?, 't', ?, 1)",
    );
    for (const [type, id, version] of MIGRATION_6_ACTIVITIES) {
      insertActivity.run(type, id, JSON.stringify({ version }));
    }
    db.close();

    const store = new SqliteStore(file);
    await expectMigrated6(store);
    await store.close();
    dir.cleanup();
  });
  it('migration 7 adds targets and fleets to an existing database: every fleet keeps the default target', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bosun.db');
    const db = migratedTo(file, 6);
    const { pubkey } = keypair();
    relayInserter(db, 6)(relayRecord('a', pubkey, { fleet: 'edge' }));
    db.close();
    const store = new SqliteStore(file);
    expect(await store.getRelay('a')).toMatchObject({ fleet: 'edge' });
    expect(await store.listTargets()).toEqual([]);
    expect(await store.listFleets()).toEqual([]);
    expect(await store.getFleet('edge')).toBeUndefined();
    await store.close();
    dir.cleanup();
  });
  it('migration 9 records where each relay zooid holds lives: its fleet target, default without one', async () => {
    const { dir, file, db, insertRelay } = databaseAt(8);
    const { pubkey } = keypair();
    db.prepare(
      "INSERT INTO targets (name, url, rev, created_at, updated_at) VALUES ('eu-1', 'http://eu.test', 1, 0, 0)",
    ).run();
    db.prepare("INSERT INTO fleets (name, target, created_at, updated_at) VALUES ('eu', 'eu-1', 0, 0)").run();
    db.prepare("INSERT INTO fleets (name, pull_only, created_at, updated_at) VALUES ('edge', 1, 0, 0)").run();
    for (const r of migration9Relays(pubkey)) insertRelay(r);
    db.close();
    const store = new SqliteStore(file);
    await expectMigrated9(store);
    await store.close();
    dir.cleanup();
  });
});

/** A database file as bosun left it at `version` of the migrations. */
/** A database file as bosun left it at migration `version`, and an inserter of relay rows as they were then. */
function databaseAt(version: number) {
  const dir = tempDir();
  const file = join(dir.path, 'bosun.db');
  const db = migratedTo(file, version);
  return { dir, file, db, insertRelay: relayInserter(db, version) };
}

function migratedTo(file: string, version: number): Database.Database {
  const db = new Database(file);
  db.exec(
    'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
  );
  for (const m of migrations.filter((m) => m.version <= version)) {
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
  }
  return db;
}

/** Inserts relays into a database left at an older migration: only the columns it had then. */
function relayInserter(db: Database.Database, version: number): (relay: Relay) => void {
  const cols = RELAY_COLUMNS.filter(
    (c) =>
      (version >= 6 || c !== 'created_version') &&
      (version >= 8 || !c.startsWith('live_')) &&
      (version >= 9 || c !== 'pushed_target'),
  );
  const insert = db.prepare(`INSERT INTO relays (${cols.join(', ')}) VALUES (${cols.map((c) => `@${c}`)})`);
  return (relay) => {
    const row = toRow(relay, (b) => (b ? 1 : 0));
    insert.run(Object.fromEntries(cols.map((c) => [c, row[c]])));
  };
}
