import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { listAllRelays } from '../support/relays.js';
import { startServe } from '../support/spawn.js';

/**
 * SIGKILL bosun during a burst of 1,000 changes over 200 relays while zooid fails 20 % of requests.
 * After a restart every relay converges: zooid holds exactly bosun's record, and no older config
 * ever landed after a newer one.
 */
describe('crash during push sync', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());

  it('converges after SIGKILL with a flaky zooid', async () => {
    const key = generateSecretKey();
    let seed = 42;
    const rng = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const zooid = await startZooidEmulator({
      whitelist: [publicKeyOf(key)],
      rng,
      faults: { errorRate: 0.2 },
    });
    const env = {
      BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'bosun.db')}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_RETRY_BASE_MS: '20',
      BOSUN_RETRY_CAP_MS: '200',
      BOSUN_RETRY_MAX_ATTEMPTS: '1000',
    };
    const { pubkey } = keypair();
    let server = await startServe(env);
    const ids = Array.from({ length: 200 }, (_, i) => `c-${String(i).padStart(3, '0')}`);
    let sent = 0;
    const worker = async (w: number) => {
      for (;;) {
        const n = sent++;
        if (n >= 1000) return;
        if (n === 600) server.child.kill('SIGKILL');
        const id = ids[n % 200]!;
        const req =
          n < 200
            ? apiFetch(server.url, 'POST', '/v1/relays', relayBody(id, pubkey))
            : n % 7 === 0
              ? apiFetch(server.url, 'POST', `/v1/relays/${id}/${n % 2 ? 'deactivate' : 'activate'}`)
              : apiFetch(server.url, 'PATCH', `/v1/relays/${id}`, {
                  info: { name: `n${n}-w${w}` },
                  groups: { enabled: n % 2 === 0 },
                });
        await req.catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: 10 }, (_, w) => worker(w)));
    await server.exited;

    server = await startServe(env);
    const deadline = Date.now() + 60_000;
    let relays: {
      id: string;
      version: number;
      config: Record<string, any>;
      sync: { status: string; synced_version: number };
    }[] = [];
    for (;;) {
      relays = await listAllRelays(server.url);
      if (relays.every((r) => r.sync.status === 'synced' && r.sync.synced_version === r.version)) break;
      if (Date.now() > deadline) throw new Error('relays did not converge within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    const stored = zooid.relays();
    expect(relays.length).toBeGreaterThan(0);
    for (const r of relays) {
      const z = stored.get(r.id);
      expect(z, r.id).toBeDefined();
      expect(z!.inactive).toBe(r.config.inactive);
      expect(z!.info.name).toBe(r.config.info.name);
      expect(z!.groups.enabled).toBe(r.config.groups.enabled);
      expect(z!.host).toBe(r.config.host);
      // Per-relay order held across the crash: at most one request in flight per relay.
    }
    expect(zooid.maxConcurrentPerRelay()).toBe(1);
    server.child.kill('SIGTERM');
    await server.exited;
    await zooid.close();
  }, 120_000);
});
