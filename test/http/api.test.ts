import { createHash } from 'node:crypto';
import { finalizeEvent } from 'nostr-tools/pure';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { issueTokens, keypair, relayBody, startServer, type TestServer } from '../support/env.js';

describe('HTTP API', () => {
  let s: TestServer;
  const owner = keypair();
  const secret = keypair().secret;
  let tokens: Awaited<ReturnType<typeof issueTokens>>;

  beforeAll(async () => {
    s = await startServer();
    tokens = await issueTokens(s, 'edge');
  });
  afterAll(async () => {
    await s.close();
  });

  it('serves health, readiness and metrics without auth', async () => {
    expect(await s.api('GET', '/healthz', undefined, '')).toEqual({
      status: 200,
      body: { status: 'ok', version: VERSION },
    });
    const ready = await s.api('GET', '/readyz', undefined, '');
    // One process on SQLite holds the worker lease.
    expect(ready).toEqual({
      status: 200,
      body: { status: 'ready', checks: { database: 'ok', lease: 'holder' } },
    });
    const metrics = await fetch(`${s.url}/metrics`).then((r) => r.text());
    expect(metrics).toContain('bosun_relays{status="pending"}');
    expect(metrics).toMatch(/^bosun_relays_live\{status="wrong_identity"\} 0$/m);
    expect(metrics).toContain('# TYPE bosun_live_check_seconds histogram');
    expect(metrics).toContain('bosun_http_requests_total');
    expect(metrics).toMatch(/^bosun_agents_connected 0$/m);
    expect(metrics).toMatch(/^bosun_stream_events_sent_total 0$/m);
    expect(metrics).toMatch(/bosun_worker_lease_held\{replica="[^"]+"\} 1/);
  });

  it('creates, reads, lists, updates, deactivates, resyncs and deletes a relay', async () => {
    const created = await s.api('POST', '/v1/relays', { ...relayBody('crud', owner.pubkey), secret });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      id: 'crud',
      version: 1,
      config: { schema: 'crud', host: 'crud.example.com' },
    });
    expect((await s.api('GET', '/v1/relays/crud')).body.config.info.pubkey).toBe(owner.pubkey);
    // Live status beside sync: never checked (no zooid to read back from here).
    expect(created.body.live).toEqual({ status: 'unknown', checked_at: null, error: '' });
    const unknown = await s.api('GET', '/v1/relays?live=unknown&limit=1000');
    expect(unknown.body.relays.map((r: { id: string }) => r.id)).toContain('crud');
    expect((await s.api('GET', '/v1/relays?live=stale')).body.relays).toEqual([]);
    expect((await s.api('GET', '/v1/relays?live=bogus')).status).toBe(400);
    const patched = await s.api('PATCH', '/v1/relays/crud', { policy: { public_join: true } });
    expect(patched.body).toMatchObject({ version: 2, config: { policy: { public_join: true } } });
    expect((await s.api('POST', '/v1/relays/crud/deactivate')).body.config.inactive).toBe(true);
    expect((await s.api('POST', '/v1/relays/crud/activate')).body.config.inactive).toBe(false);
    expect((await s.api('POST', '/v1/relays/crud/sync')).status).toBe(202);
    const list = await s.api('GET', '/v1/relays?limit=1000');
    expect(list.body.relays.map((r: { id: string }) => r.id)).toContain('crud');
    const acts = await s.api('GET', '/v1/activities?relay=crud');
    expect(acts.body.activities.map((a: { type: string }) => a.type)).toEqual([
      'create_relay',
      'update_relay',
      'deactivate_relay',
      'activate_relay',
      'resync_relay',
    ]);
    expect((await s.api('DELETE', '/v1/relays/crud')).body.deleted).toBe(true);
    expect((await s.api('GET', '/v1/relays/crud')).status).toBe(404);
    // Nothing the API returned ever contained the secret.
    for (const body of [created.body, patched.body, list.body, acts.body]) {
      expect(JSON.stringify(body)).not.toContain(secret);
    }
  });

  it('paginates with a cursor', async () => {
    for (const id of ['pg-1', 'pg-2', 'pg-3']) {
      await s.api('POST', '/v1/relays', relayBody(id, owner.pubkey, { owner: 'pager' }));
    }
    const first = await s.api('GET', '/v1/relays?owner=pager&limit=2');
    expect(first.body.relays.map((r: { id: string }) => r.id)).toEqual(['pg-1', 'pg-2']);
    expect(first.body.next).toBe('pg-2');
    const second = await s.api('GET', `/v1/relays?owner=pager&limit=2&after=${first.body.next}`);
    expect(second.body).toMatchObject({ next: null });
    expect(second.body.relays.map((r: { id: string }) => r.id)).toEqual(['pg-3']);
  });

  it('isolates tenants: another tenant’s relay is 404, lists are scoped', async () => {
    const mine = await s.api('POST', '/v1/relays', relayBody('alice-1', owner.pubkey), tokens.alice);
    expect(mine.status).toBe(201);
    expect(mine.body.owner).toBe('alice');
    for (const [method, path, body] of [
      ['GET', '/v1/relays/alice-1', undefined],
      ['PATCH', '/v1/relays/alice-1', { inactive: true }],
      ['POST', '/v1/relays/alice-1/deactivate', undefined],
      ['POST', '/v1/relays/alice-1/sync', undefined],
      ['DELETE', '/v1/relays/alice-1', undefined],
      ['GET', '/v1/activities?relay=alice-1', undefined],
    ] as const) {
      const res = await s.api(method, path, body, tokens.bob);
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(res.body.error.code).toBe('relay_not_found');
    }
    const bobList = await s.api('GET', '/v1/relays', undefined, tokens.bob);
    expect(bobList.body.relays).toEqual([]);
    expect((await s.api('GET', '/v1/relays?owner=alice', undefined, tokens.bob)).body.relays).toEqual([]);
    const bobActs = await s.api('GET', '/v1/activities', undefined, tokens.bob);
    expect(bobActs.body.activities).toEqual([]);
    expect(
      (await s.api('GET', '/v1/relays', undefined, tokens.alice)).body.relays.map(
        (r: { id: string }) => r.id,
      ),
    ).toEqual(['alice-1']);
    // Tenants cannot manage tokens; agents cannot write.
    expect((await s.api('POST', '/v1/tokens', { role: 'admin' }, tokens.alice)).status).toBe(403);
    expect((await s.api('POST', '/v1/relays', relayBody('ag', owner.pubkey), tokens.agent)).status).toBe(403);
    expect((await s.api('GET', '/v1/relays/alice-1', undefined, tokens.agent)).status).toBe(404);
  });

  it('refuses every admin route to tenants and agents with 403, before reading the request', async () => {
    // Every route the API document marks admin-only, with made-up path parameters and body.
    const doc = (await s.api('GET', '/v1/openapi.json', undefined, '')).body as {
      paths: Record<string, Record<string, { description?: string }>>;
    };
    const adminRoutes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => op.description?.endsWith('An admin token.'))
        .map(([method, _op]) => [method.toUpperCase(), path.replace(/\{[^}]+\}/g, 'no-such')] as const),
    );
    expect(adminRoutes.map(([m, p]) => `${m} ${p}`)).toEqual(
      expect.arrayContaining([
        'GET /v1/tokens',
        'POST /v1/tokens',
        'DELETE /v1/tokens/no-such',
        'GET /v1/targets',
      ]),
    );
    for (const [method, path] of adminRoutes) {
      for (const token of [tokens.alice, tokens.agent]) {
        const res = await s.api(
          method,
          path,
          ['GET', 'DELETE'].includes(method) ? undefined : { bogus: 1 },
          token,
        );
        expect(res.status, `${method} ${path}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      }
    }
  });

  it('answers bad input with a clear JSON error and changes nothing', async () => {
    await s.api('POST', '/v1/relays', relayBody('taken', owner.pubkey));
    const before = await snapshot(s);
    const big = JSON.stringify({
      ...relayBody('big', owner.pubkey),
      info: { pubkey: owner.pubkey, description: 'x'.repeat(1_100_000) },
    });
    const cases: [string, string, unknown, number, string, RegExp][] = [
      ['POST', '/v1/relays', '{"id": "x",', 400, 'invalid_json', /body is not valid JSON/],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u1', owner.pubkey), colour: 'red' },
        400,
        'invalid_request',
        /colour: unknown field/,
      ],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u2', owner.pubkey), inactive: 'yes' },
        400,
        'invalid_request',
        /inactive: /,
      ],
      ['POST', '/v1/relays', relayBody('Bad_ID', owner.pubkey), 400, 'invalid_request', /^id: must match/],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u3', owner.pubkey), schema: 'Upper' },
        400,
        'invalid_request',
        /^schema: /,
      ],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u4', owner.pubkey), host: 'https://x.com/' },
        400,
        'invalid_request',
        /^host: /,
      ],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u5', owner.pubkey), secret: '00'.repeat(32) },
        400,
        'invalid_request',
        /^secret: /,
      ],
      [
        'POST',
        '/v1/relays',
        relayBody('u6', 'ab'.repeat(32).replace(/^ab/, 'zz')),
        400,
        'invalid_request',
        /^info.pubkey: /,
      ],
      [
        'POST',
        '/v1/relays',
        { id: 'u7', host: 'u7.example.com' },
        400,
        'invalid_request',
        /^info: is required/,
      ],
      ['POST', '/v1/relays', [1, 2], 400, 'invalid_request', /expected object/],
      ['POST', '/v1/relays', relayBody('taken', owner.pubkey), 409, 'id_conflict', /already exists/],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u8', owner.pubkey), host: 'taken.example.com' },
        409,
        'host_conflict',
        /^host: /,
      ],
      [
        'POST',
        '/v1/relays',
        { ...relayBody('u9', owner.pubkey), schema: 'taken' },
        409,
        'schema_conflict',
        /^schema: /,
      ],
      ['POST', '/v1/relays', big, 413, 'body_too_large', /1 MiB/],
      ['PATCH', '/v1/relays/taken', { schema: 'other' }, 400, 'invalid_request', /schema: is immutable/],
      [
        'PATCH',
        '/v1/relays/taken',
        { roles: { admin: { pubkeys: ['nope'] } } },
        400,
        'invalid_request',
        /roles.admin.pubkeys.0: /,
      ],
      ['PATCH', '/v1/relays/nope', { inactive: true }, 404, 'relay_not_found', /"nope" not found/],
      ['DELETE', '/v1/relays/nope', undefined, 404, 'relay_not_found', /not found/],
      ['GET', '/v1/relays?limit=0', undefined, 400, 'invalid_request', /^limit: /],
      ['GET', '/v1/relays?sort=desc', undefined, 400, 'invalid_request', /sort: unknown field/],
      ['GET', '/v1/nothing', undefined, 404, 'not_found', /no route/],
    ];
    for (const [method, path, body, status, code, message] of cases) {
      const res = await s.api(method, path, body);
      expect(res.status, `${method} ${path} ${String(body).slice(0, 40)}`).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message).toMatch(message);
    }
    for (const token of ['', 'wrong-token', 'bosun_nope']) {
      const res = await s.api('POST', '/v1/relays', relayBody('u10', owner.pubkey), token);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
    }
    expect(await snapshot(s)).toEqual(before);
  });

  it('revoked and expired tokens are refused', async () => {
    const created = await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'carol' });
    expect((await s.api('GET', '/v1/relays', undefined, created.body.token)).status).toBe(200);
    expect((await s.api('DELETE', `/v1/tokens/${created.body.id}`)).status).toBe(204);
    expect((await s.api('GET', '/v1/relays', undefined, created.body.token)).status).toBe(401);
    expect((await s.api('DELETE', `/v1/tokens/${created.body.id}`)).status).toBe(404);
    const listed = await s.api('GET', '/v1/tokens');
    expect(JSON.stringify(listed.body)).not.toContain(created.body.token);
    expect((await s.api('POST', '/v1/tokens', { role: 'tenant' })).body.error.message).toBe(
      'owner: is required for a tenant token',
    );
  });

  it('accepts NIP-98 for a registered tenant whose owner id is its pubkey', async () => {
    const tenant = keypair();
    await s.api('POST', '/v1/tokens', { role: 'tenant', owner: tenant.pubkey });
    const body = JSON.stringify(relayBody('nostr-1', tenant.pubkey));
    const sign = (
      url: string,
      method: string,
      payload?: string,
      created_at = Math.floor(Date.now() / 1000),
    ) => {
      const tags = [
        ['u', url],
        ['method', method],
      ];
      if (payload) tags.push(['payload', createHash('sha256').update(payload).digest('hex')]);
      const ev = finalizeEvent(
        { kind: 27235, created_at, tags, content: '' },
        Buffer.from(tenant.secret, 'hex'),
      );
      return `Nostr ${Buffer.from(JSON.stringify(ev)).toString('base64')}`;
    };
    const call = (method: string, path: string, auth: string, b?: string) =>
      fetch(s.url + path, {
        method,
        headers: { authorization: auth, ...(b ? { 'content-type': 'application/json' } : {}) },
        ...(b ? { body: b } : {}),
      });
    const created = sign(`${s.url}/v1/relays`, 'POST', body);
    const ok = await call('POST', '/v1/relays', created, body);
    expect(ok.status).toBe(201);
    expect(((await ok.json()) as any).owner).toBe(tenant.pubkey);
    // Replaying a state-changing request's header is refused…
    expect((await call('POST', '/v1/relays', created, body)).status).toBe(401);
    // …a read's is not: two identical GETs in one second are the same event.
    const header = sign(`${s.url}/v1/relays/nostr-1`, 'GET');
    expect((await call('GET', '/v1/relays/nostr-1', header)).status).toBe(200);
    expect((await call('GET', '/v1/relays/nostr-1', header)).status).toBe(200);
    const refusals: [string, string, string, string | undefined][] = [
      [sign(`${s.url}/v1/relays/other`, 'GET'), 'GET', '/v1/relays/nostr-1', undefined],
      [sign(`${s.url}/v1/relays/nostr-1`, 'DELETE'), 'GET', '/v1/relays/nostr-1', undefined],
      [
        sign(`${s.url}/v1/relays/nostr-1`, 'GET', undefined, Math.floor(Date.now() / 1000) - 120),
        'GET',
        '/v1/relays/nostr-1',
        undefined,
      ],
      [sign(`${s.url}/v1/relays`, 'POST', '{"other":1}'), 'POST', '/v1/relays', body],
    ];
    for (const [auth, method, path, b] of refusals) {
      expect((await call(method, path, auth, b)).status).toBe(401);
    }
    // An unregistered key is refused even with a valid signature.
    const stranger = keypair();
    const ev = finalizeEvent(
      {
        kind: 27235,
        created_at: Math.floor(Date.now() / 1000),
        tags: [
          ['u', `${s.url}/v1/relays`],
          ['method', 'GET'],
        ],
        content: '',
      },
      Buffer.from(stranger.secret, 'hex'),
    );
    const res = await call(
      'GET',
      '/v1/relays',
      `Nostr ${Buffer.from(JSON.stringify(ev)).toString('base64')}`,
    );
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.message).toBe(
      'this Nostr public key is not a registered tenant',
    );
  });

  it('never writes secrets or tokens to the log', async () => {
    const sec = keypair().secret;
    await s.api('POST', '/v1/relays', {
      ...relayBody('logged', owner.pubkey),
      secret: sec,
      livekit: { api_secret: 'lk-very-secret' },
    });
    const joined = s.logs.join('\n');
    expect(joined).not.toContain(sec);
    expect(joined).not.toContain('lk-very-secret');
    expect(joined).not.toContain(tokens.alice);
    expect(joined).not.toContain('test-admin-token');
    const shown = await s.api('GET', '/v1/relays/logged');
    expect(shown.body.config.livekit).toEqual({ server_url: '', api_key: '', api_secret_set: true });
    expect(JSON.stringify(shown.body)).not.toContain('lk-very-secret');
  });

  it('logs one JSON object per line with each key once', async () => {
    expect(s.logs.length).toBeGreaterThan(0);
    for (const line of s.logs) {
      // JSON.parse keeps the last of two equal keys, so count them in the text.
      expect(line.match(/"service":/g)?.length, line).toBe(1);
      expect(JSON.parse(line)).toMatchObject({ service: 'bosun' });
    }
  });
});

async function snapshot(s: TestServer) {
  const relays = await s.peer.store.listRelays({ limit: 10_000, includeDeleted: true });
  return { relays, lastActivity: await s.peer.store.lastActivityId() };
}
