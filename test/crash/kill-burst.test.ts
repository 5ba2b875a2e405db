import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { startServe } from '../support/spawn.js';

/**
 * SIGKILL `bosun serve` in the middle of a burst of 1,000 updates. After restart the activity log
 * must match the relays exactly: every committed change has one activity, ids have no gaps, and
 * every update the client saw acknowledged is there.
 */
describe('crash during a write burst', () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());

  it('loses nothing that was acknowledged and half-writes nothing', async () => {
    const env = {
      BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'bosun.db')}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
    };
    const server = await startServe(env);
    const { pubkey } = keypair();
    const call = (method: string, path: string, body: unknown) => apiFetch(server.url, method, path, body);
    const ids = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    for (const id of ids) expect((await call('POST', '/v1/relays', relayBody(id, pubkey))).status).toBe(201);

    // Highest version acknowledged per relay.
    const acked = new Map<string, number>();
    let sent = 0;
    let killed = false;
    const worker = async () => {
      while (sent < 1000) {
        const n = sent++;
        const id = ids[n % ids.length]!;
        if (n === 500 && !killed) {
          killed = true;
          server.child.kill('SIGKILL');
        }
        try {
          const res = await call('PATCH', `/v1/relays/${id}`, { info: { name: `n${n}` } });
          if (res.ok) {
            const { version } = (await res.json()) as { version: number };
            acked.set(id, Math.max(acked.get(id) ?? 0, version));
          }
        } catch {
          // the server is gone: the rest of the burst fails, as it would for a real client
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const exit = await server.exited;
    expect(exit.signal).toBe('SIGKILL');
    expect(acked.size).toBeGreaterThan(0);

    const db = new Database(join(dir.path, 'bosun.db'));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();

    // Restart: the store opens cleanly, and the log matches the relays exactly.
    const store = new SqliteStore(join(dir.path, 'bosun.db'));
    const activities = await store.activitiesAfter({ after: 0, limit: 100_000 });
    expect(activities.map((a) => a.id)).toEqual(activities.map((_, i) => i + 1));
    let total = 0;
    for (const id of ids) {
      const relay = (await store.getRelay(id))!;
      const own = activities.filter((a) => a.relayId === id);
      expect(own.length, id).toBe(relay.version);
      expect(own.map((a) => a.payload.version)).toEqual(own.map((_, i) => i + 1));
      expect(relay.version).toBeGreaterThanOrEqual(acked.get(id) ?? 1);
      total += relay.version;
    }
    expect(total).toBe(activities.length);
    await store.close();

    const again = await startServe(env);
    const res = await apiFetch(again.url, 'GET', '/v1/relays/burst-0');
    expect(res.status).toBe(200);
    again.child.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  });
});
