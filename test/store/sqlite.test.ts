import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { RELAY_COLUMNS, toRow } from '../../src/store/rows.js';
import { migrations } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { keypair, tempDir } from '../support/env.js';
import { relayRecord } from '../support/relays.js';
import { storeConformance } from './conformance.js';

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

  it("migration 4 chains an existing database's history per relay and drops the index", async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bosun.db');
    // A database as bosun left it at migration 3, with relays a and b and history a, b, a, a.
    const db = new Database(file);
    db.exec(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    for (const m of migrations.filter((m) => m.version <= 3)) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, 0)').run(m.version, m.name);
    }
    const { pubkey } = keypair();
    const cols = RELAY_COLUMNS.join(', ');
    const insertRelay = db.prepare(
      `INSERT INTO relays (${cols}) VALUES (${RELAY_COLUMNS.map((c) => `@${c}`)})`,
    );
    for (const id of ['a', 'b', 'c']) insertRelay.run(toRow(relayRecord(id, pubkey), (b) => (b ? 1 : 0)));
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
});
