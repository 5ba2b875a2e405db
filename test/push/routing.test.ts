import { afterEach, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator } from '../../src/push/zooid/emulator.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { addTargets, defaultTargetEnv, startZooids } from '../support/targets.js';
import { until } from '../support/until.js';

const owner = keypair();
const open: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** Three zooid instances, each whitelisting only its own key, and bosun with two targets on top. */
async function fleetOfThree(env: Record<string, string> = {}) {
  const fleet = await startZooids(3);
  open.push(fleet);
  const s = await startServer({
    env: {
      ...defaultTargetEnv(fleet),
      BOSUN_RETRY_BASE_MS: '200',
      BOSUN_RETRY_CAP_MS: '400',
      BOSUN_RETRY_MAX_ATTEMPTS: '100',
      ...env,
    },
  });
  open.push(s);
  await addTargets(s.api, fleet, { eu: 'eu-1', us: 'us-1' });
  return { s, zooids: fleet.zooids, keys: fleet.keys };
}

const create = (s: TestServer, id: string, fleet?: string) =>
  s.api('POST', '/v1/relays', relayBody(id, owner.pubkey, fleet ? { fleet } : {}));

const status = async (s: TestServer, id: string): Promise<string> =>
  (await s.api('GET', `/v1/relays/${id}`)).body.sync.status;

