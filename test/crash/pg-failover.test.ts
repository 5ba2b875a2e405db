import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { listAllRelays } from '../support/relays.js';
import { killAll, type Spawned, startServe } from '../support/spawn.js';

/**
 * Three `bosun serve` replicas on one PostgreSQL schema; the zooid emulator in this process. A
 * burst of 2,000 changes over 200 relays goes to all three; the lease holder is SIGKILLed halfway.
 * Another replica takes over within the lease TTL and every relay converges; zooid never saw two
 * requests for one relay at once, nor an older config after a newer one.
 */
describe.skipIf(!postgresUrl)('several replicas on PostgreSQL: worker failover', () => {
  const dir = tempDir();
  const schema = postgresUrl ? freshSchema('bosun_failover') : null;
  const replicas: (Spawned & { url: string })[] = [];
  afterAll(async () => {
    await killAll(replicas);
    await schema?.drop();
    dir.cleanup();
  });

  it('SIGKILL of the lease holder during a burst: takeover within the TTL, convergence, no overlap', async () => {
    const TTL = 5000;
    const key = generateSecretKey();
    const zooid = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
    const env = {
      BOSUN_DATABASE_URL: schema!.url,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_LEASE_TTL_MS: String(TTL),
      BOSUN_PG_POOL_SIZE: '5',
      BOSUN_RETRY_BASE_MS: '20',
      BOSUN_RETRY_CAP_MS: '200',
      BOSUN_LOG_LEVEL: 'info',
    };
    // The first starts alone (migrations), then two more join.
    replicas.push(await startServe({ ...env, BOSUN_REPLICA_ID: 'r0' }, dir.path));
    replicas.push(
      ...(await Promise.all([
        startServe({ ...env, BOSUN_REPLICA_ID: 'r1' }, dir.path),
        startServe({ ...env, BOSUN_REPLICA_ID: 'r2' }, dir.path),
      ])),
    );
    const alive = () => replicas.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
    const leaseOf = async (r: { url: string }) =>
      ((await (await apiFetch(r.url, 'GET', '/readyz')).json()) as { checks: { lease: string } }).checks
        .lease;
    const holders = async () => {
      const roles = await Promise.all(alive().map(async (r) => ({ r, lease: await leaseOf(r) })));
      return roles.filter((x) => x.lease === 'holder').map((x) => x.r);
    };
    const initial = await holders();
    expect(initial).toHaveLength(1);
    const holder = initial[0]!;
    expect(await (await apiFetch(holder.url, 'GET', '/metrics')).text()).toMatch(
      /bosun_worker_lease_held\{replica="r\d"\} 1/,
    );

    // 2,000 changes over 200 relays: each relay's changes are issued one after another (so its
    // counter n grows in commit order), spread over all replicas; a request that fails because
    // its replica died is sent again to a live one.
    const { pubkey } = keypair();
    const ids = Array.from({ length: 200 }, (_, i) => `f-${String(i).padStart(3, '0')}`);
    const TOTAL = 2000;
    let sent = 0;
    let killedAt = 0;
    const send = async (n: number, method: string, path: string, body: unknown) => {
      let cut = false;
      for (let attempt = 0; ; attempt++) {
        const live = alive();
        const target = live[(n + attempt) % live.length]!;
        try {
          const res = await apiFetch(target.url, method, path, body);
          // A create cut off by the kill may have committed before its answer was lost: sent
          // again, it finds its own relay (409 id_conflict), which is the create having landed.
          if (cut && method === 'POST' && res.status === 409) {
            const { error } = (await res.json()) as { error: { code: string } };
            if (error.code === 'id_conflict') return 201;
            throw new Error(`create ${n} answered 409 ${error.code}`);
          }
          if (res.status < 500) return res.status;
        } catch (err) {
          if ((err as Error).message.startsWith('create ')) throw err;
          // the replica died under this request: try another
          cut = true;
        }
        if (attempt > 20) throw new Error(`change ${n} could not be sent`);
      }
    };
    const worker = async (w: number) => {
      for (let i = w; i < ids.length; i += 10) {
        const id = ids[i]!;
        for (let k = 0; k < TOTAL / ids.length; k++) {
          const n = sent++;
          if (n === TOTAL / 2) {
            killedAt = Date.now();
            holder.child.kill('SIGKILL');
          }
          const status =
            k === 0
              ? await send(n, 'POST', '/v1/relays', relayBody(id, pubkey, { info: { pubkey, name: 'n0' } }))
              : await send(n, 'PATCH', `/v1/relays/${id}`, {
                  info: { name: `n${k}` },
                  groups: { enabled: k % 2 === 0 },
                });
          expect([200, 201]).toContain(status);
        }
      }
    };
    const burstStart = Date.now();
    await Promise.all(Array.from({ length: 10 }, (_, w) => worker(w)));
    const burstMs = Date.now() - burstStart;
    expect(killedAt).toBeGreaterThan(0);
    await holder.exited;

    // Takeover: exactly one survivor took the lease, well within the TTL of the kill (its log
    // line's time; same machine, same clock).
    const acquired = alive()
      .flatMap((r) => r.output().split('\n'))
      .filter((l) => l.includes('worker lease acquired'))
      .map((l) => JSON.parse(l) as { time: string; epoch: number });
    expect(acquired).toHaveLength(1);
    expect(acquired[0]!.epoch).toBe(2);
    const takeoverMs = Date.parse(acquired[0]!.time) - killedAt;
    expect(takeoverMs).toBeGreaterThan(0);
    expect(takeoverMs).toBeLessThanOrEqual(TTL);
    expect(await holders()).toHaveLength(1);

    // Every relay converges to bosun's record, through the new holder.
    const reader = alive()[0]!;
    const deadline = Date.now() + 60_000;
    let relays: {
      id: string;
      version: number;
      config: any;
      sync: { status: string; synced_version: number };
    }[] = [];
    for (;;) {
      relays = await listAllRelays(reader.url);
      if (
        relays.length === 200 &&
        relays.every((r) => r.sync.status === 'synced' && r.sync.synced_version === r.version)
      )
        break;
      if (Date.now() > deadline) {
        const behind = relays.filter(
          (r) => r.sync.status !== 'synced' || r.sync.synced_version !== r.version,
        );
        const problems = alive()
          .flatMap((r) => r.output().split('\n'))
          .filter((l) => /"level":[45]0/.test(l))
          .slice(-10);
        throw new Error(
          `relays did not converge within 60 s: ${relays.length} relays, ${behind.length} behind, e.g. ${JSON.stringify(behind[0]?.sync)}; ${problems.join('\n')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const convergedMs = Date.now() - burstStart;
    const stored = zooid.relays();
    for (const r of relays) {
      const z = stored.get(r.id);
      expect(z, r.id).toBeDefined();
      expect(z!.info.name).toBe(r.config.info.name);
      expect(r.config.info.name).toBe(`n${TOTAL / ids.length - 1}`);
      expect(z!.groups.enabled).toBe(r.config.groups.enabled);
      // zooid accepted this relay's configs in the order bosun committed them.
      const seen = zooid
        .accepted(r.id)
        .map((c) => Number((c.config?.info.name ?? 'n-1').slice(1)))
        .filter((x) => !Number.isNaN(x));
      for (let i = 1; i < seen.length; i++)
        expect(seen[i]!, `${r.id}: ${seen.join(',')}`).toBeGreaterThanOrEqual(seen[i - 1]!);
    }
    expect(zooid.maxConcurrentPerRelay()).toBe(1);
    console.log(
      `failover: holder SIGKILLed after ${TOTAL / 2} of ${TOTAL} changes; takeover in ${Math.round(takeoverMs)} ms (TTL ${TTL} ms); burst ${burstMs} ms, converged ${convergedMs} ms after it began; ${zooid.requests.length} zooid requests`,
    );
    for (const r of alive()) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
    await zooid.close();
  }, 120_000);
});
