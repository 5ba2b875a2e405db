import { afterEach, describe, expect, it } from 'vitest';
import type { ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { keypair, relayBody, startServer, type TestServer, tempDir } from '../support/env.js';
import { addTargets, defaultTargetEnv, startZooids } from '../support/targets.js';
import { until } from '../support/until.js';

const owner = keypair();
const open: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

/** Retries every 100 ms (cap 200 ms): a move held up by a failing target finishes soon after it heals. */
const RETRY_ENV = {
  BOSUN_RETRY_BASE_MS: '100',
  BOSUN_RETRY_CAP_MS: '200',
  BOSUN_RETRY_MAX_ATTEMPTS: '1000',
};

/**
 * Three zooid instances, each whitelisting only its own key (a request sent to the wrong one is
 * refused with 403), and bosun with `default` on the first and targets eu-1, us-1 on the others.
 */
async function threeTargets(dir?: string) {
  const fleet = await startZooids(3);
  open.push(fleet);
  const s = await startServer({
    env: { ...defaultTargetEnv(fleet), ...RETRY_ENV },
    ...(dir ? { dir } : {}),
  });
  open.push(s);
  await addTargets(s.api, fleet, { eu: 'eu-1', us: 'us-1' });
  return { s, zooids: fleet.zooids, keys: fleet.keys };
}

const create = (s: TestServer, id: string, fleet?: string) =>
  s.api('POST', '/v1/relays', relayBody(id, owner.pubkey, fleet ? { fleet } : {}));

const sync = async (s: TestServer, id: string) => (await s.api('GET', `/v1/relays/${id}`)).body.sync;

const held = (zooids: ZooidEmulator[], id: string) =>
  zooids.map((z, i) => (z.relays().has(id) ? i : -1)).filter((i) => i >= 0);

const moves = async (s: TestServer, id: string) =>
  (await s.peer.store.activitiesAfter({ after: 0, relayId: id, limit: 1000 }))
    .filter((a) => a.type === 'move_relay')
    .map((a) => a.payload);

/**
 * Relay e1 on eu-1, whose deletes then fail, and fleet eu moved to `to`: e1 is created there and
 * its move keeps retrying the delete on eu-1.
 */
async function stuckMove(to: string) {
  const { s, zooids } = await threeTargets();
  await create(s, 'e1', 'eu');
  await s.peer.observer!.idle();
  zooids[1]!.setFaults({ statusOverride: { DELETE: 500 } });
  expect((await s.api('PUT', '/v1/fleets/eu', { target: to })).status).toBe(200);
  await until(async () => (await sync(s, 'e1')).status === 'retrying', 10_000, 'e1 retrying');
  return { s, zooids };
}

describe('moving relays between targets (issue 17.3)', () => {
  it('a fleet switch creates its relays on the new target, then deletes them from the old one', async () => {
    const { s, zooids } = await threeTargets();
    await create(s, 'e1', 'eu');
    await create(s, 'e2', 'eu');
    await create(s, 'u1', 'us');
    await create(s, 'd1');
    await s.peer.observer!.idle();
    expect(held(zooids, 'e1')).toEqual([1]);
    expect(await sync(s, 'e1')).toMatchObject({ status: 'synced', target: 'eu-1' });
    expect((await sync(s, 'e1')).moving).toBeUndefined();

    const put = await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' });
    expect(put.status).toBe(200);
    expect(put.body.moved).toEqual({ relays: 2, from: ['eu-1'], to: 'us-1' });
    await until(async () => (await sync(s, 'e2')).target === 'us-1', 10_000, 'e2 moved');
    await until(async () => (await sync(s, 'e1')).target === 'us-1', 10_000, 'e1 moved');
    for (const id of ['e1', 'e2']) {
      expect(held(zooids, id)).toEqual([2]);
      expect(await sync(s, id)).toMatchObject({ status: 'synced', target: 'us-1' });
      expect(await moves(s, id)).toEqual([{ version: 1, from: 'eu-1', to: 'us-1' }]);
    }
    // Created (POST with its secret) before the old copy was deleted.
    const posted = zooids[2]!.requests.find((r) => r.method === 'POST' && r.path.endsWith('/e1'));
    const deleted = zooids[1]!.requests.find((r) => r.method === 'DELETE' && r.path.endsWith('/e1'));
    expect(posted && deleted).toBeTruthy();
    expect(posted!.at).toBeLessThanOrEqual(deleted!.at);
    // The others did not move, and no request went to an instance that refuses it.
    expect(held(zooids, 'u1')).toEqual([2]);
    expect(held(zooids, 'd1')).toEqual([0]);
    for (const z of zooids) expect(z.requests.every((r) => r.status < 400 || r.status === 404)).toBe(true);
  });

  it('a relay given another fleet moves with it', async () => {
    const { s, zooids } = await threeTargets();
    await create(s, 'r1', 'eu');
    await s.peer.observer!.idle();
    expect((await s.api('PATCH', '/v1/relays/r1', { fleet: 'us' })).status).toBe(200);
    await until(async () => (await sync(s, 'r1')).target === 'us-1', 10_000, 'r1 moved');
    expect(held(zooids, 'r1')).toEqual([2]);
    expect(await moves(s, 'r1')).toEqual([{ version: 2, from: 'eu-1', to: 'us-1' }]);
  });

  it('a move whose delete on the old target fails keeps retrying, says so, and finishes', async () => {
    const { s, zooids } = await stuckMove('default');
    const midway = await sync(s, 'e1');
    expect(midway.target).toBe('eu-1');
    expect(midway.moving).toEqual({ from: 'eu-1', to: 'default' });
    expect(midway.error).toMatch(
      /^moving from eu-1 to default: deleting it on eu-1 \(created on default\): /,
    );
    // Never deleted before the new target acknowledged it: on both while the delete fails.
    expect(held(zooids, 'e1')).toEqual([0, 1]);
    // eu-1 still holds it, and only push sync can delete it there: eu-1 cannot be removed yet.
    const refused = await s.api('DELETE', '/v1/targets/eu-1');
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/target eu-1 still holds 1 relay \(moving off it/);

    zooids[1]!.setFaults({});
    await until(async () => (await sync(s, 'e1')).target === 'default', 10_000, 'e1 moved');
    expect(held(zooids, 'e1')).toEqual([0]);
    expect(await sync(s, 'e1')).toMatchObject({ status: 'synced', error: '' });
    expect((await sync(s, 'e1')).moving).toBeUndefined();
    expect(await moves(s, 'e1')).toEqual([{ version: 1, from: 'eu-1', to: 'default' }]);
    expect((await s.api('DELETE', '/v1/targets/eu-1')).status).toBe(204);
  });

  it('an old target that refuses connections does not put the new one in backoff', async () => {
    const { s, zooids } = await threeTargets();
    await create(s, 'e1', 'eu');
    await s.peer.observer!.idle();
    await zooids[1]!.close();
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).status).toBe(200);
    await until(async () => (await sync(s, 'e1')).attempts >= 3, 10_000, 'three tries of the move');
    expect((await sync(s, 'e1')).error).toMatch(
      /^moving from eu-1 to us-1: deleting it on eu-1 \(created on us-1\): cannot reach zooid/,
    );
    const failing = s.logs.filter((l) => l.includes('zooid target failing'));
    expect(failing.length).toBeGreaterThan(0);
    expect(failing.filter((l) => l.includes('"target":"us-1"'))).toEqual([]);
  });

  it('a relay deleted before its move finished is deleted where it lives, and on its new target', async () => {
    const { s, zooids } = await stuckMove('us-1');
    expect(held(zooids, 'e1')).toEqual([1, 2]);
    expect((await s.api('DELETE', '/v1/relays/e1')).status).toBe(200);
    zooids[1]!.setFaults({});
    await until(async () => held(zooids, 'e1').length === 0, 10_000, 'e1 deleted from both');
    await until(
      async () => (await s.peer.store.getRelay('e1'))!.sync.ackedDeleted,
      10_000,
      'delete acknowledged',
    );
    expect((await s.peer.store.getRelay('e1'))!.sync.pushedTarget).toBeNull();
  });

  it('a fleet made pull-only leaves its relays where they are (the copy stays)', async () => {
    const { s, zooids } = await threeTargets();
    await create(s, 'e1', 'eu');
    await s.peer.observer!.idle();
    const put = await s.api('PUT', '/v1/fleets/eu', { target: null });
    expect(put.status).toBe(200);
    expect(put.body.moved).toEqual({ relays: 0, from: [], to: null });
    await s.peer.observer!.idle();
    expect(held(zooids, 'e1')).toEqual([1]);
    expect(await sync(s, 'e1')).toMatchObject({ status: 'pull', target: 'eu-1' });
    expect((await sync(s, 'e1')).moving).toBeUndefined();
    // Pushed again to another target: moved off the one it stayed on.
    expect((await s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).body.moved).toEqual({
      relays: 1,
      from: ['eu-1'],
      to: 'us-1',
    });
    await until(async () => (await sync(s, 'e1')).target === 'us-1', 10_000, 'e1 moved');
    expect(held(zooids, 'e1')).toEqual([2]);
  });

  it('a restart in the middle of a move finishes it', async () => {
    const data = tempDir('moves');
    open.push({ close: async () => data.cleanup() });
    const first = await threeTargets(data.path);
    const { zooids } = first;
    for (let i = 0; i < 10; i++) await create(first.s, `e${i}`, 'eu');
    await first.s.peer.observer!.idle();
    // The old target's deletes fail: every relay is created on us-1 and still on eu-1 at the stop.
    zooids[1]!.setFaults({ statusOverride: { DELETE: 500 } });
    expect((await first.s.api('PUT', '/v1/fleets/eu', { target: 'us-1' })).status).toBe(200);
    await until(async () => zooids[2]!.relays().size === 10, 10_000, 'all created on us-1');
    open.splice(open.indexOf(first.s), 1);
    await first.s.close();
    expect(zooids[1]!.relays().size).toBe(10);
    zooids[1]!.setFaults({});

    const s = await startServer({ env: { ...defaultTargetEnv(first), ...RETRY_ENV }, dir: data.path });
    open.push(s);
    await until(async () => zooids[1]!.relays().size === 0, 10_000, 'old copies deleted after restart');
    for (let i = 0; i < 10; i++) {
      await until(async () => (await sync(s, `e${i}`)).target === 'us-1', 10_000, `e${i} moved`);
      expect(held(zooids, `e${i}`)).toEqual([2]);
    }
  });
});
