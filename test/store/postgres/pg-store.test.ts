import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { Relay } from '../../../src/domain/relay.js';
import { openStore } from '../../../src/store/open.js';
import { migrations } from '../../../src/store/postgres/migrations.js';
import { parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { RELAY_COLUMNS, toRow } from '../../../src/store/rows.js';
import { migrations as sqliteMigrations } from '../../../src/store/sqlite/migrations.js';
import { keypair } from '../../support/env.js';
import { followActivities, freshSchema, postgresUrl, withPg } from '../../support/postgres.js';
import { relayRecord } from '../../support/relays.js';
import { storeConformance } from '../conformance.js';
import { expectMigrated6, MIGRATION_6_ACTIVITIES, MIGRATION_6_RELAYS } from '../migration-6.js';
import { expectMigrated9, migration9Relays } from '../migration-9.js';

const open = async (url: string) => PostgresStore.open(parsePostgresUrl(url, { poolSize: 4 }));

describe.skipIf(!postgresUrl)('PostgreSQL', () => {
  storeConformance('postgres', async () => {
    const s = freshSchema();
    const store = await open(s.url);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await s.drop();
      },
    };
  });

  /** A schema as bosun left it after migration `version`, for the upgrade tests (search_path set to it). */
  async function schemaAtMigration(c: pg.Client, schema: string, version: number): Promise<void> {
    await c.query(`CREATE SCHEMA "${schema}"; SET search_path = "${schema}"`);
    await c.query(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
    );
    for (const m of migrations.filter((m) => m.version <= version)) {
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations VALUES ($1, $2, 0)', [m.version, m.name]);
    }
  }

  /** Inserts `relay` as a row of an older schema: only the columns `had` keeps existed then. */
  async function insertOldRelay(c: pg.Client, relay: Relay, had: (col: string) => boolean): Promise<void> {
    const row = toRow(relay, (b) => b);
    const cols = RELAY_COLUMNS.filter(had);
    await c.query(
      `INSERT INTO relays (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`)})`,
      cols.map((col) => row[col]),
    );
  }

  describe('PostgreSQL adapter', () => {
    const schemas: { drop: () => Promise<void> }[] = [];
    const fresh = () => {
      const s = freshSchema();
      schemas.push(s);
      return s;
    };
    afterAll(async () => {
      for (const s of schemas) await s.drop();
    });
    /** A fresh schema as bosun left it after migration `version`, with what `fill` inserts, opened now. */
    const upgraded = async (version: number, fill: (c: pg.Client) => Promise<void>) => {
      const s = fresh();
      await withPg(async (c) => {
        await schemaAtMigration(c, s.schema, version);
        await fill(c);
      });
      return open(s.url);
    };

    it('mirrors the SQLite migrations and applies them once, even when replicas start together', async () => {
      expect(migrations.filter((m) => !m.postgresOnly).map((m) => [m.version, m.name])).toEqual(
        sqliteMigrations.filter((m) => !m.sqliteOnly).map((m) => [m.version, m.name]),
      );
      const s = fresh();
      const stores = await Promise.all([open(s.url), open(s.url), open(s.url)]);
      await Promise.all(stores.map((st) => st.close()));
      const { store: again } = await openStore(s.url);
      await again.setCursor('x', 1);
      await again.close();
      const rows = await withPg(
        async (c) =>
          (await c.query(`SELECT version FROM "${s.schema}".schema_migrations ORDER BY version`)).rows,
      );
      expect(rows).toEqual(migrations.map((m) => ({ version: m.version })));
    });

    it('counts the relays that live on a target by index (DELETE /v1/targets), not by a scan', async () => {
      const s = fresh();
      await (await open(s.url)).close();
      const plan = await withPg(async (c) => {
        await c.query(`SET search_path TO "${s.schema}"`);
        // A fresh table is small enough to scan: only whether an index can answer is asked here.
        await c.query('SET enable_seqscan = off');
        const { rows } = await c.query(
          "EXPLAIN SELECT COUNT(*) AS n FROM relays WHERE pushed_target = 'eu-1'",
        );
        return rows.map((r) => r['QUERY PLAN']).join('\n');
      });
      expect(plan).toContain('relays_pushed_target');
    });

    it('refuses a bad schema name in the URL', () => {
      expect(() => parsePostgresUrl(`${postgresUrl}?schema=Robert'); DROP`)).toThrow(/schema must match/);
    });

    it('makes activity ids visible in increasing order to a reader following id > cursor', async () => {
      const s = fresh();
      const store = await open(s.url);
      const reader = await open(s.url);
      const { pubkey } = keypair();
      const relay = (id: string): Relay =>
        relayRecord(id, pubkey, { owner: 'o', createdAt: 1, updatedAt: 1 });
      // 8 writers commit concurrently (the pool has 4 connections, a second store adds 4 more)
      // while a follower reads id > cursor and advances its cursor to the last id it saw: with
      // out-of-order visibility it would skip an id for good.
      let writing = true;
      const follower = followActivities(reader, () => writing);
      const second = await open(s.url);
      const committed: number[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          const st = w % 2 ? second : store;
          for (let i = 0; i < 40; i++) {
            const id = `w${w}-${i}`;
            const [a] = await st.commit({
              relays: [{ kind: 'insert', relay: relay(id) }],
              activities: [
                { type: 'create_relay', relayId: id, owner: 'alice', actor: 't', payload: {}, createdAt: 1 },
              ],
            });
            committed.push(a!.id);
          }
        }),
      );
      writing = false;
      const seen = await follower;
      expect(seen).toEqual([...committed].sort((x, y) => x - y));
      await Promise.all([store.close(), reader.close(), second.close()]);
    });

    it('notifies other connections after commit, never for a rollback', async () => {
      const s = fresh();
      const store = await open(s.url);
      const received: string[] = [];
      await withPg(async (c) => {
        await c.query(`LISTEN "${store.channel}"`);
        c.on('notification', (n) => received.push(n.payload ?? ''));
        const relay = await store.commit({
          relays: [],
          activities: [
            { type: 'resync_relay', relayId: 'a', owner: 'alice', actor: 't', payload: {}, createdAt: 1 },
          ],
        });
        expect(relay).toHaveLength(1);
        await store.commit({ relays: [], activities: [] });
        const deadline = Date.now() + 2000;
        while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      });
      expect(received).toEqual([store.instanceId]);
      await store.close();
    });

    it('prepares one statement per changed-column set, however long their names would be', async () => {
      const s = fresh();
      // One connection: every statement is prepared on it, so a name clash would surface.
      const store = await PostgresStore.open(parsePostgresUrl(s.url, { poolSize: 1 }));
      const { pubkey } = keypair();
      const r0: Relay = relayRecord('p', pubkey, { owner: 'o', createdAt: 1, updatedAt: 1 });
      await store.commit({ relays: [{ kind: 'insert', relay: r0 }], activities: [] });
      // Two column sets whose names share a prefix longer than PostgreSQL's 63-byte identifiers.
      const r1: Relay = {
        ...r0,
        rev: 2,
        sync: {
          ...r0.sync,
          status: 'synced',
          syncedVersion: 1,
          lastSyncedAt: 5,
          ackedConfig: { a: 1 },
          ackedDeleted: false,
        },
      };
      const r2: Relay = {
        ...r1,
        rev: 3,
        sync: { ...r1.sync, status: 'pending', syncedVersion: 0, lastSyncedAt: 6, ackedConfig: { a: 2 } },
      };
      await store.commit({ relays: [{ kind: 'update', relay: r1, previous: r0 }], activities: [] });
      await store.commit({ relays: [{ kind: 'update', relay: r2, previous: r1 }], activities: [] });
      expect((await store.getRelay('p'))?.sync).toMatchObject({
        status: 'pending',
        lastSyncedAt: 6,
        ackedConfig: { a: 2 },
      });
      await store.close();
    });

    it('applies the statement timeout to pooled connections', async () => {
      const s = fresh();
      const store = await PostgresStore.open(parsePostgresUrl(s.url, { statementTimeoutMs: 50 }));
      await expect(store.pool.query('SELECT pg_sleep(1)')).rejects.toThrow(/statement timeout/);
      await store.close();
    });

    it("migration 6 records each activity's owner and each relay's first version", async () => {
      const { pubkey } = keypair();
      const store = await upgraded(5, async (c) => {
        for (const [id, owner, version] of MIGRATION_6_RELAYS) {
          await insertOldRelay(
            c,
            relayRecord(id, pubkey, { owner, version }),
            (col) => col !== 'created_version' && !col.startsWith('live_') && col !== 'pushed_target',
          );
        }
        for (const [type, id, version] of MIGRATION_6_ACTIVITIES) {
          await c.query(
            "INSERT INTO activities (type, relay_id, actor, payload, created_at) VALUES ($1, $2, 't', $3, 1)",
            [type, id, JSON.stringify({ version })],
          );
        }
      });
      await expectMigrated6(store);
      await store.close();
    });
    it('migration 7 adds targets and fleets to an existing schema: every fleet keeps the default target', async () => {
      const { pubkey } = keypair();
      // A relay in fleet edge, in the schema as bosun left it at migration 6.
      const store = await upgraded(6, async (c) => {
        // The live_* columns came with a later migration.
        await insertOldRelay(
          c,
          relayRecord('a', pubkey, { fleet: 'edge' }),
          (col) => !col.startsWith('live_') && col !== 'pushed_target',
        );
      });
      expect(await store.getRelay('a')).toMatchObject({ fleet: 'edge' });
      expect(await store.listTargets()).toEqual([]);
      expect(await store.listFleets()).toEqual([]);
      expect(await store.getFleet('edge')).toBeUndefined();
      await store.close();
    });
    it('migration 9 records where each relay zooid holds lives: its fleet target, default without one', async () => {
      const { pubkey } = keypair();
      const store = await upgraded(8, async (c) => {
        await c.query(
          "INSERT INTO targets (name, url, rev, created_at, updated_at) VALUES ('eu-1', 'http://eu.test', 1, 0, 0)",
        );
        await c.query(
          "INSERT INTO fleets (name, target, created_at, updated_at) VALUES ('eu', 'eu-1', 0, 0)",
        );
        await c.query(
          "INSERT INTO fleets (name, pull_only, created_at, updated_at) VALUES ('edge', TRUE, 0, 0)",
        );
        const old = (col: string) => col !== 'pushed_target';
        for (const r of migration9Relays(pubkey)) await insertOldRelay(c, r, old);
      });
      await expectMigrated9(store);
      await store.close();
    });
  });
});
