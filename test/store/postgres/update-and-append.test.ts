import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Activity, ActivityDraft } from '../../../src/domain/activity.js';
import type { Relay } from '../../../src/domain/relay.js';
import type { Fence, WriteBatch } from '../../../src/store/port.js';
import { parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { FencedError, StaleWriteError, StoreConflictError } from '../../../src/store/write-errors.js';
import { keypair } from '../../support/env.js';
import { followActivities, freshSchema, postgresUrl } from '../../support/postgres.js';
import { relayRecord } from '../../support/relays.js';

/**
 * The one-statement commit of a single relay update (PostgresStore.updateAndAppend): the
 * conformance suite covers its behaviour through the Store port; these cover what only PostgreSQL
 * shows — one round trip, nothing left behind by a refused write, ordering and locking under
 * concurrency with the explicit-transaction path.
 */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const { pubkey } = keypair();
const relay = (id: string, over: Partial<Relay> = {}): Relay =>
  relayRecord(id, pubkey, { owner: 'o', createdAt: 1, updatedAt: 1, ...over });
const act = (relayId: string, type: ActivityDraft['type'] = 'update_relay'): ActivityDraft => ({
  type,
  relayId,
  owner: 'o',
  actor: 't',
  payload: { n: 1 },
  createdAt: 1,
});
/** The next version of a row as a Command would write it (a new rev and a changed column). */
const bump = (r: Relay, over: Partial<Relay> = {}): Relay => ({
  ...r,
  rev: r.rev + 1,
  version: r.version + 1,
  ...over,
});

async function schemaWithStores(n: number, poolSize = 4) {
  const s = freshSchema();
  cleanups.push(s.drop);
  const stores: PostgresStore[] = [];
  for (let i = 0; i < n; i++) {
    const st = await PostgresStore.open(parsePostgresUrl(s.url, { poolSize }));
    cleanups.push(() => st.close());
    stores.push(st);
  }
  return { schema: s.schema, stores };
}

/** Runs `work` and records the statements the pool's connections sent meanwhile. */
async function statementsOf<T>(work: () => Promise<T>): Promise<{ result: T; statements: string[] }> {
  const statements: string[] = [];
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  const spy = vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (
    this: pg.Client,
    ...args: unknown[]
  ) {
    const q = args[0] as string | { text: string };
    statements.push(typeof q === 'string' ? q : q.text);
    return original.apply(this, args);
  } as never);
  try {
    return { result: await work(), statements };
  } finally {
    spy.mockRestore();
  }
}