describe('push routing: each relay goes to its fleet target (issue 17)', () => {
  it('relays land only on their fleet target, signed with that target key', async () => {
    const { s, zooids } = await fleetOfThree();
    await create(s, 'd1');
    await create(s, 'e1', 'eu');
    await create(s, 'e2', 'eu');
    await create(s, 'u1', 'us');
    await s.peer.observer!.idle();
    for (const id of ['d1', 'e1', 'e2', 'u1'])
      expect({ id, s: await status(s, id) }).toEqual({ id, s: 'synced' });
    expect([...zooids[0]!.relays().keys()].sort()).toEqual(['d1']);
    expect([...zooids[1]!.relays().keys()].sort()).toEqual(['e1', 'e2']);
    expect([...zooids[2]!.relays().keys()].sort()).toEqual(['u1']);
    // No request ever went to the wrong instance (each would have been refused with 403).
    for (const z of zooids) expect(z.requests.every((r) => r.status < 400)).toBe(true);
  });

  it('a pull-only fleet: nothing is pushed, its relays say `pull` (relay, list, fleet counts)', async () => {
    const { s, zooids } = await fleetOfThree();
    expect((await s.api('PUT', '/v1/fleets/edge', { target: null })).status).toBe(200);
    // The write's answer says what a read would: `pull`, not a `pending` that never ends.
    const created = await create(s, 'p1', 'edge');
    expect(created.status).toBe(201);
    expect(created.body.sync.status).toBe('pull');
    const patched = await s.api('PATCH', '/v1/relays/p1', { info: { name: 'renamed' } });
    expect(patched.status).toBe(200);
    expect(patched.body.sync.status).toBe('pull');
    await create(s, 'e1', 'eu');
    await s.peer.observer!.idle();
    expect(await status(s, 'p1')).toBe('pull');
    expect(await status(s, 'e1')).toBe('synced');
    const listed = (await s.api('GET', '/v1/relays?fleet=edge')).body.relays as {
      sync: { status: string };
    }[];
    expect(listed.map((r) => r.sync.status)).toEqual(['pull']);
    // ?status= filters by what readers see.
    const byStatus = async (st: string) =>
      ((await s.api('GET', `/v1/relays?status=${st}`)).body.relays as { id: string }[]).map((r) => r.id);
    expect(await byStatus('pull')).toEqual(['p1']);
    expect(await byStatus('synced')).toEqual(['e1']);
    expect(await byStatus('pending')).toEqual([]);
    const fleets = (await s.api('GET', '/v1/fleets')).body.fleets as {
      name: string;
      relays: { pull: number };
    }[];
    expect(fleets.find((f) => f.name === 'edge')?.relays.pull).toBe(1);
    expect(await s.peer.store.countRelaysByStatus()).toMatchObject({ pull: 1, synced: 1, pending: 0 });
    for (const z of zooids) expect(z.requests.filter((r) => r.path.includes('p1'))).toEqual([]);
  });

  it('a fleet that changes target gets its relays created on the new one', async () => {
    const { s, zooids } = await fleetOfThree();
    await create(s, 'e1', 'eu');
    await create(s, 'e2', 'eu');
    await s.peer.observer!.idle();
    expect([...zooids[1]!.relays().keys()].sort()).toEqual(['e1', 'e2']);
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).status).toBe(200);
    await until(
      async () => zooids[2]!.relays().has('e1') && zooids[2]!.relays().has('e2'),
      10_000,
      'relays of eu created on us-1',
    );
    await s.peer.observer!.idle();
    expect(await status(s, 'e1')).toBe('synced');
    // Moved: deleted from the old target once the new one has it (test/push/moves.test.ts).
    await until(async () => zooids[1]!.relays().size === 0, 10_000, 'relays of eu deleted from eu-1');
    // Pull-only, then back to a target: pushed again, nothing for the pull-only spell.
    expect((await s.api('PUT', '/v1/fleets/eu', { target: null })).status).toBe(200);
    expect(await status(s, 'e1')).toBe('pull');
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'default' })).status).toBe(200);
    await until(async () => zooids[0]!.relays().has('e1'), 10_000, 'relays of eu created on default');
  });

  it('a fleet on the default target without ZOOID_API_URL fails with a clear error, others sync', async () => {
    const key = generateSecretKey();
    const z = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
    open.push(z);
    const s = await startServer({
      env: { BOSUN_SECRET_KEY: key, BOSUN_RETRY_BASE_MS: '3600000', BOSUN_RETRY_CAP_MS: '3600000' },
    });
    open.push(s);
    expect((await s.api('POST', '/v1/targets', { name: 'eu-1', url: z.url })).status).toBe(201);
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'eu-1' })).status).toBe(200);
    await create(s, 'd1');
    await create(s, 'e1', 'eu');
    await s.peer.observer!.idle();
    const d1 = (await s.api('GET', '/v1/relays/d1')).body.sync;
    expect(d1.status).toBe('retrying');
    expect(d1.error).toMatch(/target default, but ZOOID_API_URL is not set/);
    expect(await status(s, 'e1')).toBe('synced');
    expect([...z.relays().keys()]).toEqual(['e1']);
  });

  it('one target down does not hold the others back, and converges once it is back', async () => {
    const { s, zooids } = await fleetOfThree({
      BOSUN_SYNC_CONCURRENCY: '2',
      BOSUN_SYNC_TARGET_CONCURRENCY: '1',
      BOSUN_SYNC_TIMEOUT_MS: '1000',
    });
    // eu-1 accepts connections and never answers in time: every request to it times out.
    zooids[1]!.setFaults({ latencyMs: 60_000 });
    const ids = (prefix: string) => Array.from({ length: 12 }, (_, i) => `${prefix}${i}`);
    for (const id of ids('e')) await create(s, id, 'eu');
    for (const id of ids('u')) await create(s, id, 'us');
    for (const id of ids('d')) await create(s, id);
    const healthy = [...ids('u'), ...ids('d')];
    const took = await until(
      async () => (await Promise.all(healthy.map((id) => status(s, id)))).every((st) => st === 'synced'),
      // Sharing the two workers with eu-1's relays (12 × a 1 s timeout) would take 6 s or more.
      3000,
      'relays of the healthy targets synced',
    );
    expect(took).toBeLessThan(3000);
    expect(zooids[1]!.relays().size).toBe(0);
    zooids[1]!.setFaults({});
    await until(
      async () => (await Promise.all(ids('e').map((id) => status(s, id)))).every((st) => st === 'synced'),
      20_000,
      'relays of eu-1 synced once it answered again',
    );
    expect([...zooids[1]!.relays().keys()].sort()).toEqual(ids('e').sort());
    expect(zooids[0]!.relays().size).toBe(12);
    expect(zooids[2]!.relays().size).toBe(12);
  }, 40_000);

  it('one target refusing connections: the others sync about as fast as with all up; it converges promptly once back', async () => {
    const { s, zooids, keys } = await fleetOfThree({
      BOSUN_SYNC_CONCURRENCY: '2',
      BOSUN_SYNC_TARGET_CONCURRENCY: '1',
    });
    const ids = (prefix: string) => Array.from({ length: 10 }, (_, i) => `${prefix}${i}`);
    const synced = (list: string[]) => async () =>
      (await Promise.all(list.map((id) => status(s, id)))).every((st) => st === 'synced');
    // Baseline, all up: healthy relays created and synced in this same run.
    let started = Date.now();
    for (const id of [...ids('a'), ...ids('b')]) await create(s, id, id.startsWith('a') ? 'us' : undefined);
    await until(synced([...ids('a'), ...ids('b')]), 10_000, 'all-up relays synced');
    const allUp = Date.now() - started;

    const port = zooids[1]!.port;
    await zooids[1]!.close();
    for (const id of ids('e')) await create(s, id, 'eu');
    // The same work as the baseline, while eu-1's relays fail beside it.
    started = Date.now();
    for (const id of [...ids('u'), ...ids('d')]) await create(s, id, id.startsWith('u') ? 'us' : undefined);
    await until(synced([...ids('u'), ...ids('d')]), 10_000, 'healthy relays synced while eu-1 is down');
    const oneDown = Date.now() - started;
    console.log(
      `isolation (refused): all up ${allUp} ms, eu-1 down ${oneDown} ms (${(oneDown / allUp).toFixed(2)}x)`,
    );
    expect(oneDown).toBeLessThan(Math.max(3 * allUp, allUp + 1500));
    // eu-1's relays are not waiting silently: retrying, with the target's error and a next attempt.
    // The first refusal is recorded asynchronously: wait for it rather than reading once.
    await until(
      async () => (await s.api('GET', '/v1/relays/e0')).body.sync.status === 'retrying',
      10_000,
      'e0 retrying',
    );
    const e0 = (await s.api('GET', '/v1/relays/e0')).body.sync;
    expect(e0.status).toBe('retrying');
    expect(e0.error).not.toBe('');
    expect(e0.next_attempt_at).not.toBeNull();

    const back = await startZooidEmulator({ port, whitelist: [publicKeyOf(keys[1]!)] });
    open.push(back);
    const converged = await until(synced(ids('e')), 10_000, "eu-1's relays synced once it is back");
    console.log(`isolation (refused): eu-1's relays converged ${converged} ms after it came back`);
    // Target backoff follows the retry curve (cap 400 ms here): no long wait after it is back.
    expect(converged).toBeLessThan(3000);
    expect([...back.relays().keys()].sort()).toEqual(ids('e').sort());
  }, 40_000);
});
