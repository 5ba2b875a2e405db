import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../src/domain/keys.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';

/** secp256k1's group order: the first 64-hex value that is not a valid secret key. */
const ORDER = 'fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141';

describe('/v1/targets and fleets pinned to targets', () => {
  let s: TestServer;
  let tenant: string;
  let agent: string;
  const bosunKey = keypair();
  const euKey = keypair();
  const owner = keypair();

  beforeAll(async () => {
    s = await startServer({
      env: {
        // Nothing listens there: relays stay unsynced, which is all these tests need.
        ZOOID_API_URL: 'http://127.0.0.1:9',
        BOSUN_SECRET_KEY: bosunKey.secret,
        BOSUN_RETRY_BASE_MS: '3600000',
      },
    });
    tenant = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    agent = (await s.api('POST', '/v1/tokens', { role: 'agent', fleet: 'edge' })).body.token;
  });
  afterAll(async () => {
    await s?.close();
  });

  const targets = async () => (await s.api('GET', '/v1/targets')).body.targets;
  const fleets = async () => (await s.api('GET', '/v1/fleets')).body.fleets;

  it('registers a target and answers its pubkey, never its key; lists default first', async () => {
    const created = await s.api('POST', '/v1/targets', {
      name: 'eu-1',
      url: 'https://eu-1.zooid.example.com/api',
      secret_key: euKey.secret,
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      name: 'eu-1',
      url: 'https://eu-1.zooid.example.com/api',
      verify_url: null,
      pubkey: euKey.pubkey,
      key: 'own',
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    const list = await targets();
    expect(list.map((t: { name: string }) => t.name)).toEqual(['default', 'eu-1']);
    expect(list[0]).toMatchObject({
      name: 'default',
      url: 'http://127.0.0.1:9',
      pubkey: publicKeyOf(bosunKey.secret),
      key: 'default',
    });
    expect((await s.api('GET', '/v1/targets/eu-1')).body).toMatchObject({
      name: 'eu-1',
      pubkey: euKey.pubkey,
      fleets: [],
      relays: { pending: 0, synced: 0, retrying: 0, failed: 0 },
    });
    const everything = JSON.stringify([list, s.logs]);
    expect(everything).not.toContain(euKey.secret);
    expect(everything).not.toContain(bosunKey.secret);
  });

  it('changes a target with a merge patch: a reset key falls back to BOSUN_SECRET_KEY', async () => {
    const patched = await s.api('PATCH', '/v1/targets/eu-1', {
      url: 'https://eu-1b.zooid.example.com',
      secret_key: null,
      verify_url: 'https://eu-1.example.com',
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      url: 'https://eu-1b.zooid.example.com',
      verify_url: 'https://eu-1.example.com',
      pubkey: publicKeyOf(bosunKey.secret),
      key: 'default',
    });
    const same = await s.api('PATCH', '/v1/targets/eu-1', {});
    expect(same.body).toEqual(patched.body);
    expect((await s.api('PATCH', '/v1/targets/eu-1', { secret_key: euKey.secret })).body).toMatchObject({
      pubkey: euKey.pubkey,
      key: 'own',
    });
  });

  it('pins fleets to targets; GET /v1/fleets lists fleets from relays and from pins with their counts', async () => {
    expect((await s.api('POST', '/v1/relays', relayBody('e1', owner.pubkey, { fleet: 'edge' }))).status).toBe(
      201,
    );
    expect((await s.api('POST', '/v1/relays', relayBody('c1', owner.pubkey, { fleet: 'core' }))).status).toBe(
      201,
    );
    const pin = await s.api('PUT', '/v1/fleets/edge', { target: 'eu-1' });
    // edge's relays were never pushed (nothing answers at ZOOID_API_URL here): none moves.
    expect(pin).toEqual({
      status: 200,
      body: { name: 'edge', target: 'eu-1', moved: { relays: 0, from: [], to: 'eu-1' } },
    });
    expect((await s.api('PUT', '/v1/fleets/agents-only', { target: null })).body).toEqual({
      name: 'agents-only',
      target: null,
      moved: { relays: 0, from: [], to: null },
    });
    const list = await fleets();
    expect(list.map((f: { name: string; target: string | null }) => [f.name, f.target])).toEqual([
      ['agents-only', null],
      ['core', 'default'],
      ['edge', 'eu-1'],
    ]);
    expect(list[2].relays.total).toBe(1);
    expect(list[0].relays.total).toBe(0);
    const eu = (await s.api('GET', '/v1/targets/eu-1')).body;
    expect(eu.fleets).toEqual(['edge']);
    const { pending, synced, retrying, failed } = eu.relays;
    expect(pending + synced + retrying + failed).toBe(1);
    expect((await s.api('GET', '/v1/targets/default')).body.fleets).toEqual(['core']);
    // Back to default, then pinned again for the tests below.
    expect((await s.api('PUT', '/v1/fleets/edge', { target: 'default' })).body.target).toBe('default');
    expect((await s.api('PUT', '/v1/fleets/edge', { target: 'eu-1' })).body.target).toBe('eu-1');
  });

  /** Targets, and fleets with their targets and relay totals (push sync moves the statuses meanwhile). */
  const written = async () =>
    JSON.stringify([
      await targets(),
      (await fleets()).map((f: { name: string; target: string | null; relays: { total: number } }) => [
        f.name,
        f.target,
        f.relays.total,
      ]),
    ]);

  /** Each refusal: its status, a message naming the problem, and nothing written. */
  const refused = async (
    method: string,
    path: string,
    body: unknown,
    status: number,
    message: RegExp,
    token?: string,
  ) => {
    const before = await written();
    const res = await s.api(method, path, body, token);
    expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(status);
    expect(Object.keys(res.body)).toEqual(['error']);
    expect(res.body.error.message).toMatch(message);
    expect(await written()).toBe(before);
  };

  it('refuses bad targets with 400 and writes nothing', async () => {
    const ok = { name: 'us-1', url: 'https://us-1.example.com' };
    await refused(
      'POST',
      '/v1/targets',
      { ...ok, url: 'https://bosun:pw@us-1.example.com' },
      400,
      /credentials/,
    );
    await refused('POST', '/v1/targets', { ...ok, url: 'https://user@us-1.example.com' }, 400, /credentials/);
    await refused('POST', '/v1/targets', { ...ok, url: 'https://us-1.example.com/?a=1' }, 400, /query/);
    await refused('POST', '/v1/targets', { ...ok, url: 'https://us-1.example.com/?' }, 400, /query/);
    await refused('POST', '/v1/targets', { ...ok, url: 'ftp://us-1.example.com' }, 400, /http/);
    await refused('POST', '/v1/targets', { ...ok, url: 'not a url' }, 400, /url/);
    await refused('POST', '/v1/targets', { ...ok, verify_url: 'file:///etc/passwd' }, 400, /verify_url/);
    await refused('POST', '/v1/targets', { ...ok, secret_key: ORDER }, 400, /secret_key/);
    await refused('POST', '/v1/targets', { ...ok, secret_key: '0'.repeat(64) }, 400, /secret_key/);
    await refused('POST', '/v1/targets', { ...ok, secret_key: 'AB'.repeat(32) }, 400, /secret_key/);
    await refused('POST', '/v1/targets', { ...ok, secret_key: 'nsec1abc' }, 400, /secret_key/);
    await refused('POST', '/v1/targets', { ...ok, name: 'Bad Name' }, 400, /name/);
    await refused('POST', '/v1/targets', { ...ok, name: 'default' }, 400, /reserved/);
    await refused('POST', '/v1/targets', { ...ok, name: 'none' }, 400, /reserved/);
    await refused('POST', '/v1/targets', { ...ok, region: 'eu' }, 400, /region: unknown field/);
    await refused('POST', '/v1/targets', { name: 'us-1' }, 400, /url: is required/);
    await refused('PATCH', '/v1/targets/eu-1', { url: 'https://x.example.com?y' }, 400, /query/);
    await refused('PATCH', '/v1/targets/eu-1', { secret_key: ORDER }, 400, /secret_key/);
    await refused('PATCH', '/v1/targets/eu-1', { name: 'eu-2' }, 400, /name: unknown field/);
  });

  it('refuses a duplicate name (409), changes to default (400), unknown targets (404)', async () => {
    await refused(
      'POST',
      '/v1/targets',
      { name: 'eu-1', url: 'https://other.example.com' },
      409,
      /eu-1 already exists/,
    );
    await refused('PATCH', '/v1/targets/default', { url: 'https://x.example.com' }, 400, /ZOOID_API_URL/);
    await refused('DELETE', '/v1/targets/default', undefined, 400, /ZOOID_API_URL/);
    await refused('PATCH', '/v1/targets/mars', { url: 'https://x.example.com' }, 404, /mars/);
    await refused('DELETE', '/v1/targets/mars', undefined, 404, /mars/);
    expect((await s.api('GET', '/v1/targets/mars')).status).toBe(404);
  });

  it('refuses to delete a target a fleet uses (409 naming the fleets), then deletes it once unpinned', async () => {
    await s.api('PUT', '/v1/fleets/edge-2', { target: 'eu-1' });
    await refused('DELETE', '/v1/targets/eu-1', undefined, 409, /used by fleets edge, edge-2/);
    await s.api('PUT', '/v1/fleets/edge-2', { target: null });
    await refused('DELETE', '/v1/targets/eu-1', undefined, 409, /used by fleet edge;/);
    await s.api('PUT', '/v1/fleets/edge', { target: 'default' });
    expect((await s.api('DELETE', '/v1/targets/eu-1')).status).toBe(204);
    expect((await targets()).map((t: { name: string }) => t.name)).toEqual(['default']);
    await s.api('POST', '/v1/targets', {
      name: 'eu-1',
      url: 'https://eu-1.example.com',
      secret_key: euKey.secret,
    });
    await s.api('PUT', '/v1/fleets/edge', { target: 'eu-1' });
  });

  it('refuses a pin to an unknown target (400 naming it) or a bad fleet name, writing nothing', async () => {
    await refused('PUT', '/v1/fleets/edge', { target: 'mars' }, 400, /"mars" does not exist/);
    await refused('PUT', '/v1/fleets/new-fleet', { target: 'mars' }, 400, /"mars" does not exist/);
    await refused('PUT', '/v1/fleets/edge', { target: 'Not A Name' }, 400, /target/);
    await refused('PUT', '/v1/fleets/edge', {}, 400, /target/);
    await refused('PUT', '/v1/fleets/edge', { target: 'eu-1', extra: 1 }, 400, /extra: unknown field/);
    await refused('PUT', '/v1/fleets/Bad_Fleet', { target: 'eu-1' }, 400, /fleet/);
  });

  it('answers 403 to tenant and agent tokens on every target route and on fleet targets', async () => {
    for (const token of [tenant, agent]) {
      await refused('GET', '/v1/targets', undefined, 403, /admin/, token);
      await refused('GET', '/v1/targets/eu-1', undefined, 403, /admin/, token);
      await refused(
        'POST',
        '/v1/targets',
        { name: 'us-1', url: 'https://us-1.example.com' },
        403,
        /admin/,
        token,
      );
      await refused('PATCH', '/v1/targets/eu-1', { url: 'https://x.example.com' }, 403, /admin/, token);
      await refused('DELETE', '/v1/targets/eu-1', undefined, 403, /admin/, token);
      await refused('PUT', '/v1/fleets/edge', { target: null }, 403, /admin/, token);
      await refused('GET', '/v1/fleets', undefined, 403, /admin/, token);
    }
  });
});

describe('/v1/targets without ZOOID_API_URL or BOSUN_SECRET_KEY', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('lists no default, and a target needs its own key (nothing else could sign)', async () => {
    expect((await s.api('GET', '/v1/targets')).body).toEqual({ targets: [] });
    expect((await s.api('GET', '/v1/targets/default')).status).toBe(404);
    const keyless = await s.api('POST', '/v1/targets', { name: 'eu-1', url: 'http://127.0.0.1:3334' });
    expect(keyless.status).toBe(400);
    expect(keyless.body.error.message).toMatch(/secret_key: is required/);
    expect((await s.api('GET', '/v1/targets')).body).toEqual({ targets: [] });
    const key = keypair();
    const created = await s.api('POST', '/v1/targets', {
      name: 'eu-1',
      url: 'http://127.0.0.1:3334',
      secret_key: key.secret,
    });
    expect(created.body).toMatchObject({ name: 'eu-1', pubkey: key.pubkey, key: 'own' });
    const reset = await s.api('PATCH', '/v1/targets/eu-1', { secret_key: null });
    expect(reset.status).toBe(400);
    expect((await s.api('GET', '/v1/targets/eu-1')).body.pubkey).toBe(key.pubkey);
  });
});
