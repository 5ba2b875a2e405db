import { afterEach, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';

const owner = keypair();
const open: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** Polls `check` until it holds, or fails after `ms` (real time: emulators answer over loopback). */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

/** Three zooid instances, each whitelisting only its own key, and bosun with two targets on top. */
async function fleetOfThree(env: Record<string, string> = {}) {
  const keys = [generateSecretKey(), generateSecretKey(), generateSecretKey()];
  const zooids: ZooidEmulator[] = [];
  for (const key of keys) {
    const z = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
    open.push(z);
    zooids.push(z);
  }
  const s = await startServer({
    env: {
      ZOOID_API_URL: zooids[0]!.url,
      BOSUN_SECRET_KEY: keys[0]!,
      BOSUN_RETRY_BASE_MS: '200',
      BOSUN_RETRY_CAP_MS: '400',
      BOSUN_RETRY_MAX_ATTEMPTS: '100',
      ...env,
    },
  });
  open.push(s);
  for (const [i, name] of [
    [1, 'eu-1'],
    [2, 'us-1'],
  ] as const) {
    const res = await s.api('POST', '/v1/targets', { name, url: zooids[i]!.url, secret_key: keys[i] });
    expect(res.status).toBe(201);
  }
  expect((await s.api('PUT', '/v1/fleets/eu', { target: 'eu-1' })).status).toBe(200);
  expect((await s.api('PUT', '/v1/fleets/us', { target: 'us-1' })).status).toBe(200);
  return { s, zooids };
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
});
