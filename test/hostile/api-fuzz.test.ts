import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { printSeed, rawRequest, runs, snapshot } from './helpers.js';

/**
 * Property-based fuzzing of every API body, query string, path and header (fast-check, fixed seed).
 * Whatever arrives: never a 5xx, the server stays up, and a refused request writes nothing — the
 * relays (tombstones included), the activity log and the tokens stay exactly as they were.
 */
describe('hostile input: API fuzz', () => {
  let s: TestServer;
  const owner = keypair();
  let aliceToken: string;
  let agentToken: string;
  let revokedToken: string;

  beforeAll(async () => {
    printSeed('api-fuzz');
    s = await startServer();
    aliceToken = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    agentToken = (await s.api('POST', '/v1/tokens', { role: 'agent', fleet: 'default' })).body.token;
    const revoked = await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'mallory' });
    revokedToken = revoked.body.token;
    await s.api('DELETE', `/v1/tokens/${revoked.body.id}`);
    expect(
      (await s.api('POST', '/v1/relays', relayBody('target', owner.pubkey, { owner: 'alice' }))).status,
    ).toBe(201);
    expect((await s.api('POST', '/v1/relays', relayBody('other', owner.pubkey))).status).toBe(201);
  });
  afterAll(async () => {
    await s.close();
  });

  const send = async (method: string, path: string, body: string | undefined, token: string, ct?: string) => {
    const res = await fetch(s.url + path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': ct ?? 'application/json' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.text();
    return { status: res.status, text };
  };

  /**
   * Sends one request and checks the contract: no 5xx, a JSON error on refusal, and no write unless
   * the request succeeded. Returns the status.
   */
  const probe = async (
    method: string,
    path: string,
    body: string | undefined,
    token: string,
    ct?: string,
  ) => {
    const before = await snapshot(s);
    const res = await send(method, path, body, token, ct);
    const label = `${method} ${path} ${String(body).slice(0, 200)}`;
    expect(res.status, label).toBeLessThan(500);
    if (res.status >= 400) {
      expect(JSON.parse(res.text).error.code, label).toMatch(/^[a-z_]+$/);
      expect(await snapshot(s), label).toEqual(before);
    }
    return res.status;
  };

  // Values that look like what the API expects, and values that don't.
  const hostile = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.constantFrom(
      null,
      '',
      0,
      -1,
      1e308,
      Number.MAX_SAFE_INTEGER + 2,
      '00'.repeat(32),
      'ff'.repeat(32),
      '__proto__',
      'constructor',
      'a'.repeat(70),
      '../../etc/passwd',
      '\u0000',
      '😀',
      'DROP TABLE relays;--',
      "' OR 1=1 --",
      { $gt: '' },
      [],
      {},
      true,
    ),
    fc.string({ unit: 'binary', maxLength: 80 }),
  );
  const fields = [
    'id',
    'host',
    'schema',
    'secret',
    'owner',
    'fleet',
    'inactive',
    'info',
    'policy',
    'groups',
    'management',
    'blossom',
    'livekit',
    'push',
    'roles',
    'extra',
  ];
  const nested = [
    'info.pubkey',
    'info.name',
    'info.description',
    'policy.public_join',
    'roles.admin.pubkeys',
  ];
  /** A valid relay body with 1-3 fields replaced by hostile values (or a raw hostile value). */
  const relayLike = (id: string) =>
    fc
      .oneof(
        {
          weight: 3,
          arbitrary: fc.array(fc.tuple(fc.constantFrom(...fields, ...nested), hostile), {
            minLength: 1,
            maxLength: 3,
          }),
        },
        { weight: 1, arbitrary: hostile },
      )
      .map((edits) => {
        if (
          !Array.isArray(edits) ||
          !edits.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string')
        )
          return edits;
        const body: Record<string, any> = structuredClone(relayBody(id, owner.pubkey));
        for (const [path, value] of edits as [string, unknown][]) {
          const keys = path.split('.');
          let at = body;
          for (const k of keys.slice(0, -1)) {
            if (typeof at[k] !== 'object' || at[k] === null) at[k] = {};
            at = at[k];
          }
          at[keys.at(-1)!] = value;
        }
        return body;
      });
  const asBody = (v: unknown) =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constant(JSON.stringify(v) ?? 'undefined') },
      { weight: 1, arbitrary: fc.constant(JSON.stringify(v)?.slice(0, -1) ?? '{') },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }) },
    );

  it('POST /v1/relays: hostile bodies never 5xx and refused ones write nothing', async () => {
    let created = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 1e6 }).chain((n) => relayLike(`fz-${n}`).chain(asBody)),
        fc.constantFrom('admin', 'alice'),
        async (body, who) => {
          if (
            (await probe('POST', '/v1/relays', body, who === 'admin' ? '' + adminToken() : aliceToken)) ===
            201
          )
            created++;
        },
      ),
      runs(250),
    );
    console.log(`api-fuzz: ${created} of the hostile relay bodies were valid and created a relay`);
  });

  it('PATCH /v1/relays/:id: hostile merge patches never 5xx and refused ones write nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .oneof(
            fc
              .array(fc.tuple(fc.constantFrom(...fields, ...nested), hostile), { minLength: 1, maxLength: 3 })
              .map((edits) => Object.fromEntries(edits)),
            hostile,
          )
          .chain(asBody),
        fc.constantFrom(
          'application/json',
          'application/merge-patch+json',
          'text/plain',
          'application/x-www-form-urlencoded',
        ),
        fc.constantFrom('target', 'other', 'nope', '%00', 'TARGET', 'target%2F..'),
        async (body, ct, id) => {
          await probe('PATCH', `/v1/relays/${id}`, body, adminToken(), ct);
          // Another tenant never changes alice's relay, whatever it sends.
          if (id === 'target') await probe('PATCH', `/v1/relays/${id}`, body, agentToken, ct);
        },
      ),
      runs(200),
    );
  });

  it('every other body route: hostile bodies never 5xx and refused ones write nothing', async () => {
    const routes: [string, string][] = [
      ['POST', '/v1/relays/target/rotate-secret'],
      ['POST', '/v1/relays/target/activate'],
      ['POST', '/v1/relays/target/deactivate'],
      ['POST', '/v1/relays/target/sync'],
      ['POST', '/v1/tokens'],
      ['POST', '/v1/fleets/fz/plan'],
      ['POST', '/v1/fleets/fz/apply'],
      ['POST', '/v1/activities/stream-ticket'],
    ];
    const fleetLike = fc.record({
      defaults: hostile,
      relays: fc.array(fc.record({ name: hostile, config: fc.oneof(hostile, relayLike('fl-1')) }), {
        maxLength: 3,
      }),
      prune: hostile,
    });
    const tokenLike = fc.record(
      {
        role: fc.oneof(fc.constantFrom('admin', 'tenant', 'agent'), hostile),
        owner: hostile,
        fleet: hostile,
        expires_in_seconds: hostile,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        fc.oneof(hostile, fleetLike, tokenLike, fc.record({ grace_seconds: hostile })).chain(asBody),
        fc.constantFrom('admin', 'alice', 'agent', 'revoked'),
        async ([method, path], body, who) => {
          const token = { admin: adminToken(), alice: aliceToken, agent: agentToken, revoked: revokedToken }[
            who
          ];
          await probe(method, path, body, token);
        },
      ),
      runs(200),
    );
  });

  it('query strings and path parameters: never 5xx, never a write', async () => {
    const paths = [
      '/v1/relays',
      '/v1/activities',
      '/v1/fleets/fz/states',
      '/v1/relays/target',
      '/v1/dashboard/overview',
      '/v1/dashboard/relays/target',
      '/v1/stats/syncs',
      '/v1/tokens',
      '/v1/targets',
    ];
    const qsValue = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.constantFrom(
        '-1',
        '0',
        '1e9',
        'NaN',
        '1.5',
        '%',
        '%zz',
        '%00',
        '[]',
        'a'.repeat(300),
        '999999999999999999999',
      ),
    );
    const query = fc.oneof(
      fc
        .dictionary(
          fc.oneof(
            fc.constantFrom(
              'owner',
              'fleet',
              'status',
              'after',
              'before',
              'limit',
              'relay',
              'window',
              'tail',
            ),
            fc.string({ maxLength: 10 }),
          ),
          qsValue,
          { maxKeys: 4 },
        )
        .map((d) => new URLSearchParams(d).toString()),
      fc.string({ unit: 'binary-ascii', maxLength: 60 }).map((q) => encodeURI(q)),
    );
    const segment = fc.oneof(
      fc.webSegment(),
      fc.string({ unit: 'binary', maxLength: 80 }).map(encodeURIComponent),
      fc.constantFrom('..', '%2e%2e', '%2F', 'target%00', 'a'.repeat(5000), '%ff%fe'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...paths),
        query,
        segment,
        fc.constantFrom('admin', 'alice', 'agent'),
        async (path, q, seg, who) => {
          const token = { admin: adminToken(), alice: aliceToken, agent: agentToken }[who];
          const before = await snapshot(s);
          for (const p of [
            `${path}?${q}`,
            path.replace(/target|fz/, seg),
            `/v1/relays/${seg}/activate?${q}`,
          ]) {
            const method = p.includes('/activate') ? 'POST' : 'GET';
            const res = await send(
              method,
              p,
              undefined,
              who === 'admin' && method === 'POST' ? agentToken : token,
            );
            expect(res.status, p).toBeLessThan(500);
          }
          expect(await snapshot(s)).toEqual(before);
        },
      ),
      runs(150),
    );
  });

  it('raw requests (methods, paths, headers, framing): never 5xx, never a write', async () => {
    const methods = fc.oneof(
      fc.constantFrom('GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT'),
      fc.string({ unit: fc.constantFrom(...'ABCXYZ-_'), minLength: 1, maxLength: 8 }),
    );
    const routePaths = [
      '/v1/relays',
      '/v1/relays/target',
      '/v1/relays/target/deactivate',
      '/v1/relays/target/rotate-secret',
      '/v1/tokens',
      '/v1/fleets/fz/apply',
      '/v1/stream',
      '/v1/activities/stream',
      '/healthz',
      '/',
      '*',
      '//v1//relays',
      'http://evil.example/v1/relays',
    ];
    const headerName = fc.oneof(
      fc.constantFrom(
        'content-type',
        'content-length',
        'transfer-encoding',
        'authorization',
        'host',
        'x-forwarded-for',
        'x-forwarded-proto',
        'x-forwarded-host',
        'accept',
        'last-event-id',
        'bosun-epoch',
        'bosun-held-versions',
        'connection',
        'expect',
      ),
      fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 20 }),
    );
    const headerValue = fc.oneof(
      fc.constantFrom(
        'application/json',
        'chunked',
        '-1',
        '99999999999',
        'Bearer ',
        'Nostr ',
        'Nostr e30=',
        'Bearer bosun_forged',
        '100-continue',
        'text/event-stream',
        'target=9007199254740993',
      ),
      fc.string({ unit: 'binary-ascii', maxLength: 60 }),
    );
    // Credentials that must never be able to write: none, forged, revoked, an agent's.
    const auth = fc.constantFrom(
      '',
      'Bearer bosun_forged',
      `Bearer ${revokedToken}`,
      `Bearer ${agentToken}`,
      'Basic YTpi',
    );
    await fc.assert(
      fc.asyncProperty(
        methods,
        fc.oneof(fc.constantFrom(...routePaths), fc.string({ unit: 'binary-ascii', maxLength: 40 })),
        fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
        auth,
        fc.oneof(fc.constant(''), fc.json(), fc.string({ unit: 'binary-ascii', maxLength: 100 })),
        fc.boolean(),
        async (method, path, headers, authHeader, body, withLength) => {
          const before = await snapshot(s);
          const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
          if (authHeader) lines.push(`Authorization: ${authHeader}`);
          for (const [k, v] of headers) lines.push(`${k}: ${v}`);
          if (withLength) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
          const res = await rawRequest(s.url, `${lines.join('\r\n')}\r\n\r\n${body}`);
          expect(res.status, `${lines.join(' | ')} -> ${res.head}`).toBeLessThan(500);
          expect(await snapshot(s)).toEqual(before);
        },
      ),
      runs(250),
    );
    // Still serving.
    expect((await send('GET', '/healthz', undefined, '')).status).toBe(200);
  });
});

function adminToken(): string {
  return 'test-admin-token-0123456789';
}
