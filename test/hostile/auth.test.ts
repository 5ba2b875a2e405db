import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { finalizeEvent, getPublicKey } from 'nostr-tools/pure';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { printSeed, runs, snapshot } from './helpers.js';

/**
 * Auth bypass attempts: another tenant, expired / revoked / rotated tokens, and NIP-98 events that
 * are forged, replayed, or signed for another URL, method or payload. Each is refused (401 or 404,
 * never 5xx) and writes nothing.
 */
describe('hostile input: auth bypass', () => {
  let s: TestServer;
  const tenant = keypair();
  const stranger = keypair();
  let aliceToken: string;
  let tenantToken: { token: string; id: string };

  beforeAll(async () => {
    printSeed('auth');
    s = await startServer();
    aliceToken = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    tenantToken = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: tenant.pubkey })).body;
    expect((await s.api('POST', '/v1/relays', relayBody('alice-r', tenant.pubkey), aliceToken)).status).toBe(
      201,
    );
    expect(
      (await s.api('POST', '/v1/relays', relayBody('nostr-r', tenant.pubkey), tenantToken.token)).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await s.close();
  });

  const call = async (method: string, path: string, authorization: string | undefined, body?: string) => {
    const res = await fetch(s.url + path, {
      method,
      headers: {
        ...(authorization !== undefined ? { authorization } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
    return { status: res.status, body: (await res.text()) || undefined };
  };
  const refusedWithoutWrite = async (
    method: string,
    path: string,
    authorization: string | undefined,
    body: string | undefined,
    allowed: number[],
  ) => {
    const before = await snapshot(s);
    const res = await call(method, path, authorization, body);
    expect(allowed, `${method} ${path} -> ${res.status} ${res.body}`).toContain(res.status);
    expect(await snapshot(s), `${method} ${path}`).toEqual(before);
    return res;
  };

  // Every route that reads or writes one relay, plus the fleet routes that could reach it.
  const relayRoutes = (id: string): [string, string, string | undefined][] => [
    ['GET', `/v1/relays/${id}`, undefined],
    ['PATCH', `/v1/relays/${id}`, JSON.stringify({ inactive: true })],
    ['POST', `/v1/relays/${id}/deactivate`, undefined],
    ['POST', `/v1/relays/${id}/activate`, undefined],
    ['POST', `/v1/relays/${id}/sync`, undefined],
    ['POST', `/v1/relays/${id}/rotate-secret`, JSON.stringify({ grace_seconds: 0 })],
    ['DELETE', `/v1/relays/${id}`, undefined],
    ['GET', `/v1/activities?relay=${id}`, undefined],
    ['GET', `/v1/dashboard/relays/${id}`, undefined],
  ];

  it('another tenant sees 404 on every route of a relay it does not own, and changes nothing', async () => {
    const bob = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'bob' })).body.token;
    for (const [method, path, body] of relayRoutes('alice-r')) {
      const res = await refusedWithoutWrite(method, path, `Bearer ${bob}`, body, [200, 404]);
      // Lists answer 200 with nothing of alice's in them; the relay itself is 404.
      if (res.status === 200) expect(res.body).not.toContain('alice-r');
    }
    // Taking the relay over by creating it again, or via a fleet apply, or as another owner.
    await refusedWithoutWrite(
      'POST',
      '/v1/relays',
      `Bearer ${bob}`,
      JSON.stringify(relayBody('alice-r', tenant.pubkey)),
      [404, 409],
    );
    await refusedWithoutWrite(
      'POST',
      '/v1/relays',
      `Bearer ${bob}`,
      JSON.stringify(relayBody('bob-as-alice', tenant.pubkey, { owner: 'alice' })),
      [400, 403],
    );
    const fleet = JSON.stringify({
      relays: [{ name: 'alice-r', config: relayBody('alice-r', tenant.pubkey) }],
    });
    for (const route of ['plan', 'apply']) {
      await refusedWithoutWrite(
        'POST',
        `/v1/fleets/default/${route}`,
        `Bearer ${bob}`,
        fleet,
        [400, 403, 404, 409],
      );
    }
    const prune = JSON.stringify({ relays: [], prune: true });
    const pruned = await call('POST', '/v1/fleets/default/apply', `Bearer ${bob}`, prune);
    expect(pruned.status).toBeLessThan(500);
    expect((await s.api('GET', '/v1/relays/alice-r')).body.deleted).toBeFalsy();
    expect((await s.api('GET', '/v1/relays/alice-r')).body.version).toBe(1);
    // Tenants cannot mint tokens (least of all admin ones).
    for (const role of ['admin', 'tenant', 'agent']) {
      await refusedWithoutWrite(
        'POST',
        '/v1/tokens',
        `Bearer ${bob}`,
        JSON.stringify({ role, owner: 'alice' }),
        [400, 403],
      );
    }
  });

  it('expired, revoked and rotated tokens are refused everywhere', async () => {
    const short = (await s.api('POST', '/v1/tokens', { role: 'admin', expires_in_seconds: 1 })).body.token;
    expect((await call('GET', '/v1/relays', `Bearer ${short}`)).status).toBe(200);
    const revoked = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body;
    await s.api('DELETE', `/v1/tokens/${revoked.id}`);
    // Rotation: a new token for the same tenant, the old one revoked.
    const old = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice', name: 'v1' })).body;
    const rotated = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice', name: 'v2' })).body;
    await s.api('DELETE', `/v1/tokens/${old.id}`);
    await new Promise((r) => setTimeout(r, 1100));
    for (const token of [short, revoked.token, old.token, `${rotated.token}x`, rotated.token.slice(0, -1)]) {
      for (const [method, path, body] of [
        ...relayRoutes('alice-r'),
        ['POST', '/v1/relays', JSON.stringify(relayBody('zz', tenant.pubkey))] as const,
        ['POST', '/v1/tokens', JSON.stringify({ role: 'admin' })] as const,
        ['POST', '/v1/fleets/default/apply', JSON.stringify({ relays: [], prune: true })] as const,
        ['GET', '/v1/stream', undefined] as const,
      ]) {
        const res = await refusedWithoutWrite(method, path, `Bearer ${token}`, body, [401]);
        expect(JSON.parse(res.body!).error.code).toBe('unauthorized');
      }
    }
    expect((await call('GET', '/v1/relays/alice-r', `Bearer ${rotated.token}`)).status).toBe(200);
  });

  // A NIP-98 header: built from fields, optionally broken after signing.
  const sign = (
    fields: {
      url: string;
      method: string;
      body?: string;
      created_at?: number;
      kind?: number;
      extraTags?: string[][];
    },
    secret = tenant.secret,
  ) => {
    const tags = [
      ['u', fields.url],
      ['method', fields.method],
      ...(fields.body ? [['payload', createHash('sha256').update(fields.body).digest('hex')]] : []),
      ...(fields.extraTags ?? []),
    ];
    return finalizeEvent(
      {
        kind: fields.kind ?? 27235,
        created_at: fields.created_at ?? Math.floor(Date.now() / 1000),
        tags,
        content: '',
      },
      Buffer.from(secret, 'hex'),
    );
  };
  const header = (ev: unknown) => `Nostr ${Buffer.from(JSON.stringify(ev)).toString('base64')}`;

  it('NIP-98: a forged, replayed or misdirected event never authenticates (property)', async () => {
    const now = () => Math.floor(Date.now() / 1000);
    // Each mutation turns a valid request (PATCH nostr-r) into one that must be refused.
    type Req = { method: string; path: string; body: string; auth: string };
    const mutations: Record<string, (req: Req, n: number) => Req> = {
      'wrong path in u': (r) => ({
        ...r,
        auth: header(sign({ url: `${s.url}/v1/relays/other`, method: 'PATCH', body: r.body })),
      }),
      'u with another host': (r) => ({
        ...r,
        auth: header(
          sign({ url: r.path.replace(/^/, 'http://evil.example'), method: 'PATCH', body: r.body }),
        ),
      }),
      'u without the query': (r) => ({
        ...r,
        path: `${r.path}?x=1`,
        auth: header(sign({ url: s.url + r.path, method: 'PATCH', body: r.body })),
      }),
      'wrong method': (r) => ({
        ...r,
        auth: header(sign({ url: s.url + r.path, method: 'GET', body: r.body })),
      }),
      'payload of another body': (r, n) => ({
        ...r,
        auth: header(
          sign({ url: s.url + r.path, method: 'PATCH', body: JSON.stringify({ info: { name: `x${n}` } }) }),
        ),
      }),
      'no payload tag': (r) => ({ ...r, auth: header(sign({ url: s.url + r.path, method: 'PATCH' })) }),
      'too old': (r, n) => ({
        ...r,
        auth: header(
          sign({ url: s.url + r.path, method: 'PATCH', body: r.body, created_at: now() - 61 - (n % 1000) }),
        ),
      }),
      'from the future': (r, n) => ({
        ...r,
        auth: header(
          sign({ url: s.url + r.path, method: 'PATCH', body: r.body, created_at: now() + 61 + (n % 1000) }),
        ),
      }),
      'wrong kind': (r, n) => ({
        ...r,
        auth: header(sign({ url: s.url + r.path, method: 'PATCH', body: r.body, kind: n % 2 ? 1 : 27234 })),
      }),
      'signature flipped': (r, n) => {
        const ev = sign({ url: s.url + r.path, method: 'PATCH', body: r.body });
        const i = n % ev.sig.length;
        const sig = ev.sig.slice(0, i) + (ev.sig[i] === '0' ? '1' : '0') + ev.sig.slice(i + 1);
        return { ...r, auth: header({ ...ev, sig }) };
      },
      'pubkey swapped (signed by a stranger)': (r) => {
        const ev = sign({ url: s.url + r.path, method: 'PATCH', body: r.body }, stranger.secret);
        return { ...r, auth: header({ ...ev, pubkey: tenant.pubkey }) };
      },
      'tag edited after signing': (r) => {
        const ev = sign({ url: `${s.url}/v1/relays/other`, method: 'PATCH', body: r.body });
        return {
          ...r,
          auth: header({ ...ev, tags: ev.tags.map((t) => (t[0] === 'u' ? ['u', s.url + r.path] : t)) }),
        };
      },
      'unregistered key': (r) => ({
        ...r,
        auth: header(sign({ url: s.url + r.path, method: 'PATCH', body: r.body }, stranger.secret)),
      }),
      'garbage encoding': (r, n) => ({
        ...r,
        auth: `Nostr ${Buffer.from(`{"kind":27235,${n}`).toString('base64')}`,
      }),
      'not base64': (r) => ({ ...r, auth: 'Nostr !!!***' }),
      'event without tags': (r) => ({
        ...r,
        auth: header({ ...sign({ url: s.url + r.path, method: 'PATCH', body: r.body }), tags: null }),
      }),
      'event is an array': (r) => ({
        ...r,
        auth: header([sign({ url: s.url + r.path, method: 'PATCH', body: r.body })]),
      }),
      'duplicate u tags, first wrong': (r) => ({
        ...r,
        auth: header(
          sign({
            url: `${s.url}/v1/relays/other`,
            method: 'PATCH',
            body: r.body,
            extraTags: [['u', s.url + r.path]],
          }),
        ),
      }),
    };
    const names = Object.keys(mutations);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), fc.nat(), async (name, n) => {
        const path = '/v1/relays/nostr-r';
        const body = JSON.stringify({ info: { name: `n${n}`, pubkey: tenant.pubkey } });
        const req = mutations[name]!({ method: 'PATCH', path, body, auth: '' }, n);
        const res = await refusedWithoutWrite(req.method, req.path, req.auth, req.body, [401]);
        expect(JSON.parse(res.body!).error.code, name).toBe('unauthorized');
      }),
      runs(120),
    );
    // Every mutation at least once, whatever the seed picked.
    for (const name of names) {
      const body = JSON.stringify({ info: { name: 'once', pubkey: tenant.pubkey } });
      const req = mutations[name]!({ method: 'PATCH', path: '/v1/relays/nostr-r', body, auth: '' }, 7);
      await refusedWithoutWrite(req.method, req.path, req.auth, req.body, [401]);
    }
    // The valid request itself works once, and its replay is refused.
    const body = JSON.stringify({ info: { name: 'signed', pubkey: tenant.pubkey } });
    const auth = header(sign({ url: `${s.url}/v1/relays/nostr-r`, method: 'PATCH', body }));
    expect((await call('PATCH', '/v1/relays/nostr-r', auth, body)).status).toBe(200);
    await refusedWithoutWrite('PATCH', '/v1/relays/nostr-r', auth, body, [401]);
    // The event's pubkey is a registered tenant's; it still cannot reach alice's relay.
    const foreign = header(sign({ url: `${s.url}/v1/relays/alice-r`, method: 'DELETE' }));
    await refusedWithoutWrite('DELETE', '/v1/relays/alice-r', foreign, undefined, [404]);
    expect(getPublicKey(Buffer.from(tenant.secret, 'hex'))).toBe(tenant.pubkey);
  });

  it('NIP-98 stops working once the tenant is deregistered (its tokens revoked)', async () => {
    const body = JSON.stringify({ inactive: true });
    await s.api('DELETE', `/v1/tokens/${tenantToken.id}`);
    const auth = header(sign({ url: `${s.url}/v1/relays/nostr-r`, method: 'PATCH', body }));
    const res = await refusedWithoutWrite('PATCH', '/v1/relays/nostr-r', auth, body, [401]);
    expect(JSON.parse(res.body!).error.message).toBe('this Nostr public key is not a registered tenant');
  });
});
