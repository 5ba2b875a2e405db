import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { toBosunError } from '../../../src/http/errors.js';
import { LOCK_CLASS, parsePostgresUrl, schemaKey } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { keypair } from '../../support/env.js';
import { freshSchema, postgresUrl } from '../../support/postgres.js';
import { relayRecord } from '../../support/relays.js';

/**
 * PostgresStore when PostgreSQL ends its sessions (pg_terminate_backend, as a restart does): a
 * statement blocked on a lock is caught mid-flight, deterministically. The store's connections
 * carry an application_name of this test's own, so only they are terminated (the server is shared).
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const s = freshSchema('bosun_pgloss');
  cleanups.push(s.drop);
  const url = new URL(s.url);
  url.searchParams.set('application_name', s.schema);
  const store = await PostgresStore.open(parsePostgresUrl(url.toString(), { poolSize: 4 }));
  cleanups.push(() => store.close());
  const admin = new pg.Client({ connectionString: postgresUrl! });
  await admin.connect();
  cleanups.push(() => admin.end());
  /** Terminates the store's backends that wait on a lock, once one does; how many. */
  const terminateWaiting = async (): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      const { rows } = await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE application_name = $1 AND wait_event_type = 'Lock') t`,
        [s.schema],
      );
      if (rows[0]!.n > 0) return rows[0]!.n;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the store never waited on the lock');
  };
  return { schema: s.schema, store, terminateWaiting };
}

const { pubkey } = keypair();
const relay = (id: string) => relayRecord(id, pubkey, { owner: 'o', createdAt: 1, updatedAt: 1 });
const activity = (relayId: string) => ({
  type: 'create_relay' as const,
  relayId,
  owner: 'o',
  actor: 't',
  payload: {},
  createdAt: 1,
});

describe.skipIf(!postgresUrl)('PostgresStore losing its connections', () => {
  it('a transaction whose backend is terminated fails as storage_unavailable; the next one commits', async () => {
    const { schema, store, terminateWaiting } = await setup();
    // Hold the append lock, so the explicit transaction of a relay insert waits inside it.
    const holder = new pg.Client({ connectionString: postgresUrl! });
    await holder.connect();
    cleanups.push(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [
      LOCK_CLASS.appendActivities,
      schemaKey(schema),
    ]);
    const insert = store.commit({
      relays: [{ kind: 'insert', relay: relay('a') }],
      activities: [activity('a')],
    });
    const outcome = insert.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(await terminateWaiting()).toBe(1);
    const err = await outcome;
    expect(err).toMatchObject({ code: '57P01' });
    expect(toBosunError(err)).toMatchObject({ code: 'storage_unavailable', status: 503 });
    await holder.query('COMMIT');

    expect(await store.getRelay('a')).toBeUndefined();
    await store.commit({ relays: [{ kind: 'insert', relay: relay('b') }], activities: [activity('b')] });
    expect((await store.getRelay('b'))?.id).toBe('b');
  });

  it('a read whose backend is terminated is sent once more, on another connection', async () => {
    const { schema, store, terminateWaiting } = await setup();
    await store.commit({ relays: [{ kind: 'insert', relay: relay('r') }], activities: [activity('r')] });
    // An exclusive table lock makes reads wait; the lock goes once the first try was cut.
    const holder = new pg.Client({ connectionString: postgresUrl! });
    await holder.connect();
    cleanups.push(() => holder.end());
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE "${schema}".relays IN ACCESS EXCLUSIVE MODE`);
    const read = store.getRelay('r');
    expect(await terminateWaiting()).toBe(1);
    await holder.query('COMMIT');
    expect((await read)?.id).toBe('r');
  });
});
