import { afterEach, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { createNip98Signer } from '../../src/nostr/nip98.js';
import { ZooidClient } from '../../src/push/zooid/client.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { FakeClock } from '../support/clock.js';
import { keypair, relayBody, startServer, type TestServer, tempDir } from '../support/env.js';
import { rewordAll, startZooidVariant } from '../support/zooid-variant.js';

const bosunKey = generateSecretKey();
const bosunPub = publicKeyOf(bosunKey);
const owner = keypair();

interface Rig {
  s: TestServer;
  zooid: ZooidEmulator;
  idle: () => Promise<void>;
}

const open: { close: () => Promise<void> }[] = [];

/** A client with bosun's key that talks to zooid behind bosun's back. */
const direct = (zooid: ZooidEmulator) =>
  new ZooidClient({ apiUrl: zooid.url, signer: createNip98Signer(bosunKey) });
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function rig(
  opts: { clock?: FakeClock; env?: Record<string, string>; dir?: string; zooid?: ZooidEmulator } = {},
): Promise<Rig> {
  const zooid =
    opts.zooid ??
    (await startZooidEmulator({ whitelist: [bosunPub], ...(opts.clock ? { clock: opts.clock } : {}) }));
  if (!opts.zooid) open.push(zooid);
  const s = await startServer({
    env: {
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: bosunKey,
      BOSUN_RETRY_BASE_MS: '1000',
      BOSUN_RETRY_CAP_MS: '8000',
      BOSUN_RETRY_MAX_ATTEMPTS: '5',
      ...opts.env,
    },
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.dir ? { dir: opts.dir } : {}),
  });
  open.push(s);
  return { s, zooid, idle: () => s.peer.observer!.idle() };
}

