import { describe, expect, it } from 'vitest';
import { FencedStore } from '../../../src/store/fenced-store.js';
import { PgAdvisoryLease } from '../../../src/store/postgres/lease.js';
import { parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { FencedError } from '../../../src/store/write-errors.js';
import { useCleanups } from '../../support/cleanups.js';
import { freshSchema, postgresUrl, withPg } from '../../support/postgres.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { until } from '../../support/until.js';

const quiet = { info() {}, warn() {}, debug() {} };
const { defer } = useCleanups();

/** A replica: its own store (own pool), lease and a log of when its workers ran. */
async function replica(url: string, id: string, ttlMs: number, events: string[]) {
  const store = await PostgresStore.open(parsePostgresUrl(url, { poolSize: 2 }));
  const lease = new PgAdvisoryLease({ store, ttlMs, logger: quiet, replicaId: id });
  const times = { acquired: 0, lost: 0 };
  lease.onAcquired((fence) => {
    times.acquired = performance.now();
    events.push(`${id} start ${fence.epoch}`);
  });
  lease.onLost(() => {
    times.lost = performance.now();
    events.push(`${id} stop`);
  });
  defer(async () => {
    await lease.stop();
    await store.close();
  });
  return { store, lease, times };
}

describe.skipIf(!postgresUrl)('PostgreSQL worker lease', () => {
  it('one holder at a time; a graceful stop hands over at once with a new epoch that fences the old', async () => {
    const s = freshSchema();
    defer(s.drop);
    const events: string[] = [];
    const a = await replica(s.url, 'a', 2000, events);
    const b = await replica(s.url, 'b', 2000, events);
    await a.lease.start();
    await b.lease.start();
    expect([a.lease.held, b.lease.held]).toEqual([true, false]);
    expect(a.lease.fence).toEqual({ lease: 'worker', epoch: 1 });
    const aWorker = new FencedStore(a.store, () => a.lease.fence);
    await aWorker.setCursor('observer', 3);

    await a.lease.stop();
    const waited = await until(() => b.lease.held, 2000);
    expect(waited).toBeLessThan(b.lease.timings.pollMs + 500);
    expect(b.lease.fence).toEqual({ lease: 'worker', epoch: 2 });
    await expect(aWorker.setCursor('observer', 4)).rejects.toBeInstanceOf(FencedError);
    await new FencedStore(b.store, () => b.lease.fence).setCursor('observer', 5);
    expect(await b.store.getCursor('observer')).toBe(5);
    expect(events).toEqual(['a start 1', 'a stop', 'b start 2']);
  });

  it('a holder whose connection is killed stops at once and a standby takes over', async () => {
    const s = freshSchema();
    defer(s.drop);
    const events: string[] = [];
    const a = await replica(s.url, 'a', 2000, events);
    await a.lease.start();
    const b = await replica(s.url, 'b', 2000, events);
    await b.lease.start();
    await withPg((c) =>
      c.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bosun-lease:a'",
      ),
    );
    await until(() => b.lease.held, 2000);
    expect(a.lease.held).toBe(false);
    expect(a.times.lost).toBeGreaterThan(0);
    expect(a.times.lost).toBeLessThan(b.times.acquired);
    expect(events).toEqual(['a start 1', 'a stop', 'b start 2']);
  });

  it('a holder cut off from the database stops before the server frees the lock; takeover within the TTL', async () => {
    const s = freshSchema();
    defer(s.drop);
    const target = new URL(postgresUrl!);
    const proxy: TcpProxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    defer(() => proxy.close());
    const viaProxy = new URL(s.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const ttl = 2000;
    const events: string[] = [];
    const a = await replica(viaProxy.toString(), 'a', ttl, events);
    await a.lease.start();
    const b = await replica(s.url, 'b', ttl, events);
    await b.lease.start();
    // Let a heartbeat or two pass, then partition the holder without closing its sockets.
    await new Promise((r) => setTimeout(r, 700));
    expect(a.lease.held).toBe(true);
    const cut = performance.now();
    proxy.cut();
    await until(() => b.lease.held, ttl + 1500);
    const takeover = b.times.acquired - cut;
    expect(a.times.lost).toBeGreaterThan(cut);
    // The old holder stopped its workers well before the new one started its own.
    expect(b.times.acquired - a.times.lost).toBeGreaterThan(
      a.lease.timings.idleSessionTimeoutMs - a.lease.timings.giveUpMs - 300,
    );
    expect(takeover).toBeLessThanOrEqual(ttl + 200);
    expect(events).toEqual(['a start 1', 'a stop', 'b start 2']);
  }, 15_000);

  it('a lease released for rebalancing keeps its lock until its workers drained, however long that takes', async () => {
    const s = freshSchema();
    defer(s.drop);
    const ttl = 1000;
    const stores = await Promise.all(
      [0, 1].map(() => PostgresStore.open(parsePostgresUrl(s.url, { poolSize: 1 }))),
    );
    const [a, b] = stores.map(
      (store, i) =>
        new PgAdvisoryLease({
          store: store!,
          ttlMs: ttl,
          logger: quiet,
          replicaId: `m${i}`,
          name: 'push:x',
          key: '42',
          manual: true,
        }),
    ) as [PgAdvisoryLease, PgAdvisoryLease];
    defer(async () => {
      await a.stop();
      await b.stop();
      for (const st of stores) await st.close();
    });
    let drained = 0;
    // The workers take twice the TTL to finish their in-flight syncs.
    a.onLost(async () => {
      await new Promise((r) => setTimeout(r, 2 * ttl));
      drained = performance.now();
    });
    expect(await a.tryAcquire()).toBe(true);
    const releasing = a.release();
    expect(a.held).toBe(false);
    let taken = 0;
    while (!taken) {
      if (await b.tryAcquire()) taken = performance.now();
      else await new Promise((r) => setTimeout(r, 50));
    }
    await releasing;
    expect(drained).toBeGreaterThan(0);
    expect(taken).toBeGreaterThanOrEqual(drained);
    expect(b.fence).toEqual({ lease: 'push:x', epoch: 2 });
  }, 15_000);
});
