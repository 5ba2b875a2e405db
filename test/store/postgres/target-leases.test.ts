import { describe, expect, it } from 'vitest';
import { FencedStore } from '../../../src/store/fenced-store.js';
import { parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { TargetLeases } from '../../../src/store/postgres/target-leases.js';
import { FencedError } from '../../../src/store/write-errors.js';
import { useCleanups } from '../../support/cleanups.js';
import { freshSchema, postgresUrl, withPg } from '../../support/postgres.js';
import { until } from '../../support/until.js';

const quiet = { info() {}, warn() {}, debug() {} };
const { defer } = useCleanups();

const TTL = 1500;

/** A replica: its own store (own pool) and balancer over a shared, changeable target list. */
async function replica(url: string, id: string, targets: () => string[], events: string[] = []) {
  const store = await PostgresStore.open(parsePostgresUrl(url, { poolSize: 2 }));
  const leases = new TargetLeases({
    store,
    ttlMs: TTL,
    logger: quiet,
    replicaId: id,
    targets: async () => targets(),
    onChange: (t, held, fence) => events.push(`${id} ${held ? 'took' : 'left'} ${t}@${fence?.epoch}`),
  });
  defer(async () => {
    await leases.stop();
    await store.close();
  });
  return { store, leases };
}

/** Ends every session of a replica from the server side, as its death (or a network cut) would. */
const cutReplica = (id: string) =>
  withPg((c) =>
    c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ANY($1)', [
      [`bosun-push:${id}`, `bosun-replica:${id}`],
    ]),
  );

const FOUR = ['a', 'b', 'c', 'default'];

describe.skipIf(!postgresUrl)('push leases per target (PostgreSQL)', () => {
  it('2 replicas and 4 targets: each holds 2, disjoint; one dies and the other holds all 4 within the TTL', async () => {
    const s = freshSchema();
    defer(s.drop);
    const events: string[] = [];
    const r1 = await replica(s.url, 'r1', () => FOUR, events);
    const r2 = await replica(s.url, 'r2', () => FOUR, events);
    await r1.leases.start();
    await r2.leases.start();
    await until(() => r1.leases.held().length === 2 && r2.leases.held().length === 2, 5000);
    expect([...r1.leases.held(), ...r2.leases.held()].sort()).toEqual(FOUR);
    // Settled: a few more passes change nothing.
    const before = [r1.leases.held(), r2.leases.held()];
    await new Promise((r) => setTimeout(r, 500));
    expect([r1.leases.held(), r2.leases.held()]).toEqual(before);

    // r1's fence for one of its targets, to check it is refused after the takeover.
    const mine = r1.leases.held()[0]!;
    const oldFence = r1.leases.lease(mine)!.fence!;
    expect(oldFence.lease).toBe(`push:${mine}`);

    // r1 dies: its sessions end and it does nothing more.
    const killedAt = performance.now();
    await cutReplica('r1');
    const stopping = r1.leases.stop();
    await until(() => r2.leases.held().length === 4, TTL);
    const takeoverMs = performance.now() - killedAt;
    await stopping;
    expect(takeoverMs).toBeLessThan(TTL);
    expect(r2.leases.held()).toEqual(FOUR);

    // The taken-over target's new epoch fences r1's writes.
    const stale = new FencedStore(r1.store, () => oldFence);
    await expect(stale.setCursor(`observer:${mine}`, 5)).rejects.toBeInstanceOf(FencedError);
    const fresh = new FencedStore(r2.store, () => r2.leases.lease(mine)!.fence);
    await fresh.setCursor(`observer:${mine}`, 5);
    expect(r2.leases.lease(mine)!.fence!.epoch).toBeGreaterThan(oldFence.epoch);
  }, 20_000);

  it('a third replica joining takes a fair share; a new target is taken; a gone one is let go', async () => {
    const s = freshSchema();
    defer(s.drop);
    let targets = [...FOUR];
    const r1 = await replica(s.url, 'r1', () => targets);
    const r2 = await replica(s.url, 'r2', () => targets);
    await r1.leases.start();
    await r2.leases.start();
    const all = [r1, r2];
    const counts = () => all.map((r) => r.leases.held().length).sort();
    const union = () => all.flatMap((r) => r.leases.held()).sort();
    await until(() => counts().join() === '2,2', 5000);

    const r3 = await replica(s.url, 'r3', () => targets);
    all.push(r3);
    await r3.leases.start();
    // 4 over 3: quotas 2, 1, 1; extras are released and taken, never held twice.
    await until(() => counts().join() === '1,1,2' && union().join() === FOUR.join(), 5000);
    for (const r of all) expect(r.leases.held().length).toBeLessThanOrEqual(r.leases.quota!);

    targets = [...FOUR, 'e', 'f'];
    await until(() => counts().join() === '2,2,2' && union().length === 6, 5000);
    expect(union()).toEqual([...targets].sort());

    targets = ['a', 'b', 'c'];
    await until(() => counts().join() === '1,1,1' && union().join() === targets.join(), 5000);
  }, 20_000);

  it('two targets never share an advisory lock: lease_keys numbers each name once', async () => {
    const s = freshSchema();
    defer(s.drop);
    const many = Array.from({ length: 12 }, (_, i) => `t${i}`);
    const r1 = await replica(s.url, 'r1', () => many);
    await r1.leases.start();
    await until(() => r1.leases.held().length === 12, 5000);
    const keys = await withPg((c) =>
      c.query<{ name: string; key: number }>(`SELECT name, key FROM "${s.schema}".lease_keys ORDER BY key`),
    );
    expect(new Set(keys.rows.map((r) => r.key)).size).toBe(12);
    const locks = await withPg((c) =>
      c.query(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND a.application_name = 'bosun-push:r1'`,
      ),
    );
    expect(locks.rows[0].n).toBe(12);
  }, 20_000);
});