describe.skipIf(!postgresUrl)('PostgreSQL single-relay update commit (one statement)', () => {
  it('commits the relay and its activities atomically in one statement and returns them', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const r = relay('a');
    await store!.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a', 'create_relay')] });
    const fence: Fence = { lease: 'worker', epoch: await store!.newLeaseEpoch('worker') };
    const next = bump(r, { sync: { ...r.sync, status: 'synced', syncedVersion: 2, lastSyncedAt: 9 } });
    const batch: WriteBatch = {
      relays: [{ kind: 'update', relay: next, previous: r }],
      activities: [act('a', 'complete_relay_sync'), act('b', 'resync_relay')],
      fence,
    };
    const { result, statements } = await statementsOf(() => store!.commit(batch));
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^\s*WITH fence AS MATERIALIZED/);
    expect(result).toEqual([
      {
        id: 2,
        type: 'complete_relay_sync',
        relayId: 'a',
        owner: 'o',
        actor: 't',
        payload: { n: 1 },
        createdAt: 1,
      },
      { id: 3, type: 'resync_relay', relayId: 'b', owner: 'o', actor: 't', payload: { n: 1 }, createdAt: 1 },
    ]);
    expect(await store!.getRelay('a')).toEqual(next);
    expect((await store!.activitiesAfter({ after: 0, limit: 10 })).slice(1)).toEqual(result);
    // Unfenced, and with no activities: still one statement, nothing appended.
    const again = bump(next, { updatedAt: 5 });
    const plain = await statementsOf(() =>
      store!.commit({ relays: [{ kind: 'update', relay: again, previous: next }], activities: [] }),
    );
    expect(plain.statements).toHaveLength(1);
    expect(plain.result).toEqual([]);
    expect(await store!.getRelay('a')).toEqual(again);
    expect(await store!.lastActivityId()).toBe(3);
  });

  it('writes a fenced cursor in one statement; a superseded or unknown fence writes nothing', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const first: Fence = { lease: 'worker', epoch: await store!.newLeaseEpoch('worker') };
    const { statements } = await statementsOf(() => store!.setCursor('observer', 5, first));
    expect(statements).toHaveLength(1);
    expect(await store!.getCursor('observer')).toBe(5);
    await store!.setCursor('observer', 6, first);
    expect(await store!.getCursor('observer')).toBe(6);
    await store!.newLeaseEpoch('worker');
    for (const fence of [first, { lease: 'nobody', epoch: 1 }]) {
      const err = await store!.setCursor('observer', 9, fence).catch((e) => e);
      expect(err).toBeInstanceOf(FencedError);
      expect(err).toMatchObject(fence);
    }
    // A cursor not written yet is refused alike, and not created.
    await expect(store!.setCursor('observer:eu', 3, first)).rejects.toBeInstanceOf(FencedError);
    expect(await store!.getCursor('observer')).toBe(6);
    expect(await store!.getCursor('observer:eu')).toBe(0);
  });

  it('commits single-relay updates that arrive while one is in flight as one group, each judged alone', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const rows = Object.fromEntries(ids.map((id) => [id, relay(id)]));
    await store!.commit({
      relays: ids.map((id) => ({ kind: 'insert' as const, relay: rows[id]! })),
      activities: ids.map((id) => act(id, 'create_relay')),
    });
    const old: Fence = { lease: 'worker', epoch: await store!.newLeaseEpoch('worker') };
    const fence: Fence = { lease: 'worker', epoch: await store!.newLeaseEpoch('worker') };
    const update = (id: string, over: { previous?: Relay; fence?: Fence } = {}) =>
      store!
        .commit({
          relays: [{ kind: 'update', relay: bump(rows[id]!), previous: over.previous ?? rows[id]! }],
          activities: [act(id)],
          ...(over.fence ? { fence: over.fence } : {}),
        })
        .then(
          (a) => a.map((x) => x.relayId).join(),
          (e: Error) => e.constructor.name,
        );
    const { result, statements } = await statementsOf(() =>
      Promise.all([
        update('a'), // in flight: the others wait for it
        update('b', { fence }),
        update('c', { previous: bump(rows.c!) }), // stale rev
        update('d', { fence: old }), // superseded fence
        update('b'), // b's rev moved in this very group
        update('e'),
      ]),
    );
    expect(result).toEqual(['a', 'b', 'StaleWriteError', 'FencedError', 'StaleWriteError', 'e']);
    expect(statements.filter((q) => q === 'BEGIN' || q === 'COMMIT')).toEqual(['BEGIN', 'COMMIT']);
    expect((await store!.getRelays(ids)).map((r) => r.rev)).toEqual([2, 2, 1, 1, 2]);
    const log = await store!.activitiesAfter({ after: ids.length, limit: 10 });
    expect(log.map((a) => a.relayId)).toEqual(['a', 'b', 'e']);

    // A unique violation aborts the group's transaction: each write is sent again alone.
    const now = Object.fromEntries((await store!.getRelays(ids)).map((r) => [r.id, r]));
    const clash = store!
      .commit({
        relays: [
          {
            kind: 'update',
            relay: bump(now.c!, { config: { ...now.c!.config, host: now.a!.config.host } }),
            previous: now.c!,
          },
        ],
        activities: [act('c')],
      })
      .catch((e) => e);
    const [first, conflict, last] = await Promise.all([
      store!.commit({
        relays: [{ kind: 'update', relay: bump(now.a!), previous: now.a! }],
        activities: [act('a')],
      }),
      clash,
      store!.commit({
        relays: [{ kind: 'update', relay: bump(now.d!), previous: now.d! }],
        activities: [act('d')],
      }),
    ]);
    expect(conflict).toBeInstanceOf(StoreConflictError);
    expect([first.map((a) => a.relayId), last.map((a) => a.relayId)]).toEqual([['a'], ['d']]);
    expect((await store!.getRelays(['a', 'c', 'd'])).map((r) => r.rev)).toEqual([3, 1, 2]);
  });

  it('keeps the explicit transaction for inserts, several relays and fleet states', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const [a, b] = [relay('a'), relay('b')];
    const fleetState = {
      record: {
        fleet: 'default',
        version: 1,
        configId: 'default.v1',
        owner: null,
        actor: 't',
        createdAt: 1,
        state: {
          version: 'v1' as const,
          config_id: 'default.v1',
          fleet_id: 'default',
          fleet_version: 1,
          owner: null,
          relays: [],
          orphans: {},
        },
      },
      previousVersion: 0,
    };
    for (const batch of [
      {
        relays: [
          { kind: 'insert' as const, relay: a },
          { kind: 'insert' as const, relay: b },
        ],
        activities: [act('a')],
      },
      {
        relays: [
          { kind: 'update' as const, relay: bump(a), previous: a },
          { kind: 'update' as const, relay: bump(b), previous: b },
        ],
        activities: [act('a')],
      },
      {
        relays: [{ kind: 'update' as const, relay: bump(bump(a)), previous: bump(a) }],
        activities: [act('a')],
        fleetStates: [fleetState],
      },
    ] satisfies WriteBatch[]) {
      const { statements } = await statementsOf(() => store!.commit(batch));
      expect([statements[0], statements.at(-1)]).toEqual(['BEGIN', 'COMMIT']);
    }
    expect((await store!.getRelays(['a', 'b'])).map((r) => r.rev)).toEqual([3, 2]);
  });

  /** Listens on the store's channel; `settle` commits a write that notifies and waits for it. */
  async function listening(store: PostgresStore) {
    const client = new pg.Client({ connectionString: postgresUrl! });
    await client.connect();
    cleanups.push(() => client.end());
    const received: string[] = [];
    client.on('notification', (n) => received.push(n.payload ?? ''));
    await client.query(`LISTEN "${store.channel}"`);
    return {
      received,
      /** Notifications arrive in commit order: once this one is in, any earlier one would be too. */
      settle: async () => {
        await store.commit({ relays: [], activities: [act('marker', 'resync_relay')] });
        const deadline = Date.now() + 3000;
        while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      },
    };
  }

  /**
   * A refused commit left `relay` as it was and the log at `lastId`, and notified nothing (the
   * listener hears only the marker of `settle`).
   */
  async function expectNothingWritten(
    store: PostgresStore,
    listener: Awaited<ReturnType<typeof listening>>,
    relay: Relay,
    lastId: number,
  ) {
    expect(await store.getRelay(relay.id)).toEqual(relay);
    expect(await store.lastActivityId()).toBe(lastId);
    await listener.settle();
    expect(listener.received).toEqual([store.instanceId]);
  }

  it('a stale rev writes nothing: no activity, no notification, the row unchanged', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const r = relay('a');
    await store!.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a', 'create_relay')] });
    const current = bump(r);
    await store!.commit({
      relays: [{ kind: 'update', relay: current, previous: r }],
      activities: [act('a')],
    });
    const listener = await listening(store!);
    const stale = bump(r, { updatedAt: 77 });
    const err = await store!
      .commit({ relays: [{ kind: 'update', relay: stale, previous: r }], activities: [act('a'), act('a')] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(StaleWriteError);
    expect(err).toMatchObject({ relayId: 'a' });
    await expectNothingWritten(store!, listener, current, 2);
  });

  it('a superseded or unknown fence writes nothing, even when the rev is also stale', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const r = relay('a');
    await store!.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a', 'create_relay')] });
    const old: Fence = { lease: 'worker', epoch: await store!.newLeaseEpoch('worker') };
    await store!.newLeaseEpoch('worker');
    const listener = await listening(store!);
    const next = bump(r, { sync: { ...r.sync, status: 'failed', error: 'x' } });
    for (const [fence, previous] of [
      [old, r],
      [{ lease: 'nobody', epoch: 1 }, r],
      [old, bump(r)],
    ] as const) {
      const err = await store!
        .commit({ relays: [{ kind: 'update', relay: next, previous }], activities: [act('a')], fence })
        .catch((e) => e);
      expect(err).toBeInstanceOf(FencedError);
      expect(err).toMatchObject(fence);
    }
    await expectNothingWritten(store!, listener, r, 1);
  });

  it('maps a host conflict to StoreConflictError and writes nothing', async () => {
    const [store] = (await schemaWithStores(1)).stores;
    const a = relay('a');
    const b = relay('b');
    await store!.commit({
      relays: [
        { kind: 'insert', relay: a },
        { kind: 'insert', relay: b },
      ],
      activities: [act('a', 'create_relay'), act('b', 'create_relay')],
    });
    const listener = await listening(store!);
    const clash = bump(b, { config: { ...b.config, host: a.config.host } });
    const err = await store!
      .commit({ relays: [{ kind: 'update', relay: clash, previous: b }], activities: [act('b')] })
      .catch((e) => e);
    expect(err).toBeInstanceOf(StoreConflictError);
    expect(err).toMatchObject({ field: 'host', value: a.config.host });
    await expectNothingWritten(store!, listener, b, 2);
    // Nothing is left locked: the next write of the same relay goes through.
    await store!.commit({
      relays: [{ kind: 'update', relay: bump(b), previous: b }],
      activities: [act('b')],
    });
  });

  it('keeps ids visible in increasing order and never deadlocks under concurrent mixed writes', async () => {
    const { stores } = await schemaWithStores(3);
    const [one, two, reader] = stores as [PostgresStore, PostgresStore, PostgresStore];
    const ids = Array.from({ length: 6 }, (_, i) => `r${i}`);
    await one.commit({
      relays: ids.map((id) => ({ kind: 'insert' as const, relay: relay(id) })),
      activities: ids.map((id) => act(id, 'create_relay')),
    });
    const fence: Fence = { lease: 'worker', epoch: await one.newLeaseEpoch('worker') };

    // A follower reads id > cursor and moves its cursor to the last id it saw, like the observer:
    // an id that became visible after a larger one would be skipped and missing from `seen`.
    let writing = true;
    const follower = followActivities(reader, () => writing);

    // 200 writes from 16 workers over two stores (two pools): most are one-statement updates of
    // a hot relay (r0) or of the others, fenced or not; every fourth one takes the explicit
    // transaction (two relays at once, locked in id order), so both paths contend for the same
    // row locks and the append lock. A stale rev re-reads and retries; anything else (a deadlock,
    // 40P01, above all) is a failure.
    const committed: number[] = [];
    const unexpected: unknown[] = [];
    let n = 0;
    const write = async (st: PostgresStore, k: number): Promise<Activity[]> => {
      for (;;) {
        const targets =
          k % 4 === 3 ? [ids[k % 6]!, ids[(k + 1) % 6]!].sort() : [k % 3 === 0 ? 'r0' : ids[k % 6]!];
        const rows = await st.getRelays(targets);
        try {
          return await st.commit({
            relays: rows.map((r) => ({
              kind: 'update' as const,
              relay: bump(r, { updatedAt: k }),
              previous: r,
            })),
            activities: targets.map((id) => act(id)),
            ...(k % 2 ? { fence } : {}),
          });
        } catch (err) {
          if (!(err instanceof StaleWriteError)) throw err;
        }
      }
    };
    await Promise.all(
      Array.from({ length: 16 }, async (_, w) => {
        const st = w % 2 ? two : one;
        for (let k = n++; k < 200; k = n++) {
          try {
            for (const a of await write(st, k)) committed.push(a.id);
          } catch (err) {
            unexpected.push(err);
          }
        }
      }),
    );
    writing = false;
    const seen = await follower;
    expect(unexpected).toEqual([]);
    expect(committed).toHaveLength(200 + 50);
    expect(seen.slice(ids.length)).toEqual([...committed].sort((x, y) => x - y));
    // Every relay's rev counts the writes that reached it.
    const revs = Object.fromEntries((await reader.getRelays(ids)).map((r) => [r.id, r.rev]));
    const expected = Object.fromEntries(ids.map((id) => [id, 1]));
    for (let k = 0; k < 200; k++) {
      const targets = k % 4 === 3 ? [ids[k % 6]!, ids[(k + 1) % 6]!] : [k % 3 === 0 ? 'r0' : ids[k % 6]!];
      for (const id of targets) expected[id]! += 1;
    }
    expect(revs).toEqual(expected);
  });
});
