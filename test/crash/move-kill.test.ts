import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { killAll, type Spawned, startServe } from '../support/spawn.js';
import { addTargets, defaultTargetEnv, startZooids, type Zooids } from '../support/targets.js';
import { until } from '../support/until.js';

const N = 50;

/**
 * SIGKILL `bosun serve` in the middle of moving a fleet of 50 relays from one zooid instance to
 * another (three instances, each whitelisting only its own key). After a restart the move finishes:
 * every relay on exactly one target, its fleet's, with one `move_relay` activity each; and no relay
 * was ever missing from both instances meanwhile (create first, delete after).
 */
describe('kill -9 in the middle of a move', () => {
  const dir = tempDir();
  const procs: Spawned[] = [];
  const fleets: Zooids[] = [];
  afterAll(async () => {
    await killAll(procs);
    for (const f of fleets) await f.close();
    dir.cleanup();
  });

  it('converges after restart with every relay on exactly one target', async () => {
    const fleet = await startZooids(3);
    fleets.push(fleet);
    const { zooids } = fleet;
    const [, eu, us] = zooids as [ZooidEmulator, ZooidEmulator, ZooidEmulator];
    const env = {
      BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'bosun.db')}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      ...defaultTargetEnv(fleet),
      BOSUN_RETRY_BASE_MS: '100',
      BOSUN_RETRY_CAP_MS: '300',
      BOSUN_RETRY_MAX_ATTEMPTS: '1000',
      BOSUN_SYNC_CONCURRENCY: '4',
    };
    const first = await startServe(env);
    procs.push(first);
    const call = (url: string, method: string, path: string, body?: unknown) =>
      apiFetch(url, method, path, body);
    await addTargets((method, path, body) => call(first.url, method, path, body), fleet, { shop: 'eu-1' });
    const { pubkey } = keypair();
    const ids = Array.from({ length: N }, (_, i) => `m-${String(i).padStart(2, '0')}`);
    for (const id of ids) {
      expect(
        (await call(first.url, 'POST', '/v1/relays', relayBody(id, pubkey, { fleet: 'shop' }))).status,
      ).toBe(201);
    }
    await until(() => eu.relays().size === N, 20_000, 'all created on eu-1');

    // From here on, no relay may be missing from both instances at any moment.
    const missing = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const onEu = eu.relays();
        const onUs = us.relays();
        for (const id of ids) if (!onEu.has(id) && !onUs.has(id)) missing.add(id);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();

    // Slow answers, so the kill lands while some relays are moved, some half-moved, some not yet.
    eu.setFaults({ latencyMs: 15 });
    us.setFaults({ latencyMs: 15 });
    const put = await call(first.url, 'PUT', '/v1/fleets/shop', { target: 'us-1' });
    expect(((await put.json()) as { moved: unknown }).moved).toEqual({
      relays: N,
      from: ['eu-1'],
      to: 'us-1',
    });
    await until(() => us.relays().size >= N / 3, 20_000, 'a third created on us-1');
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const atKill = { eu: eu.relays().size, us: us.relays().size };
    console.log(`move-kill: killed with ${atKill.us} relays on us-1, ${atKill.eu} still on eu-1`);
    expect(atKill.eu).toBeGreaterThan(0);
    expect(atKill.us).toBeLessThan(N + 1);

    const again = await startServe(env);
    procs.push(again);
    const started = Date.now();
    await until(() => eu.relays().size === 0 && us.relays().size === N, 30_000, 'every relay moved to us-1');
    await until(
      async () => {
        const res = await call(again.url, 'GET', '/v1/relays?fleet=shop&limit=100');
        const { relays } = (await res.json()) as { relays: { sync: { status: string; target: string } }[] };
        return (
          relays.length === N && relays.every((r) => r.sync.status === 'synced' && r.sync.target === 'us-1')
        );
      },
      30_000,
      'every relay synced on us-1',
    );
    console.log(`move-kill: converged ${Date.now() - started} ms after restart`);
    watching = false;
    await watch;
    expect([...missing]).toEqual([]);
    for (const id of ids) {
      expect({ id, eu: eu.relays().has(id), us: us.relays().has(id) }).toEqual({ id, eu: false, us: true });
      expect(zooids[0]!.relays().has(id)).toBe(false);
    }
    // One move each: a relay moved before the kill is not moved again, one cut short is finished.
    const res = await call(again.url, 'GET', '/v1/activities?limit=1000');
    const { activities } = (await res.json()) as { activities: { type: string; relay_id: string }[] };
    const moves = activities.filter((a) => a.type === 'move_relay').map((a) => a.relay_id);
    expect(moves.sort()).toEqual(ids);
    // No request went to an instance that refuses its signer.
    for (const z of zooids)
      expect(z.requests.filter((r) => r.status === 401 || r.status === 403)).toEqual([]);
    again.child.kill('SIGTERM');
    expect((await again.exited).code).toBe(0);
  }, 120_000);
});