describe('push sync to zooid', () => {
  it('creates, updates, deactivates, activates and deletes relays in zooid with signed requests', async () => {
    const { s, zooid, idle } = await rig();
    const secret = generateSecretKey();
    await s.api('POST', '/v1/relays', {
      ...relayBody('push-1', owner.pubkey),
      secret,
      roles: { admin: { pubkeys: [owner.pubkey], can_manage: true }, member: { can_invite: true } },
    });
    await idle();
    expect(zooid.relays().get('push-1')).toMatchObject({
      host: 'push-1.example.com',
      schema: 'push_1',
      secret,
    });
    expect((await s.api('GET', '/v1/relays/push-1')).body.sync).toMatchObject({
      status: 'synced',
      synced_version: 1,
      error: '',
    });

    await s.api('PATCH', '/v1/relays/push-1', { roles: { admin: null }, groups: { enabled: true } });
    await idle();
    await s.api('POST', '/v1/relays/push-1/deactivate');
    await idle();
    await s.api('POST', '/v1/relays/push-1/activate');
    await idle();
    const stored = zooid.relays().get('push-1')!;
    expect(stored.roles).toEqual({ member: { pubkeys: [], can_invite: true, can_manage: false } });
    expect(stored.groups.enabled).toBe(true);
    expect(stored.inactive).toBe(false);
    expect(stored.secret).toBe(secret);

    const changes = zooid.accepted('push-1');
    expect(changes.map((c) => c.method)).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH']);
    expect((changes[0]!.body as { secret?: string }).secret).toBe(secret);
    for (const c of changes.slice(1)) expect(c.body).not.toHaveProperty('secret');
    // The removed role is deleted explicitly: zooid's PATCH is a deep merge.
    expect((changes[1]!.body as { roles: unknown }).roles).toMatchObject({ admin: null });
    expect((changes[2]!.body as { inactive: boolean }).inactive).toBe(true);
    expect(zooid.requests.every((r) => r.pubkey === bosunPub)).toBe(true);

    await s.api('DELETE', '/v1/relays/push-1');
    await idle();
    expect(zooid.relays().has('push-1')).toBe(false);
    const acts = (await s.api('GET', '/v1/activities?relay=push-1&limit=100')).body.activities;
    expect(acts.filter((a: { type: string }) => a.type === 'complete_relay_sync')).toHaveLength(5);
  });

  it('injects shared Blossom S3 settings for relays with blossom enabled', async () => {
    const { s, zooid, idle } = await rig({
      env: {
        BLOSSOM_S3_REGION: 'us-east-1',
        BLOSSOM_S3_BUCKET: 'media',
        BLOSSOM_S3_ACCESS_KEY: 'AKIA',
        BLOSSOM_S3_SECRET_KEY: 's3-very-secret',
        BLOSSOM_S3_ENDPOINT: 'http://127.0.0.1:9000',
      },
    });
    await s.api('POST', '/v1/relays', relayBody('media', owner.pubkey, { blossom: { enabled: true } }));
    await s.api('POST', '/v1/relays', relayBody('plain', owner.pubkey));
    await idle();
    expect(zooid.relays().get('media')!.blossom).toMatchObject({
      enabled: true,
      adapter: 's3',
      s3: {
        region: 'us-east-1',
        bucket: 'media',
        access_key: 'AKIA',
        secret_key: 's3-very-secret',
        endpoint: 'http://127.0.0.1:9000',
        key_prefix: 'media',
      },
    });
    expect(zooid.accepted('plain')[0]!.body).toMatchObject({ blossom: { enabled: false } });
    expect(s.logs.join('\n')).not.toContain('s3-very-secret');
    // The push syncer logs as a component of the one bosun service, not as a second service.
    expect(s.logs.some((l) => JSON.parse(l).component === 'observer')).toBe(true);
    for (const line of s.logs) expect(line.match(/"service":/g)?.length, line).toBe(1);
  });

  it('retries on a fake clock with capped exponential backoff, stops at the max, resumes after restart', async () => {
    const clock = new FakeClock();
    const dir = tempDir();
    open.push({ close: async () => dir.cleanup() });
    const zooid = await startZooidEmulator({
      whitelist: [bosunPub],
      clock,
      faults: { failAll: true, failStatus: 503 },
    });
    open.push(zooid);
    // random() = 0.5 makes the jitter zero, so the schedule is exact.
    const first = await rig({ clock, zooid, dir: dir.path, env: { BOSUN_RETRY_MAX_ATTEMPTS: '6' } });
    first.s.peer.observer; // started
    const r = await first.s.api('POST', '/v1/relays', relayBody('flaky', owner.pubkey));
    expect(r.status).toBe(201);
    await first.idle();
    const attemptsAt = () => zooid.requests.filter((q) => q.id === 'flaky').map((q) => q.at - clock.now());
    expect(zooid.requests.filter((q) => q.id === 'flaky')).toHaveLength(1);
    let relay = (await first.s.api('GET', '/v1/relays/flaky')).body;
    expect(relay.sync.status).toBe('retrying');
    expect(relay.sync.attempts).toBe(1);
    expect(relay.sync.error).toMatch(/503/);
    const t0 = clock.now();
    expect(Date.parse(relay.sync.next_attempt_at) - t0).toBeGreaterThanOrEqual(900);
    expect(Date.parse(relay.sync.next_attempt_at) - t0).toBeLessThanOrEqual(1100);
    void attemptsAt;
    await first.s.close();
    open.splice(open.indexOf(first.s), 1);

    // Restart on the same database: the scheduled retry is resumed from it, not lost.
    const second = await rig({ clock, zooid, dir: dir.path, env: { BOSUN_RETRY_MAX_ATTEMPTS: '6' } });
    const count = () => zooid.requests.filter((q) => q.id === 'flaky').length;
    await clock.advance(800);
    expect(count()).toBe(1);
    const due = Date.parse(relay.sync.next_attempt_at);
    await clock.advance(due - clock.now());
    await second.idle();
    expect(count()).toBe(2);
    // Later attempts follow min(cap, base·2^(n−1)) ± 10 %: about 2 s, 4 s, 8 s, then failed.
    for (const expected of [2000, 4000, 8000]) {
      relay = (await second.s.api('GET', '/v1/relays/flaky')).body;
      const wait = Date.parse(relay.sync.next_attempt_at) - clock.now();
      expect(wait).toBeGreaterThanOrEqual(expected * 0.9);
      expect(wait).toBeLessThanOrEqual(expected * 1.1);
      await clock.advance(wait - 1);
      await second.idle();
      const before = count();
      await clock.advance(1);
      await second.idle();
      expect(count()).toBe(before + 1);
    }
    // The sixth attempt fails too: no more backoff retries (the resync_failed chore tries it again
    // later, at its own slow pace: test/lifecycle/chores.test.ts).
    relay = (await second.s.api('GET', '/v1/relays/flaky')).body;
    const wait = Date.parse(relay.sync.next_attempt_at) - clock.now();
    await clock.advance(wait);
    await second.idle();
    relay = (await second.s.api('GET', '/v1/relays/flaky')).body;
    expect(relay.sync).toMatchObject({ status: 'failed', attempts: 6, next_attempt_at: null });
    const settled = count();
    await clock.advance(5 * 60_000);
    await second.idle();
    expect(count()).toBe(settled);

    // An operator asks for a resync once zooid is healthy again.
    zooid.setFaults({});
    await second.s.api('POST', '/v1/relays/flaky/sync');
    await second.idle();
    expect((await second.s.api('GET', '/v1/relays/flaky')).body.sync.status).toBe('synced');
    expect(zooid.relays().has('flaky')).toBe(true);
  });

  it('zooid down for 5 minutes under the default retry policy: everything converges when it is back', async () => {
    const clock = new FakeClock();
    const zooid = await startZooidEmulator({
      whitelist: [bosunPub],
      clock,
      faults: { failAll: true, failStatus: 503 },
    });
    open.push(zooid);
    // The documented defaults (1 s doubling to a 5 min cap, 10 attempts: about 8.5 min of retries).
    const { s, idle } = await rig({
      clock,
      zooid,
      env: { BOSUN_RETRY_BASE_MS: '1000', BOSUN_RETRY_CAP_MS: '300000', BOSUN_RETRY_MAX_ATTEMPTS: '10' },
    });
    for (const id of ['a', 'b', 'c']) {
      expect((await s.api('POST', '/v1/relays', relayBody(id, owner.pubkey))).status).toBe(201);
    }
    await idle();
    const relays = async () => (await s.api('GET', '/v1/relays?limit=100')).body.relays as any[];
    // Five minutes down while changes keep coming: every relay keeps retrying, none gives up.
    for (let minute = 1; minute <= 5; minute++) {
      await s.api('PATCH', '/v1/relays/a', { info: { name: `a${minute}` } });
      for (let k = 0; k < 6; k++) {
        await clock.advance(10_000);
        await idle();
      }
      for (const r of await relays()) expect(r.sync.status, `${r.id} at minute ${minute}`).toBe('retrying');
    }
    const attemptsDuringOutage = zooid.requests.length;
    expect(attemptsDuringOutage).toBeGreaterThan(20);
    zooid.setFaults({});
    // Back up: each relay succeeds at its next scheduled attempt (at most the cap later).
    for (let k = 0; k < 40; k++) {
      if ((await relays()).every((r) => r.sync.status === 'synced')) break;
      await clock.advance(10_000);
      await idle();
    }
    for (const r of await relays()) {
      expect(r.sync, r.id).toMatchObject({ status: 'synced', synced_version: r.version, attempts: 0 });
    }
    expect(zooid.relays().get('a')?.info.name).toBe('a5');
    expect([...zooid.relays().keys()].sort()).toEqual(['a', 'b', 'c']);
    // One successful request per relay after the outage: no duplicates, nothing stale after.
    const after = zooid.requests.slice(attemptsDuringOutage).filter((q) => q.status < 300);
    expect(after.map((q) => q.id).sort()).toEqual(['a', 'b', 'c']);
  });

  it('catches up after downtime with one sync per relay, of its final state', async () => {
    const dir = tempDir();
    open.push({ close: async () => dir.cleanup() });
    const offline = await startServer({ dir: dir.path });
    await offline.api('POST', '/v1/relays', relayBody('busy', owner.pubkey));
    for (let i = 0; i < 50; i++) await offline.api('PATCH', '/v1/relays/busy', { info: { name: `n${i}` } });
    await offline.api('POST', '/v1/relays/busy/deactivate');
    await offline.api('POST', '/v1/relays', relayBody('gone', owner.pubkey));
    await offline.api('DELETE', '/v1/relays/gone');
    await offline.peer.close();

    const { zooid, idle, s } = await rig({ dir: dir.path });
    await idle();
    // gone: never acknowledged, so one DELETE (a 404 here): had a create of it been in doubt, zooid
    // could hold it.
    expect(zooid.requests.map((r) => `${r.method} ${r.id}`).sort()).toEqual(['DELETE gone', 'POST busy']);
    expect(zooid.relays().get('busy')).toMatchObject({ inactive: true, info: { name: 'n49' } });
    // The cursor has passed every change (sync bookkeeping after it needs no sync).
    const changes = (await s.peer.store.activitiesAfter({ after: 0, limit: 1000 })).filter(
      (a) => !a.type.endsWith('_sync'),
    );
    expect(await s.peer.store.getCursor('observer')).toBeGreaterThanOrEqual(changes.at(-1)!.id);
  });

  it('never runs two syncs of one relay at once and never lands an older config after a newer one', async () => {
    const { s, zooid, idle } = await rig();
    zooid.setFaults({ latencyMs: 5 });
    const ids = ['o-1', 'o-2', 'o-3'];
    for (const id of ids) await s.api('POST', '/v1/relays', relayBody(id, owner.pubkey));
    // Three writers, one per relay, each changing its relay 30 times as fast as it can.
    await Promise.all(
      ids.map(async (id) => {
        for (let i = 0; i < 30; i++)
          await s.api('PATCH', `/v1/relays/${id}`, { info: { name: `n${String(i).padStart(3, '0')}` } });
      }),
    );
    await idle();
    expect(zooid.maxConcurrentPerRelay()).toBe(1);
    for (const id of ids) {
      const [created, ...names] = zooid.accepted(id).map((c) => c.config?.info.name ?? '');
      expect(created).toBe(id);
      expect(names).toEqual([...names].sort());
      expect(names.at(-1)).toBe('n029');
      const bosun = (await s.api('GET', `/v1/relays/${id}`)).body;
      expect(zooid.relays().get(id)!.info.name).toBe(bosun.config.info.name);
      expect(bosun.sync).toMatchObject({ status: 'synced', synced_version: bosun.version });
      // Coalesced: far fewer syncs than changes.
      expect(names.length).toBeLessThanOrEqual(31);
    }
  });

  it('tells the operator which key to whitelist on 403', async () => {
    const clock = new FakeClock();
    const zooid = await startZooidEmulator({ whitelist: [owner.pubkey], clock });
    open.push(zooid);
    const { s, idle } = await rig({ clock, zooid });
    await s.api('POST', '/v1/relays', relayBody('denied', owner.pubkey));
    await idle();
    const relay = (await s.api('GET', '/v1/relays/denied')).body;
    expect(relay.sync.status).toBe('retrying');
    expect(relay.sync.error).toContain(bosunPub.slice(0, 20));
    expect(relay.sync.error).toContain('API_WHITELIST');
  });

  it('stores a zooid validation error and does not retry it', async () => {
    const clock = new FakeClock();
    const zooid = await startZooidEmulator({
      whitelist: [bosunPub],
      clock,
      faults: { statusOverride: { POST: { status: 400, body: '{"error":"invalid info.pubkey: bad"}\n' } } },
    });
    open.push(zooid);
    const { s, idle } = await rig({ clock, zooid });
    await s.api('POST', '/v1/relays', relayBody('invalid', owner.pubkey));
    await idle();
    const relay = (await s.api('GET', '/v1/relays/invalid')).body;
    expect(relay.sync).toMatchObject({ status: 'failed', attempts: 1, next_attempt_at: null });
    expect(relay.sync.error).toBe('zooid rejected the config 400: invalid info.pubkey: bad');
    await clock.advance(3_600_000);
    await idle();
    expect(zooid.requests).toHaveLength(1);
  });

  it('falls back: POST 409 id exists → PUT with the stored secret; PATCH 404 → POST; delete of a missing relay is done', async () => {
    const { s, zooid, idle } = await rig();
    // zooid already has "dup" (e.g. bosun crashed after its POST): bosun replaces it, same identity.
    const secret = generateSecretKey();
    await direct(zooid).create('dup', {
      ...relayBody('dup', owner.pubkey),
      host: 'dup.example.com',
      schema: 'dup',
      secret: generateSecretKey(),
      info: { pubkey: owner.pubkey, name: 'stale', icon: '', description: '' },
    });
    zooid.requests.length = 0;
    await s.api('POST', '/v1/relays', { ...relayBody('dup', owner.pubkey), secret });
    await idle();
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['POST 409', 'PUT 200']);
    expect(zooid.relays().get('dup')).toMatchObject({ secret, info: { name: 'dup' } });

    // The relay is deleted in zooid behind bosun's back: the next update recreates it.
    await direct(zooid).remove('dup');
    zooid.requests.length = 0;
    await s.api('PATCH', '/v1/relays/dup', { info: { name: 'again' } });
    await idle();
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['PATCH 404', 'POST 201']);
    expect(zooid.relays().get('dup')).toMatchObject({ secret, info: { name: 'again' } });

    await direct(zooid).remove('dup');
    zooid.requests.length = 0;
    await s.api('DELETE', '/v1/relays/dup');
    await idle();
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['DELETE 404']);
    expect((await s.peer.store.getRelay('dup'))!.sync.status).toBe('synced');
  });

  it('a relay deleted while its create is in doubt (zooid took the POST, its answer was lost) is deleted in zooid', async () => {
    const { s, zooid, idle } = await rig();
    // Every answer is lost: bosun never records the create, as after a kill -9 right after zooid took it.
    zooid.setFaults({ failAll: true });
    const secret = generateSecretKey();
    await s.api('POST', '/v1/relays', { ...relayBody('doubt', owner.pubkey), secret });
    await idle();
    expect((await s.peer.store.getRelay('doubt'))!.sync).toMatchObject({
      status: 'retrying',
      syncedVersion: 0,
    });
    zooid.setFaults({});
    const body = {
      ...relayBody('doubt', owner.pubkey),
      host: 'doubt.example.com',
      schema: 'doubt',
      secret,
      info: { pubkey: owner.pubkey, name: 'doubt', icon: '', description: '' },
    };
    const landed = await direct(zooid).create('doubt', body);
    expect(landed, JSON.stringify(landed)).toMatchObject({ ok: true });
    zooid.requests.length = 0;
    // Deleted before the retry (1 s away): the sync of the deleted relay must not assume zooid never had it.
    await s.api('DELETE', '/v1/relays/doubt');
    await idle();
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['DELETE 200']);
    expect(zooid.relays().has('doubt')).toBe(false);
    expect((await s.peer.store.getRelay('doubt'))!.sync.status).toBe('synced');

    // Created again under the same id, in doubt again, deleted again: zooid's acknowledged delete is
    // of an older version, and does not say it lacks the new one.
    zooid.setFaults({ failAll: true });
    expect((await s.api('POST', '/v1/relays', { ...relayBody('doubt', owner.pubkey), secret })).status).toBe(
      201,
    );
    await idle();
    zooid.setFaults({});
    expect((await direct(zooid).create('doubt', body)).ok).toBe(true);
    zooid.requests.length = 0;
    await s.api('DELETE', '/v1/relays/doubt');
    await idle();
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['DELETE 200']);
    expect(zooid.relays().has('doubt')).toBe(false);
  });

  it('a host moved from one relay to another converges once the first one moves off it', async () => {
    const { s, zooid, idle } = await rig();
    await s.api('POST', '/v1/relays', relayBody('a', owner.pubkey, { host: 'shared.example.com' }));
    await idle();
    // Free the host in bosun but hold a's sync back, so b hits zooid's "host in use" first.
    zooid.setFaults({ statusOverride: { PATCH: 503 } });
    await s.api('PATCH', '/v1/relays/a', { host: 'a.example.com' });
    await s.api('POST', '/v1/relays', relayBody('b', owner.pubkey, { host: 'shared.example.com' }));
    await idle();
    expect((await s.api('GET', '/v1/relays/b')).body.sync.status).toBe('failed');
    expect((await s.api('GET', '/v1/relays/b')).body.sync.error).toMatch(
      /^zooid conflict 409: host "shared.example.com" is already in use/,
    );
    zooid.setFaults({});
    await s.api('POST', '/v1/relays/a/sync');
    await idle();
    expect(zooid.relays().get('a')!.host).toBe('a.example.com');
    expect(zooid.relays().get('b')!.host).toBe('shared.example.com');
    expect((await s.api('GET', '/v1/relays/b')).body.sync.status).toBe('synced');
  });

  it.each([2, 3])(
    'hosts passed round a ring of %i relays while zooid was down converge: one relay parks on a placeholder host',
    async (n) => {
      const { s, zooid, idle } = await rig();
      const ids = Array.from({ length: n }, (_, i) => `ring-${i}`);
      const host = (i: number) => `${ids[i % n]}.example.com`;
      for (const [i, id] of ids.entries()) {
        await s.api('POST', '/v1/relays', relayBody(id, owner.pubkey, { host: host(i) }));
      }
      await idle();
      // zooid refuses every change until the whole ring has moved in bosun, one host at a time
      // through a spare one: bosun then pushes each relay straight to the host another still holds.
      zooid.setFaults({ statusOverride: { PATCH: 503 } });
      await s.api('PATCH', `/v1/relays/${ids[0]}`, { host: 'spare.example.com' });
      for (let i = 1; i < n; i++) await s.api('PATCH', `/v1/relays/${ids[i]}`, { host: host(i - 1) });
      await s.api('PATCH', `/v1/relays/${ids[0]}`, { host: host(n - 1) });
      await idle();
      zooid.setFaults({});
      zooid.requests.length = 0;
      for (const id of ids) await s.api('POST', `/v1/relays/${id}/sync`);
      await idle();

      const wanted = (i: number) => (i === 0 ? host(n - 1) : host(i - 1));
      for (const [i, id] of ids.entries()) {
        expect(zooid.relays().get(id)!.host).toBe(wanted(i));
        const { sync } = (await s.api('GET', `/v1/relays/${id}`)).body;
        expect(sync).toMatchObject({ status: 'synced', error: '' });
      }
      // Each relay failed once on the conflict; exactly one of them parked to break the ring.
      const parks = zooid.requests.filter(
        (r) => r.status === 200 && JSON.stringify(r.body).includes('bosun-parked.invalid'),
      );
      expect(parks).toHaveLength(1);
      expect(zooid.requests.filter((r) => r.status === 409)).toHaveLength(n);
      const parked = s.logs.map((l) => JSON.parse(l)).filter((l) => l.msg?.startsWith('host swap'));
      expect(parked).toHaveLength(1);
      const log = (await s.api('GET', '/v1/activities?limit=500')).body.activities as {
        type: string;
        payload: Record<string, unknown>;
      }[];
      expect(log.filter((a) => a.type === 'fail_relay_sync' && a.payload.parked_host)).toEqual([
        expect.objectContaining({
          payload: expect.objectContaining({ parked_host: `${parked[0].relayId}.bosun-parked.invalid` }),
        }),
      ]);
    },
  );

  it('a fleet apply that swaps two hosts commits, and zooid ends with them swapped', async () => {
    const { s, zooid, idle } = await rig();
    const apply = async (hosts: Record<string, string>) => {
      const body = {
        defaults: { info: { pubkey: owner.pubkey } },
        relays: Object.entries(hosts).map(([name, host]) => ({ name, config: { host } })),
      };
      expect((await s.api('POST', '/v1/fleets/swap/apply', body)).status).toBe(200);
      await idle();
    };
    await apply({ sa: 'sa.example.com', sb: 'sb.example.com' });
    await apply({ sa: 'sb.example.com', sb: 'sa.example.com' });
    expect(zooid.relays().get('sa')!.host).toBe('sb.example.com');
    expect(zooid.relays().get('sb')!.host).toBe('sa.example.com');
    for (const id of ['sa', 'sb']) {
      expect((await s.api('GET', `/v1/relays/${id}`)).body.sync).toMatchObject({
        status: 'synced',
        synced_version: 2,
      });
    }
  });

  it('a relay waiting for a host held outside any ring stays failed and parks nowhere', async () => {
    const { s, zooid, idle } = await rig();
    await s.api('POST', '/v1/relays', relayBody('p', owner.pubkey, { host: 'p.example.com' }));
    await idle();
    // A relay bosun does not know holds the host p wants.
    await direct(zooid).create('foreign', {
      ...(zooid.relays().get('p') as unknown as Record<string, unknown>),
      host: 'taken.example.com',
      schema: 'foreign',
    });
    zooid.requests.length = 0;
    await s.api('PATCH', '/v1/relays/p', { host: 'taken.example.com' });
    await idle();
    expect((await s.api('GET', '/v1/relays/p')).body.sync.status).toBe('failed');
    expect(zooid.relays().get('p')!.host).toBe('p.example.com');
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['PATCH 409']);
  });
});

