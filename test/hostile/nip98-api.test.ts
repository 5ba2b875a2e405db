import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import type { FastifyRequest } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Nip98Verifier } from '../../src/auth/nip98.js';
import { TokenService } from '../../src/auth/tokens.js';
import { Authenticator } from '../../src/http/auth.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../support/clock.js';
import { ADMIN_TOKEN, keypair, relayBody, startServer, type TestServer, tempDir } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { rawRequest, snapshot } from './helpers.js';

/**
 * bosun's own NIP-98 sign-in against hostile clients: credentials are judged before a body is read
 * (only the payload hash waits for it), malformed events are 401 whatever their shape, and a
 * state-changing event is accepted once per database — across restarts and replicas.
 */
type Tag = unknown[];

/**
 * A NIP-98 event for `url`/`method` (and `body`'s payload hash), or with the tags given, signed
 * whatever JSON they hold (nostr-tools refuses to sign malformed tags; a forger would not).
 */
function signEvent(
  secret: string,
  fields: { url: string; method: string; body?: string; created_at?: number; tags?: Tag[] },
) {
  const tags = fields.tags ?? [
    ['u', fields.url],
    ['method', fields.method],
    ...(fields.body ? [['payload', createHash('sha256').update(fields.body).digest('hex')]] : []),
  ];
  const pubkey = Buffer.from(schnorr.getPublicKey(Buffer.from(secret, 'hex'))).toString('hex');
  const created_at = fields.created_at ?? Math.floor(Date.now() / 1000);
  const hash = createHash('sha256')
    .update(JSON.stringify([0, pubkey, created_at, 27235, tags, '']))
    .digest();
  const sig = Buffer.from(schnorr.sign(hash, Buffer.from(secret, 'hex'))).toString('hex');
  return { id: hash.toString('hex'), pubkey, created_at, kind: 27235, tags, content: '', sig };
}
const header = (ev: unknown) => `Nostr ${Buffer.from(JSON.stringify(ev)).toString('base64')}`;

