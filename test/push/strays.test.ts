import { describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import type { Relay } from '../../src/domain/relay.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { useCleanups } from '../support/cleanups.js';
import { FakeClock } from '../support/clock.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { addTargets, defaultTargetEnv } from '../support/targets.js';
import { until } from '../support/until.js';

const owner = keypair();
const { defer: cleanup } = useCleanups();

/** The requests held by an emulator's latency wait on its own clock: released only by `advance`. */
const HELD_MS = 60_000;

/**
 * One bosun on PostgreSQL holding every target's push lease (default, eu-1, us-1): each target has
 * its own observer and work queue in this one process, as on separate replicas. eu-1 and us-1 are
 * zooids on clocks of their own, so a test holds a request there (latency) and lets it land later.
 */
async function rig(
  env: Record<string, string> = {},
): Promise<{ s: TestServer; zooids: ZooidEmulator[]; clocks: FakeClock[] }> {
  const schema = freshSchema('bosun_strays');
  cleanup(schema.drop);
  const keys = [generateSecretKey(), generateSecretKey(), generateSecretKey()];
  const clocks = [new FakeClock(Date.now()), new FakeClock(Date.now()), new FakeClock(Date.now())];
  const zooids: ZooidEmulator[] = [];
  for (const [i, key] of keys.entries()) {
    const z = await startZooidEmulator({
      whitelist: [publicKeyOf(key)],
      ...(i > 0 ? { clock: clocks[i]! } : {}),
    });
    cleanup(() => z.close());
    zooids.push(z);
  }
  const s = await startServer({
    env: {
      ...defaultTargetEnv({ zooids, keys }),
      BOSUN_DATABASE_URL: schema.url,
      BOSUN_LEASE_TTL_MS: '1500',
      BOSUN_PG_POOL_SIZE: '4',
      BOSUN_RETRY_BASE_MS: '50',
      BOSUN_RETRY_CAP_MS: '100',
      ...env,
    },
  });
  cleanup(() => s.close());
  await addTargets(s.api, { zooids, keys }, { eu: 'eu-1' });
  await until(
    async () => s.peer.pushLeases!.held().join() === 'default,eu-1,us-1',
    10_000,
    'every target held here',
  );
  return { s, zooids, clocks };
}

const held = (zooids: ZooidEmulator[], id: string) =>
  zooids.map((z, i) => (z.relays().has(id) ? i : -1)).filter((i) => i >= 0);

/** Whether the request `method` for relay `id` reached the emulator (it may still be held there). */
const arrived = (z: ZooidEmulator, method: string, id: string) =>
  z.requests.some((r) => r.method === method && r.id === id);

/** The relay is on exactly zooid `i`, and its record says so (target `name`, synced). */
async function settledOn(s: TestServer, zooids: ZooidEmulator[], id: string, i: number, name: string) {
  const state = async () => {
    const r = await s.peer.store.getRelay(id);
    return `on zooids [${held(zooids, id)}], recorded ${r?.sync.pushedTarget} (${r?.sync.status})`;
  };
  await until(
    async () => {
      const r = await s.peer.store.getRelay(id);
      return (
        held(zooids, id).join() === String(i) &&
        r?.sync.pushedTarget === name &&
        r.sync.status === 'synced' &&
        (await s.peer.targetObservers!.idle().then(() => true))
      );
    },
    5000,
    `${id} on ${name} alone, and recorded there`,
  ).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${await state()}`);
  });
  // And it stays so once every observer is done.
  await s.peer.targetObservers!.idle();
  expect(held(zooids, id)).toEqual([i]);
  expect((await s.peer.store.getRelay(id))!.sync.pushedTarget).toBe(name);
}

/**
 * The fleet switch reached `target`'s observer: its sync of `id` is done (`done` holds of the
 * record: what it does without the relay lock) or found the relay busy (another target's request
 * for it may still land).
 */
async function tried(s: TestServer, target: string, id: string, done: (r: Relay) => boolean) {
  await until(
    async () =>
      done((await s.peer.store.getRelay(id))!) ||
      s.logs.some(
        (l) =>
          l.includes('relay busy') &&
          l.includes(`"relayId":"${id}"`) &&
          l.includes(`"lease":"push:${target}"`),
      ),
    5000,
    `${target}'s observer tried ${id}`,
  );
}

describe.skipIf(!postgresUrl)('one relay, two targets’ observers (issue 17: strays)', () => {
  it('a create still in flight on the old target when the fleet switches leaves no stray copy there', async () => {
    const { s, zooids, clocks } = await rig();
    zooids[1]!.setFaults({ latencyMs: HELD_MS });
    expect((await s.api('POST', '/v1/relays', relayBody('r1', owner.pubkey, { fleet: 'eu' }))).status).toBe(
      201,
    );
    await until(() => arrived(zooids[1]!, 'POST', 'r1'), 5000, 'the POST on eu-1 in flight');
    zooids[1]!.setFaults({});

    // Switched while eu-1's POST is in flight: us-1's observer sees the resync first.
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).status).toBe(200);
    await tried(s, 'us-1', 'r1', (r) => r.sync.pushedTarget === 'us-1');
    // The late POST lands on eu-1.
    await clocks[1]!.advance(HELD_MS);
    await settledOn(s, zooids, 'r1', 2, 'us-1');
  }, 20_000);

  it('a create that timed out on the old target, and lands there after the fleet switched, leaves no stray copy', async () => {
    const { s, zooids, clocks } = await rig({ BOSUN_SYNC_TIMEOUT_MS: '300' });
    zooids[1]!.setFaults({ latencyMs: HELD_MS });
    expect((await s.api('POST', '/v1/relays', relayBody('r3', owner.pubkey, { fleet: 'eu' }))).status).toBe(
      201,
    );
    await until(
      async () => (await s.peer.store.getRelay('r3'))!.sync.error.includes('did not answer POST'),
      5000,
      'the POST on eu-1 timed out (its answer lost, the request still open)',
    );
    zooids[1]!.setFaults({});

    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).status).toBe(200);
    await tried(s, 'us-1', 'r3', (r) => r.sync.pushedTarget === 'us-1');
    await clocks[1]!.advance(HELD_MS);
    await settledOn(s, zooids, 'r3', 2, 'us-1');
  }, 20_000);

  it('A→B→A while B’s delete on A is in flight leaves the relay on A, recorded there', async () => {
    const { s, zooids, clocks } = await rig();
    expect((await s.api('POST', '/v1/relays', relayBody('r2', owner.pubkey, { fleet: 'eu' }))).status).toBe(
      201,
    );
    await settledOn(s, zooids, 'r2', 1, 'eu-1');

    // To us-1: created there, and its DELETE on eu-1 held in flight.
    zooids[1]!.setFaults({ latencyMs: HELD_MS });
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).status).toBe(200);
    await until(() => arrived(zooids[1]!, 'DELETE', 'r2'), 5000, 'the DELETE on eu-1 in flight');
    zooids[1]!.setFaults({});

    // And back to eu-1 meanwhile: eu-1's observer sees it first; then the late DELETE lands.
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'eu-1' })).status).toBe(200);
    await tried(s, 'eu-1', 'r2', (r) => r.sync.status === 'synced');
    await clocks[1]!.advance(1);
    await clocks[1]!.advance(HELD_MS);
    await settledOn(s, zooids, 'r2', 1, 'eu-1');
  }, 20_000);
});
