import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command } from '../../../src/command.js';
import { UNKNOWN_LIVE } from '../../../src/domain/live.js';
import type { Principal } from '../../../src/domain/principal.js';
import type { Relay } from '../../../src/domain/relay.js';
import { configDiff, DashboardData } from '../../../src/http/dashboard/data.js';
import { Notifier } from '../../../src/notifier.js';
import { Query } from '../../../src/query.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../../support/clock.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../../support/env.js';
import { type Planet, startPlanet } from '../../support/planet.js';
import { openStream, ready } from './sse-client.js';

const SECRET = keypair().secret;
const LIVEKIT = 'livekit-api-secret-6f1d2c';
const LIVEKIT2 = 'livekit-api-secret-rotated-99ab';
const S3 = 's3-secret-key-0a9b8c7d6e5f';

describe('dashboard read models over a real planet', () => {
  let planet: Planet;
  let aliceToken: string;
  let bobToken: string;
  const owner = keypair();
  const api = (...args: Parameters<Planet['bosun']['api']>) => planet.bosun.api(...args);

  beforeAll(async () => {
    planet = await startPlanet({
      env: {
        BOSUN_RETRY_MAX_ATTEMPTS: '1',
        BLOSSOM_S3_REGION: 'eu-1',
        BLOSSOM_S3_BUCKET: 'media',
        BLOSSOM_S3_ACCESS_KEY: 'AKIDEXAMPLE',
        BLOSSOM_S3_SECRET_KEY: S3,
      },
    });
    aliceToken = (await api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    bobToken = (await api('POST', '/v1/tokens', { role: 'tenant', owner: 'bob' })).body.token;
    const created = await api('POST', '/v1/relays', {
      ...relayBody('sec-1', owner.pubkey),
      secret: SECRET,
      livekit: { server_url: 'wss://lk.example.com', api_key: 'k1', api_secret: LIVEKIT },
      blossom: { enabled: true },
    });
    expect(created.status).toBe(201);
    await api('POST', '/v1/relays', relayBody('alice-1', owner.pubkey), aliceToken);
    await api('POST', '/v1/relays', relayBody('bob-1', owner.pubkey, { inactive: true }), bobToken);
    await planet.idle();
    planet.zooid.setFaults({ failAll: true });
    await api('PATCH', '/v1/relays/sec-1', { info: { name: 'renamed' }, livekit: { api_secret: LIVEKIT2 } });
    await planet.idle();
    await planet.trigger('target_health');
  });
  afterAll(async () => {
    await planet?.close();
  });

  it('overview: counts, failing relays with their error, targets — scoped per caller', async () => {
    const admin = (await api('GET', '/v1/dashboard/overview')).body;
    expect(admin.principal).toEqual({ role: 'admin', actor: expect.any(String) });
    expect(admin.counts).toEqual({
      pending: 0,
      synced: 2,
      retrying: 0,
      failed: 1,
      pull: 0,
      total: 3,
      active: 2,
      inactive: 1,
    });
    expect(admin.failing).toHaveLength(1);
    expect(admin.failing[0]).toMatchObject({
      id: 'sec-1',
      sync: { status: 'failed', attempts: 1, next_attempt_at: null, error: expect.stringContaining('500') },
    });
    expect(admin.fleet.targets).toEqual([expect.objectContaining({ url: planet.zooid.url, up: true })]);
    expect(admin.fleet.agents).toEqual([]);

    const alice = (await api('GET', '/v1/dashboard/overview', undefined, aliceToken)).body;
    expect(alice).toEqual({
      principal: { role: 'tenant', actor: 'tenant:alice', owner: 'alice' },
      counts: { pending: 0, synced: 1, retrying: 0, failed: 0, pull: 0, total: 1, active: 1, inactive: 0 },
      // Which zooid serves which fleet is the operator's business.
      by_target: null,
      failing: [],
      // Verification is off in this planet: never checked.
      live: {
        counts: { live: 0, stale: 0, not_served: 0, unexpected: 0, wrong_identity: 0, unknown: 1 },
        not_live: [],
      },
      fleet: null,
    });
    const bob = (await api('GET', '/v1/dashboard/overview', undefined, bobToken)).body;
    expect(bob.counts).toMatchObject({ total: 1, active: 0, inactive: 1 });
    expect((await api('GET', '/v1/dashboard/overview', undefined, 'wrong')).status).toBe(401);
  });

  it('relay page: history newest first and the acknowledged-vs-current diff with credentials masked', async () => {
    const { status, body } = await api('GET', '/v1/dashboard/relays/sec-1');
    expect(status).toBe(200);
    expect(body.relay).toMatchObject({
      id: 'sec-1',
      version: 2,
      sync: { status: 'failed', synced_version: 1 },
    });
    expect(body.history.map((a: { type: string }) => a.type)).toEqual([
      'fail_relay_sync',
      'update_relay',
      'complete_relay_sync',
      'create_relay',
    ]);
    expect(body.acked).toMatchObject({ version: 1, known: true, at: expect.any(String) });
    expect(body.diff).toEqual([
      { path: 'info.name', acked: 'sec-1', current: 'renamed' },
      { path: 'livekit.api_secret', acked: '(set, hidden)', current: '(set, hidden)' },
    ]);
    expect((await api('GET', '/v1/dashboard/relays/bob-1', undefined, aliceToken)).body.error.code).toBe(
      'relay_not_found',
    );
    expect((await api('GET', '/v1/dashboard/relays/nope')).status).toBe(404);
  });

  it('sync stats: syncs per minute and failure rate over the window, scoped per caller', async () => {
    const admin = (await api('GET', '/v1/stats/syncs?window=1h')).body;
    expect(admin).toMatchObject({
      window_seconds: 3600,
      bucket_seconds: 60,
      synced: 3,
      failed: 1,
      truncated: false,
    });
    expect(admin.failure_rate).toBeCloseTo(0.25);
    expect(admin.buckets).toHaveLength(60);
    const last = admin.buckets.at(-1) as { synced: number; failed: number };
    expect(last.synced + last.failed).toBeGreaterThan(0);
    const alice = (await api('GET', '/v1/stats/syncs', undefined, aliceToken)).body;
    expect(alice).toMatchObject({ synced: 1, failed: 0, failure_rate: 0 });
    expect((await api('GET', '/v1/stats/syncs?window=6h')).body.bucket_seconds).toBe(360);
    const bad = await api('GET', '/v1/stats/syncs?window=forever');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('window');
  });

  it('serves the page without auth, with a strict CSP and cacheable versioned assets', async () => {
    const res = await fetch(`${planet.bosun.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await res.text();
    const js = /src="(\/dashboard\/app\.js\?v=[0-9a-f]+)"/.exec(html)?.[1];
    const css = /href="(\/dashboard\/app\.css\?v=[0-9a-f]+)"/.exec(html)?.[1];
    expect(js).toBeTruthy();
    expect(css).toBeTruthy();
    const script = await fetch(planet.bosun.url + js);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect(script.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(planet.bosun.url + css)).headers.get('content-type')).toContain('text/css');
    expect(html).not.toMatch(/https?:\/\//); // nothing from a CDN
  });

  it('never puts a secret in the page, its assets, the API it uses, the SSE feed or /metrics', async () => {
    const texts: Record<string, string> = {};
    const get = async (path: string, token = ADMIN_TOKEN) => {
      const res = await apiFetch(planet.bosun.url, 'GET', path, undefined, token);
      texts[`${path} (${token === ADMIN_TOKEN ? 'admin' : 'tenant'})`] = await res.text();
      return texts[path];
    };
    await get('/');
    const html = texts['/ (admin)']!;
    await get(/src="([^"]+)"/.exec(html)![1]!);
    await get(/href="(\/dashboard[^"]+)"/.exec(html)![1]!);
    for (const path of [
      '/v1/dashboard/overview',
      '/v1/dashboard/relays/sec-1',
      '/v1/relays?limit=1000',
      '/v1/stats/syncs',
      '/v1/activities?limit=1000',
      '/metrics',
    ]) {
      await get(path);
      await get(path, aliceToken);
    }
    const sse = await openStream(`${planet.bosun.url}/v1/activities/stream?after=0`, {
      authorization: `Bearer ${ADMIN_TOKEN}`,
    });
    await sse.until(ready);
    sse.close();
    texts.sse = sse.raw();
    expect(texts.sse).toContain('fail_relay_sync');
    expect(texts['/v1/dashboard/relays/sec-1 (admin)']).toContain('livekit');
    for (const [where, text] of Object.entries(texts)) {
      for (const secret of [SECRET, LIVEKIT, LIVEKIT2, S3, ADMIN_TOKEN, aliceToken, bobToken]) {
        expect(text.includes(secret), `${where} contains a secret`).toBe(false);
      }
    }
  });

  it('a resync after the fault clears the failure and the diff', async () => {
    planet.zooid.setFaults({});
    expect((await api('POST', '/v1/relays/sec-1/sync')).status).toBe(202);
    await planet.idle();
    const { body } = await api('GET', '/v1/dashboard/relays/sec-1');
    expect(body.relay.sync.status).toBe('synced');
    expect(body.diff).toEqual([]);
    expect(body.history[0].type).toBe('complete_relay_sync');
  });
});

describe('DashboardData.syncStats', () => {
  it('buckets complete/fail syncs per minute inside the window only, whatever the log length', async () => {
    const tmp = tempDir();
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 12, 0, 0));
    const store = new SqliteStore(join(tmp.path, 'b.db'));
    try {
      const command = new Command(store, new Notifier(), clock);
      const query = new Query(store);
      const admin: Principal = { role: 'admin', actor: 'test' };
      const pubkey = keypair().pubkey;
      await command.createRelay(admin, { id: 'a', host: 'a.example.com', info: { pubkey } });
      await command.createRelay(
        { role: 'tenant', owner: 't', actor: 'tenant:t' },
        {
          id: 'b',
          host: 'b.example.com',
          info: { pubkey },
        },
      );
      const fail = (id: string) =>
        command.failRelaySync(id, { version: 1, error: 'boom', attempts: 1, nextAttemptAt: clock.now() + 1 });
      const ok = (id: string) => command.completeRelaySync(id, { version: 1, config: {}, deleted: false });
      // Two hours of history: one sync a minute; the window must see only the last hour's.
      for (let minute = 0; minute < 120; minute++) {
        await ok('a');
        if (minute >= 110) await fail('b');
        await clock.advance(60_000);
      }
      const data = new DashboardData(query, clock);
      const stats = await data.syncStats(admin, 3_600_000);
      expect(stats.since).toBe(new Date(clock.now() - 3_600_000).toISOString());
      expect(stats.synced).toBe(60);
      expect(stats.failed).toBe(10);
      expect(stats.buckets.every((b) => b.synced === 1)).toBe(true);
      expect(stats.buckets.slice(-10).every((b) => b.failed === 1)).toBe(true);
      const tenant = await data.syncStats({ role: 'tenant', owner: 't', actor: 'tenant:t' }, 3_600_000);
      expect([tenant.synced, tenant.failed]).toEqual([0, 10]);
      const capped = await data.syncStats(admin, 3_600_000, 60, 10);
      expect(capped.truncated).toBe(false); // fewer than one page
    } finally {
      await store.close();
      tmp.cleanup();
    }
  });
});

describe('configDiff', () => {
  const base = (over: Partial<Relay['sync']> = {}): Relay => ({
    id: 'r',
    owner: 'o',
    fleet: 'default',
    version: 2,
    createdVersion: 1,
    rev: 2,
    secret: SECRET,
    createdAt: 0,
    updatedAt: 0,
    deletedAt: null,
    expiring: [],
    live: UNKNOWN_LIVE,
    config: {
      host: 'r.example.com',
      schema: 'r',
      inactive: false,
      info: { name: 'n', icon: '', description: '', pubkey: keypair().pubkey },
      policy: { public_join: false, strip_signatures: false },
      groups: { enabled: false },
      management: { enabled: false },
      blossom: { enabled: false, authenticated_read: false },
      livekit: { server_url: '', api_key: '', api_secret: LIVEKIT },
      push: { enabled: false },
      roles: { admin: { pubkeys: [], can_invite: true, can_manage: false } },
    },
    sync: {
      status: 'synced',
      error: '',
      attempts: 0,
      nextAttemptAt: null,
      syncedVersion: 1,
      lastSyncedAt: 0,
      ackedConfig: null,
      ackedDeleted: true,
      ackedSecret: null,
      pushedTarget: null,
      ...over,
    },
  });

  it('is null before zooid acknowledged anything', () => {
    expect(configDiff(base())).toBeNull();
  });

  it('lists changed leaves, added and removed keys, and masks credentials wherever they are', () => {
    const relay = base({ ackedDeleted: false, ackedConfig: {} });
    const acked = {
      host: 'old.example.com',
      schema: 'r',
      inactive: false,
      info: relay.config.info,
      policy: relay.config.policy,
      groups: relay.config.groups,
      management: relay.config.management,
      blossom: { enabled: true, authenticated_read: false, adapter: 's3', s3: { secret_key: S3 } },
      livekit: { server_url: '', api_key: '', api_secret: '' },
      push: relay.config.push,
      roles: { old: { pubkeys: [], can_invite: false, can_manage: false, secret: LIVEKIT2 } },
    };
    relay.sync.ackedConfig = acked;
    const diff = configDiff(relay)!;
    expect(diff).toEqual([
      { path: 'blossom.enabled', acked: true, current: false },
      { path: 'host', acked: 'old.example.com', current: 'r.example.com' },
      { path: 'livekit.api_secret', acked: '', current: '(set, hidden)' },
      { path: 'roles.admin.can_invite', current: true },
      { path: 'roles.admin.can_manage', current: false },
      { path: 'roles.admin.pubkeys', current: [] },
      { path: 'roles.old.can_invite', acked: false },
      { path: 'roles.old.can_manage', acked: false },
      { path: 'roles.old.pubkeys', acked: [] },
      { path: 'roles.old.secret', acked: '(set, hidden)' },
    ]);
    expect(JSON.stringify(diff)).not.toContain(S3);
    expect(JSON.stringify(diff)).not.toContain(LIVEKIT);
  });
});
