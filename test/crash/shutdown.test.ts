import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator } from '../../src/push/zooid/emulator.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { startServe } from '../support/spawn.js';

/**
 * SIGTERM during a burst: bosun stops accepting, lets in-flight syncs finish (or aborts them when
 * they outlive the grace period, recording a retry), exits 0 in time, and loses no sync: after a
 * restart every relay converges.
 */
describe('graceful shutdown', () => {
  const dirs: ReturnType<typeof tempDir>[] = [];
  afterAll(() => {
    for (const d of dirs) d.cleanup();
  });

  for (const [name, latencyMs, graceMs] of [
    ['in-flight syncs finish within the grace period', 300, 5000],
    ['in-flight syncs outliving the grace period are aborted and re-queued', 5000, 500],
  ] as const) {
    it(name, async () => {
      const dir = tempDir();
      dirs.push(dir);
      const key = generateSecretKey();
      const zooid = await startZooidEmulator({ whitelist: [publicKeyOf(key)], faults: { latencyMs } });
      const env = {
        BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'bosun.db')}`,
        BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
        ZOOID_API_URL: zooid.url,
        BOSUN_SECRET_KEY: key,
        BOSUN_SHUTDOWN_GRACE: `${graceMs}ms`,
        BOSUN_RETRY_BASE_MS: '50',
      };
      const { pubkey } = keypair();
      const server = await startServe(env);
      const post = (id: string) => apiFetch(server.url, 'POST', '/v1/relays', relayBody(id, pubkey));
      const ids = Array.from({ length: 30 }, (_, i) => `g-${i}`);
      for (const id of ids) expect((await post(id)).status).toBe(201);
      // Syncs are in flight (zooid answers slowly) when the signal arrives.
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      server.child.kill('SIGTERM');
      const exit = await server.exited;
      const took = Date.now() - t0;
      expect(exit.code).toBe(0);
      expect(took).toBeLessThan(graceMs + 3000);
      expect(server.output()).toContain('"msg":"bosun stopped"');

      // Nothing is lost: each relay is synced or durably waiting for a sync.
      const store = new SqliteStore(join(dir.path, 'bosun.db'));
      for (const id of ids) {
        const r = (await store.getRelay(id))!;
        const done = r.sync.status === 'synced' && r.sync.syncedVersion === r.version;
        expect(
          done || r.sync.status === 'pending' || r.sync.status === 'retrying',
          `${id} ${r.sync.status}`,
        ).toBe(true);
      }
      await store.close();

      zooid.setFaults({});
      const again = await startServe(env);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const page = (await (await apiFetch(again.url, 'GET', '/v1/relays?limit=100')).json()) as {
          relays: { sync: { status: string } }[];
        };
        if (page.relays.every((r) => r.sync.status === 'synced')) break;
        if (Date.now() > deadline) throw new Error('did not converge after restart');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect([...zooid.relays().keys()].sort()).toEqual([...ids].sort());
      again.child.kill('SIGTERM');
      expect((await again.exited).code).toBe(0);
      await zooid.close();
    }, 60_000);
  }
});