describe('push sync with a zooid variant that words its answers differently', () => {
  async function variantRig() {
    const variant = await startZooidVariant({ whitelist: [bosunPub] });
    open.push(variant);
    const s = await startServer({ env: { ZOOID_API_URL: variant.url, BOSUN_SECRET_KEY: bosunKey } });
    open.push(s);
    const direct = new ZooidClient({ apiUrl: variant.url, signer: createNip98Signer(bosunKey) });
    const zooid = variant.zooid;
    const trail = () => zooid.requests.filter((r) => r.id).map((r) => `${r.method} ${r.id} ${r.status}`);
    return { s, zooid, direct, trail, idle: () => s.peer.observer!.idle() };
  }
  const sync = async (s: TestServer, id: string) => (await s.api('GET', `/v1/relays/${id}`)).body.sync;

  it('converges: 404 "Not Found" and {"error":"missing"}, 409s in other words, extra fields', async () => {
    const { s, zooid, direct, trail, idle } = await variantRig();
    await s.api('POST', '/v1/relays', relayBody('v1', owner.pubkey));
    await idle();
    expect(await sync(s, 'v1')).toMatchObject({ status: 'synced', synced_version: 1 });

    // Lost in zooid: the PATCH's plain-text 404 means "create it again".
    await direct.remove('v1');
    zooid.requests.length = 0;
    await s.api('PATCH', '/v1/relays/v1', { info: { name: 'again' } });
    await idle();
    expect(trail()).toEqual(['PATCH v1 404', 'POST v1 201']);
    expect(await sync(s, 'v1')).toMatchObject({ status: 'synced', synced_version: 2 });
    expect(zooid.relays().get('v1')!.info.name).toBe('again');

    // Already gone: a DELETE answered 404 {"error":"missing"} is done.
    await direct.remove('v1');
    zooid.requests.length = 0;
    await s.api('DELETE', '/v1/relays/v1');
    await idle();
    expect(trail()).toEqual(['DELETE v1 404']);
    expect((await s.peer.store.getRelay('v1'))!.sync).toMatchObject({ status: 'synced', ackedDeleted: true });

    // The id exists already ("duplicate id"): replaced with bosun's secret.
    const secret = generateSecretKey();
    await direct.create('dup', {
      ...zooidLike('dup'),
      secret: generateSecretKey(),
    });
    zooid.requests.length = 0;
    await s.api('POST', '/v1/relays', { ...relayBody('dup', owner.pubkey), secret });
    await idle();
    expect(trail()).toEqual(['POST dup 409', 'PUT dup 200']);
    expect(zooid.relays().get('dup')!.secret).toBe(secret);
    expect(await sync(s, 'dup')).toMatchObject({ status: 'synced' });

    // A host held by a relay bosun does not know, in the variant's words: a conflict.
    await direct.create('foreign', { ...zooidLike('foreign'), host: 'taken.example.com' });
    await s.api('POST', '/v1/relays', relayBody('wants', owner.pubkey, { host: 'taken.example.com' }));
    await idle();
    expect(await sync(s, 'wants')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^zooid conflict 409: host taken\.example\.com belongs to another relay/),
    });
  });

  it('a 409 that names neither id, host nor schema: the PUT that follows answers 404, so it was a conflict', async () => {
    const variant = await startZooidVariant({
      whitelist: [bosunPub],
      reword: (method, status, text) =>
        status === 409 ? { status, body: 'Conflict' } : rewordAll(method, status, text),
    });
    open.push(variant);
    const s = await startServer({ env: { ZOOID_API_URL: variant.url, BOSUN_SECRET_KEY: bosunKey } });
    open.push(s);
    const direct = new ZooidClient({ apiUrl: variant.url, signer: createNip98Signer(bosunKey) });
    await direct.create('holder', { ...zooidLike('holder'), schema: 'shared' });
    variant.zooid.requests.length = 0;
    await s.api('POST', '/v1/relays', relayBody('shared', owner.pubkey));
    await s.peer.observer!.idle();
    expect(variant.zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['POST 409', 'PUT 404']);
    expect(await sync(s, 'shared')).toMatchObject({
      status: 'failed',
      error: 'zooid conflict 409: Conflict (host shared.example.com, schema shared)',
    });
  });

  it('a wrong API URL: the POST after a 404 answers 404 too, and the error names the URL', async () => {
    const { s, zooid, idle } = await variantRig();
    await s.api('POST', '/v1/relays', relayBody('lost', owner.pubkey));
    await idle();
    // As if ZOOID_API_URL now pointed at something that is not zooid's API.
    zooid.setFaults({ statusOverride: { PATCH: 404, POST: 404, PUT: 404 } });
    await s.api('PATCH', '/v1/relays/lost', { info: { name: 'x' } });
    await idle();
    const state = await sync(s, 'lost');
    expect(state.status).toBe('failed');
    expect(state.error).toContain('404');
    expect(state.error).toContain("reaches zooid's API_HOST");
  });
});

/** A zooid config body for a relay created behind bosun's back. */
function zooidLike(id: string) {
  return {
    host: `${id}.example.com`,
    schema: id,
    secret: generateSecretKey(),
    info: { pubkey: owner.pubkey, name: id, icon: '', description: '' },
  };
}