async function call(url: string, method: string, path: string, authorization: string, body?: string) {
  const res = await fetch(url + path, {
    method,
    headers: { authorization, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe('hostile input: NIP-98 and credentials before the body', () => {
  let s: TestServer;
  const tenant = keypair();

  beforeAll(async () => {
    s = await startServer();
    await s.api('POST', '/v1/tokens', { role: 'tenant', owner: tenant.pubkey });
    expect(
      (await s.api('POST', '/v1/relays', relayBody('n-r', tenant.pubkey, { owner: tenant.pubkey }))).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await s.close();
  });

  const head = (method: string, path: string, authorization: string, length: number) =>
    [
      `${method} ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      `Authorization: ${authorization}`,
      'Content-Type: application/json',
      `Content-Length: ${length}`,
    ]
      .join('\r\n')
      .concat('\r\n\r\n');

  it('refuses anything but a good Bearer or a well-formed, signed, fresh Nostr header before the body', async () => {
    const before = await snapshot(s);
    const fleet = '/v1/fleets/x/plan';
    const url = (path: string) => `${s.url}${path}`;
    const stranger = keypair();
    const refusals: [string, string][] = [
      [fleet, 'Basic dXNlcjpwYXNz'],
      [fleet, 'Nostr x'],
      [fleet, 'Foo'],
      [fleet, 'Bearer'],
      [fleet, 'Bearer bosun_forged'],
      // Signed and fresh, but for another URL / method / by an unregistered key / too old.
      [fleet, header(signEvent(tenant.secret, { url: url('/v1/fleets/y/plan'), method: 'POST' }))],
      [fleet, header(signEvent(tenant.secret, { url: url(fleet), method: 'PUT' }))],
      [fleet, header(signEvent(stranger.secret, { url: url(fleet), method: 'POST' }))],
      [
        fleet,
        header(
          signEvent(tenant.secret, {
            url: url(fleet),
            method: 'POST',
            created_at: Math.floor(Date.now() / 1000) - 120,
          }),
        ),
      ],
      ['/v1/relays', 'Basic dXNlcjpwYXNz'],
      ['/v1/relays', 'Nostr x'],
    ];
    for (const [path, authorization] of refusals) {
      // Only the head is sent: an answer proves nothing waited for the 62 MB announced.
      const res = await rawRequest(
        s.url,
        head('POST', path, authorization, path === fleet ? 62_000_000 : 500_000),
        3000,
      );
      expect(res.status, `${path} ${authorization.slice(0, 40)}`).toBe(401);
      // …and the connection closes rather than take the body in for nothing.
      expect(res.head).toMatch(/^connection: close$/im);
    }
    // A valid credential with a body over the route's limit: 413 from Content-Length alone.
    const over = await rawRequest(s.url, head('POST', '/v1/relays', `Bearer ${ADMIN_TOKEN}`, 2 << 20), 3000);
    expect(over.status).toBe(413);
    expect(await snapshot(s)).toEqual(before);
  });

  it('checks the payload hash once the body is there', async () => {
    const body = JSON.stringify({ info: { name: 'paid' } });
    const path = '/v1/relays/n-r';
    const wrong = header(signEvent(tenant.secret, { url: s.url + path, method: 'PATCH', body: '{}' }));
    const refused = await call(s.url, 'PATCH', path, wrong, body);
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toBe('NIP-98 payload tag does not match the body');
    const right = header(signEvent(tenant.secret, { url: s.url + path, method: 'PATCH', body }));
    expect((await call(s.url, 'PATCH', path, right, body)).status).toBe(200);
  });

  it('answers 401 to a malformed event of any shape, never 500', async () => {
    const path = '/v1/relays/n-r';
    const u = s.url + path;
    const body = JSON.stringify({ info: { name: 'shape' } });
    const payload = createHash('sha256').update(body).digest('hex');
    const good = signEvent(tenant.secret, { url: u, method: 'PATCH', body });
    // Signed as they are (a signature covers any JSON), or edited after signing.
    const shapes: [string, unknown][] = [
      [
        'method tag is a number',
        signEvent(tenant.secret, {
          url: u,
          method: 'PATCH',
          tags: [
            ['u', u],
            ['method', 1],
            ['payload', payload],
          ],
        }),
      ],
      [
        'u tag is an object',
        signEvent(tenant.secret, {
          url: u,
          method: 'PATCH',
          tags: [
            ['u', {}],
            ['method', 'PATCH'],
          ],
        }),
      ],
      [
        'payload tag is null',
        signEvent(tenant.secret, {
          url: u,
          method: 'PATCH',
          tags: [
            ['u', u],
            ['method', 'PATCH'],
            ['payload', null],
          ],
        }),
      ],
      [
        'a tag name is a number',
        signEvent(tenant.secret, {
          url: u,
          method: 'PATCH',
          tags: [
            [1, 'x'],
            ['u', u],
            ['method', 'PATCH'],
            ['payload', payload],
          ],
        }),
      ],
      ['a tag is a string', { ...good, tags: ['u', ...good.tags] }],
      ['a tag is null', { ...good, tags: [null, ...good.tags] }],
      ['tags is an object', { ...good, tags: {} }],
      ['created_at is a string', { ...good, created_at: String(good.created_at) }],
      ['created_at is fractional', { ...good, created_at: good.created_at + 0.5 }],
      ['kind is a string', { ...good, kind: '27235' }],
      ['id is a number', { ...good, id: 7 }],
      ['pubkey is an array', { ...good, pubkey: [good.pubkey] }],
      ['sig is missing', { ...good, sig: undefined }],
      ['content is a number', { ...good, content: 0 }],
      ['event is a string', 'event'],
      ['event is null', null],
    ];
    for (const [name, event] of shapes) {
      const res = await call(s.url, 'PATCH', path, header(event), body);
      expect(res.status, name).toBe(401);
      expect(res.body.error.code, name).toBe('unauthorized');
    }
  });

  it('lets an identical GET through twice; refuses a replayed PATCH', async () => {
    const path = '/v1/relays/n-r';
    const get = header(signEvent(tenant.secret, { url: s.url + path, method: 'GET' }));
    expect((await call(s.url, 'GET', path, get)).status).toBe(200);
    expect((await call(s.url, 'GET', path, get)).status).toBe(200);
    const body = JSON.stringify({ info: { name: 'once' } });
    const patch = header(signEvent(tenant.secret, { url: s.url + path, method: 'PATCH', body }));
    expect((await call(s.url, 'PATCH', path, patch, body)).status).toBe(200);
    const replay = await call(s.url, 'PATCH', path, patch, body);
    expect(replay.status).toBe(401);
    expect(replay.body.error.message).toBe('NIP-98 event was already used');
  });

  it('does not spend an event refused for its key: it works once the key is registered', async () => {
    const late = keypair();
    await s.api('POST', '/v1/relays', relayBody('late-r', late.pubkey, { owner: late.pubkey }));
    const path = '/v1/relays/late-r';
    const body = JSON.stringify({ info: { name: 'late' } });
    const auth = header(signEvent(late.secret, { url: s.url + path, method: 'PATCH', body }));
    const refused = await call(s.url, 'PATCH', path, auth, body);
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toBe('this Nostr public key is not a registered tenant');
    await s.api('POST', '/v1/tokens', { role: 'tenant', owner: late.pubkey });
    expect((await call(s.url, 'PATCH', path, auth, body)).status).toBe(200);
  });
});

/** A tenant's relay on `a`'s database and one signed PATCH of it, to send to any peer on that database. */
async function signedPatch(a: TestServer) {
  const tenant = keypair();
  await a.api('POST', '/v1/tokens', { role: 'tenant', owner: tenant.pubkey });
  const id = `rp-${Math.random().toString(36).slice(2, 8)}`;
  expect(
    (await a.api('POST', '/v1/relays', relayBody(id, tenant.pubkey, { owner: tenant.pubkey }))).status,
  ).toBe(201);
  const path = `/v1/relays/${id}`;
  // Replicas behind one load balancer see the same Host, so one event is good for both.
  const body = JSON.stringify({ info: { name: 'replayed' } });
  const auth = header(
    signEvent(tenant.secret, { url: `http://bosun.example${path}`, method: 'PATCH', body }),
  );
  const send = (peer: TestServer) =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(peer.url + path, {
        method: 'PATCH',
        agent: false,
        headers: { authorization: auth, host: 'bosun.example', 'content-type': 'application/json' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.end(body);
    });
  return send;
}

async function expectReplayRefused(
  send: (peer: TestServer) => Promise<{ status: number; body: any }>,
  peer: TestServer,
) {
  const replay = await send(peer);
  expect(replay.status).toBe(401);
  expect(replay.body.error.message).toBe('NIP-98 event was already used');
}

/**
 * One signed PATCH (set up on `a`) spent on `spender`, then refused by the other of `a` and `b` on
 * the same database, and by the peer `restart` starts on it after stopping what it must. Closes
 * every peer.
 */
async function expectSpentOnce(
  a: TestServer,
  b: TestServer,
  spender: TestServer,
  restart: () => Promise<TestServer>,
): Promise<void> {
  let c: TestServer | undefined;
  try {
    const send = await signedPatch(a);
    expect((await send(spender)).status).toBe(200);
    await expectReplayRefused(send, spender === a ? b : a);
    c = await restart();
    await expectReplayRefused(send, c);
  } finally {
    await c?.close();
    await b.close();
    await a.close();
  }
}

describe('NIP-98 replay protection is per database', () => {
  it('SQLite: an event spent on one bosun is refused by another on the same file, and after a restart', async () => {
    const a = await startServer();
    const b = await startServer({ dir: a.dir });
    // a.close() would delete the database file: stop its peer only, until the end.
    await expectSpentOnce(a, b, a, async () => {
      await b.close();
      await a.peer.close();
      return startServer({ dir: a.dir });
    });
  });

  it('remembers a spent id for all of its window, however many others are spent meanwhile', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'bosun.db'));
    try {
      const clock = new FakeClock();
      const tenant = keypair();
      await new TokenService(store, clock).create({ role: 'tenant', owner: tenant.pubkey });
      const auth = new Authenticator(new TokenService(store, clock), new Nip98Verifier(), store, clock);
      const request = (event: unknown) =>
        ({
          headers: { authorization: header(event) },
          protocol: 'http',
          host: 'bosun.example',
          url: '/v1/relays',
          method: 'POST',
        }) as unknown as FastifyRequest;
      const sign = () =>
        signEvent(tenant.secret, {
          url: 'http://bosun.example/v1/relays',
          method: 'POST',
          created_at: Math.floor(clock.now() / 1000),
        });
      const spend = async (event: unknown) => {
        const req = request(event);
        await auth.beforeBody(req);
        await auth.afterBody(req);
        return req.principal;
      };
      const first = sign();
      expect(await spend(first)).toMatchObject({ role: 'tenant', owner: tenant.pubkey });
      // Others spent later, up to the last moment the first one passes the time check.
      for (let s = 1; s <= 60; s++) {
        await clock.advance(1000);
        await spend(sign());
      }
      await clock.advance(999);
      await expect(spend(first)).rejects.toThrow('NIP-98 event was already used');
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  describe.skipIf(!postgresUrl)('PostgreSQL', () => {
    it('an event spent on one replica is refused by the other, and after a restart', async () => {
      const schema = freshSchema();
      const env = { BOSUN_DATABASE_URL: schema.url, BOSUN_PG_POOL_SIZE: '3' };
      const a = await startServer({ env });
      const b = await startServer({ env });
      try {
        await expectSpentOnce(a, b, b, async () => {
          await a.close();
          return startServer({ env });
        });
      } finally {
        await schema.drop();
      }
    });
  });
});
