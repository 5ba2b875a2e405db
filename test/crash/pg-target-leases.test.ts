import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { killAll, type Spawned, startServe } from '../support/spawn.js';

/**
 * Push work leased per target (issue 17, point 5), with real `bosun serve` processes on one
 * PostgreSQL schema and four zooid emulators (targets default, t1, t2, t3): two replicas hold two
 * targets each; one is SIGKILLed and the other holds all four within the lease TTL; every change
 * made after the kill reaches its target once and in order; a third replica joining takes its share.
 */
describe.skipIf(!postgresUrl)('several replicas on PostgreSQL: push leased per target', () => {
  const dir = tempDir();
  const schema = postgresUrl ? freshSchema('bosun_tlease') : null;
  const replicas: (Spawned & { url: string })[] = [];
  const zooids: ZooidEmulator[] = [];
  afterAll(async () => {
    await killAll(replicas);
    for (const z of zooids) await z.close();
    await schema?.drop();
    dir.cleanup();
  });

  it('2 replicas × 4 targets: 2 each; SIGKILL one: the other holds 4 within the TTL; changes after it land once, in order; a third joins: rebalanced', async () => {
    const TTL = 1500;
    const key = generateSecretKey();
    for (let i = 0; i < 4; i++) zooids.push(await startZooidEmulator({ whitelist: [publicKeyOf(key)] }));
    const TARGETS = ['default', 't1', 't2', 't3'];
    const env = {
      BOSUN_DATABASE_URL: schema!.url,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      ZOOID_API_URL: zooids[0]!.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_LEASE_TTL_MS: String(TTL),
      BOSUN_PG_POOL_SIZE: '3',
      BOSUN_RETRY_BASE_MS: '20',
      BOSUN_RETRY_CAP_MS: '200',
    };
    const start = async (id: string) => {
      const r = await startServe({ ...env, BOSUN_REPLICA_ID: id }, dir.path);
      replicas.push(r);
      return r;
    };
    const api = async (r: { url: string }, method: string, path: string, body?: unknown) => {
      const res = await apiFetch(r.url, method, path, body);
      return { status: res.status, body: (await res.json()) as any };
    };
    const held = async (r: { url: string }): Promise<string[]> => {
      const shown: string = (await api(r, 'GET', '/readyz')).body.checks.push_targets;
      return shown === 'none' ? [] : shown.split(',');
    };
    const until = async (what: string, cond: () => Promise<boolean>, timeoutMs = 10_000) => {
      const begin = Date.now();
      while (!(await cond())) {
        if (Date.now() - begin > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return Date.now() - begin;
    };

    // r1 alone migrates and sets up three more targets, one fleet on each.
    const r1 = await start('r1');
    for (let i = 1; i < 4; i++) {
      expect((await api(r1, 'POST', '/v1/targets', { name: `t${i}`, url: zooids[i]!.url })).status).toBe(201);
      expect((await api(r1, 'PUT', `/v1/fleets/f${i}`, { target: `t${i}` })).status).toBe(200);
    }
    const r2 = await start('r2');
    await until('2 targets each', async () => (await held(r1)).length === 2 && (await held(r2)).length === 2);
    expect([...(await held(r1)), ...(await held(r2))].sort()).toEqual(TARGETS);
    const metrics = await (await apiFetch(r1.url, 'GET', '/metrics')).text();
    for (const t of await held(r1)) expect(metrics).toContain(`bosun_target_lease_held{target="${t}"} 1`);

    // Two relays per target (fleet f0 has no row: default).
    const { pubkey } = keypair();
    const relays = TARGETS.flatMap((_, i) => [`a${i}`, `b${i}`].map((id) => ({ id, zooid: zooids[i]! })));
    for (const [j, { id }] of relays.entries()) {
      const fleet = id.endsWith('0') ? {} : { fleet: `f${id.slice(1)}` };
      const via = j % 2 ? r2 : r1;
      expect(
        (
          await api(
            via,
            'POST',
            '/v1/relays',
            relayBody(id, pubkey, { ...fleet, info: { pubkey, name: 'n0' } }),
          )
        ).status,
      ).toBe(201);
    }
    const converged = (via: { url: string }, name: string) => async () => {
      for (const { id } of relays) {
        const r = (await api(via, 'GET', `/v1/relays/${id}`)).body;
        if (r.sync.status !== 'synced' || r.sync.synced_version !== r.version || r.config.info.name !== name)
          return false;
      }
      return true;
    };
    await until('created everywhere', converged(r2, 'n0'));

    // SIGKILL r1: r2 holds all four within the TTL.
    r1.child.kill('SIGKILL');
    const takeoverMs = await until('r2 holds 4', async () => (await held(r2)).length === 4, TTL);
    expect(await held(r2)).toEqual(TARGETS);

    // Changes after the kill: rounds of one PATCH per relay, each round converged before the next,
    // so every change must reach zooid as its own accepted config.
    const round = async (via: { url: string }, name: string) => {
      for (const { id } of relays)
        expect((await api(via, 'PATCH', `/v1/relays/${id}`, { info: { name } })).status).toBe(200);
      await until(`round ${name}`, converged(via, name));
    };
    for (const k of [1, 2, 3]) await round(r2, `n${k}`);

    // A third replica joins: the four targets are spread 2 and 2 again, handed over gracefully.
    const r3 = await start('r3');
    await until('rebalanced', async () => (await held(r2)).length === 2 && (await held(r3)).length === 2);
    expect([...(await held(r2)), ...(await held(r3))].sort()).toEqual(TARGETS);
    for (const k of [4, 5]) await round(k % 2 ? r3 : r2, `n${k}`);

    for (const { id, zooid } of relays) {
      const names = zooid.accepted(id).map((c) => c.config?.info.name);
      const after = names.slice(names.lastIndexOf('n0') + 1);
      expect(after, `${id}: ${names.join(',')}`).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
      // Nothing landed on another target.
      for (const other of zooids) if (other !== zooid) expect(other.accepted(id)).toEqual([]);
    }
    for (const z of zooids) expect(z.maxConcurrentPerRelay()).toBeLessThanOrEqual(1);
    console.log(
      `per-target leases: takeover of 2 targets in ≤ ${takeoverMs} ms after SIGKILL (TTL ${TTL} ms)`,
    );
  }, 90_000);
});
