import { afterEach, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { freshSchema, postgresUrl, withPg } from '../support/postgres.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Ends a replica's lease sessions (worker, push, presence) from the server side, as a network
 * fault would. Its presence comes back on a new session (a higher pid), which ranks it after the
 * other replica, so the other one's quota takes the one target.
 */
const cutLease = (replica: string) =>
  withPg((c) =>
    c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ANY($1)', [
      [`bosun-lease:${replica}`, `bosun-push:${replica}`, `bosun-replica:${replica}`],
    ]),
  );

describe.skipIf(!postgresUrl)('replicas in one process tree: the lease moves the workers', () => {
  it('a replica that loses the lease stops syncing, another takes over, and it can take over again later', async () => {
    const s = freshSchema();
    cleanups.push(s.drop);
    const key = generateSecretKey();
    const zooid: ZooidEmulator = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
    cleanups.push(() => zooid.close());
    const env = (id: string) => ({
      BOSUN_DATABASE_URL: s.url,
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_LEASE_TTL_MS: '2000',
      BOSUN_PG_POOL_SIZE: '3',
      BOSUN_REPLICA_ID: id,
    });
    const p1: TestServer = await startServer({ env: env('p1') });
    cleanups.push(() => p1.close());
    const p2: TestServer = await startServer({ env: env('p2') });
    cleanups.push(() => p2.close());
    const lease = async (t: TestServer) => (await t.api('GET', '/readyz', undefined, '')).body.checks.lease;
    const pushes = async (t: TestServer) =>
      (await t.api('GET', '/readyz', undefined, '')).body.checks.push_targets;
    expect([await lease(p1), await lease(p2)]).toEqual(['holder', 'standby']);
    // One target (default) and two replicas: the first one pushes it.
    expect([await pushes(p1), await pushes(p2)]).toEqual(['default', 'none']);

    const { pubkey } = keypair();
    const synced = (name: string) => () => zooid.relays().get('m1')?.info.name === name;
    // A change made through the standby reaches the holder's observer (LISTEN/NOTIFY) and zooid.
    expect(
      (await p2.api('POST', '/v1/relays', relayBody('m1', pubkey, { info: { pubkey, name: 'one' } }))).status,
    ).toBe(201);
    await until(synced('one'));

    // p1's lease session dies: p1 stops its workers, p2 takes over with epoch 2.
    await cutLease('p1');
    await until(async () => (await lease(p2)) === 'holder' && (await pushes(p2)) === 'default');
    expect(await lease(p1)).toBe('standby');
    expect(await pushes(p1)).toBe('none');
    expect(p2.peer.lease.fence).toEqual({ lease: 'worker', epoch: 2 });
    expect(p1.peer.targetObservers!.get('default')!.running).toBe(false);
    await p1.api('PATCH', '/v1/relays/m1', { info: { name: 'two' } });
    await until(synced('two'));

    // And back: p1's observer starts again from the persisted cursor, as holder of epoch 3.
    await cutLease('p2');
    await until(async () => (await lease(p1)) === 'holder' && (await pushes(p1)) === 'default');
    expect(p1.peer.lease.fence).toEqual({ lease: 'worker', epoch: 3 });
    await p2.api('PATCH', '/v1/relays/m1', { info: { name: 'three' } });
    await until(synced('three'));
    await until(async () => (await p1.api('GET', '/v1/relays/m1')).body.sync.status === 'synced');

    expect(zooid.accepted('m1').map((c) => c.config?.info.name)).toEqual(['one', 'two', 'three']);
    expect(zooid.maxConcurrentPerRelay()).toBe(1);
    const metrics = await fetch(`${p1.url}/metrics`).then((r) => r.text());
    expect(metrics).toContain('bosun_worker_lease_held{replica="p1"} 1');
    expect(metrics).toContain('bosun_worker_lease_epoch 3');
    expect(metrics).toContain('bosun_target_lease_held{target="default"} 1');
    // The target's observer is shown by its holder alone: p2's series went with its lease.
    expect(metrics).toMatch(/^bosun_observer_cursor\{target="default"\} [1-9]/m);
    expect(metrics).toContain('bosun_sync_queue_depth{target="default"} 0');
    const standby = await fetch(`${p2.url}/metrics`).then((r) => r.text());
    expect(standby).not.toMatch(/^bosun_(observer_cursor|sync_queue_depth)\{/m);
    const lines = p1.logs.filter((l) => l.includes('worker lease'));
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual([
      'worker lease acquired',
      'worker lease lost',
      'worker lease acquired',
    ]);
  }, 30_000);
});
