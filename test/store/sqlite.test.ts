import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrations } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/env.js';
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
});
