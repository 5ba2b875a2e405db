import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { snapshot } from './helpers.js';

/**
 * Bodies whose shape, not their size, is hostile: JSON nested thousands deep, keys that mean
 * something to JavaScript objects, and hosts written in ways that look different but are the same.
 * Each is a 4xx JSON error naming the field or the limit, and writes nothing.
 */
describe('hostile input: shapes', () => {
  let s: TestServer;
  const owner = keypair();

  beforeAll(async () => {
    s = await startServer();
    expect((await s.api('POST', '/v1/relays', relayBody('r1', owner.pubkey))).status).toBe(201);
  });
  afterAll(async () => {
    await s.close();
  });

  /** `{"a":{"a":…1…}}`, `depth` objects deep. */
  const objects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  const arrays = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

  const refused = async (method: string, path: string, body: string | unknown) => {
    const before = await snapshot(s);
    const res = await s.api(method, path, body);
    const label = `${method} ${path} ${String(body).slice(0, 60)}`;
    expect(res.status, label).toBe(400);
    expect(await snapshot(s), label).toEqual(before);
    return res.body.error as { code: string; message: string };
  };

  it('JSON nested over 64 levels: 400 naming the limit on every body route, never a 500', async () => {
    const nesting = {
      code: 'invalid_request',
      message: '(body): JSON nested over 64 levels of objects and arrays (the limit)',
    };
    const deepFleet = `{"relays":[{"name":"d","config":{"info":${objects(20_000)}}}]}`;
    const cases: [string, string, string][] = [
      ['PATCH', '/v1/relays/r1', `{"info":${objects(5000)}}`],
      ['PATCH', '/v1/relays/r1', `{"roles":{"x":{"pubkeys":${arrays(5000)}}}}`],
      ['POST', '/v1/relays', `{"id":"d","host":"d.example.com","info":${objects(5000)}}`],
      ['POST', '/v1/fleets/deep/plan', deepFleet],
      ['POST', '/v1/fleets/deep/apply', deepFleet],
      ['POST', '/v1/tokens', arrays(100_000)],
      ['POST', '/v1/relays/r1/rotate-secret', objects(65)],
    ];
    for (const [method, path, body] of cases) expect(await refused(method, path, body)).toEqual(nesting);
    // Brackets inside strings do not count, and 64 levels are read (then judged on what they say).
    expect(
      await refused('PATCH', '/v1/relays/r1', `{"info":{"name":"${'[\\"{'.repeat(80)}","x":1}}`),
    ).toEqual({
      code: 'invalid_request',
      message: 'info.x: unknown field',
    });
    expect((await refused('PATCH', '/v1/relays/r1', objects(64))).message).toBe('a: unknown field');
  });

  it('refuses __proto__, prototype and constructor as role names, and __proto__ as any field', async () => {
    for (const name of ['__proto__', 'prototype', 'constructor']) {
      const role = `{"${name}":{"can_invite":true}}`;
      const create = `{"id":"p1","host":"p1.example.com","info":{"pubkey":"${owner.pubkey}"},"roles":${role}}`;
      const reserved = {
        code: 'invalid_request',
        message: `roles.${name}: is a reserved name (__proto__, prototype, constructor)`,
      };
      expect(await refused('POST', '/v1/relays', create)).toEqual(reserved);
      expect(await refused('PATCH', '/v1/relays/r1', `{"roles":${role}}`)).toEqual(reserved);
      const fleet = `{"relays":[{"name":"p2","config":{"host":"p2.example.com","info":{"pubkey":"${owner.pubkey}"},"roles":${role}}}]}`;
      expect(await refused('POST', '/v1/fleets/protos/plan', fleet)).toMatchObject(reserved);
    }
    // Anywhere else __proto__ is an unknown field, never a way to set what a section inherits.
    expect(await refused('PATCH', '/v1/relays/r1', '{"info":{"__proto__":{"name":"sneaky"}}}')).toEqual({
      code: 'invalid_request',
      message: 'info.__proto__: unknown field',
    });
    expect(
      await refused(
        'POST',
        '/v1/fleets/protos/plan',
        `{"defaults":{"__proto__":{"host":"x.example.com"}},"relays":[{"name":"p3","config":{"info":{"pubkey":"${owner.pubkey}"}}}]}`,
      ),
    ).toMatchObject({ code: 'invalid_request', message: 'defaults.__proto__: unknown field' });
    expect((await s.api('GET', '/v1/relays/r1')).body.config.info.name).toBe('r1');
  });

  it('hosts: ports 1-65535 without leading zeros; default ports and capitals are the same host', async () => {
    for (const host of ['x.example.com:99999', 'x.example.com:0', 'x.example.com:00080', 'x.example.com:']) {
      const error = await refused('POST', '/v1/relays', relayBody('h1', owner.pubkey, { host }));
      expect(error.message, host).toMatch(/^host: .*:port \(1-65535, no leading zeros\)/);
    }
    const created = await s.api(
      'POST',
      '/v1/relays',
      relayBody('h2', owner.pubkey, { host: 'H.Example.com:443' }),
    );
    expect(created.status).toBe(201);
    expect(created.body.config.host).toBe('h.example.com');
    for (const host of ['h.example.com', 'h.example.com:80', 'H.EXAMPLE.COM']) {
      const res = await s.api('POST', '/v1/relays', relayBody('h3', owner.pubkey, { host }));
      expect(res.status, host).toBe(409);
      expect(res.body.error).toEqual({
        code: 'host_conflict',
        message: 'host: "h.example.com" is already used by another relay',
      });
      expect((await s.api('PATCH', '/v1/relays/r1', { host })).status, host).toBe(409);
    }
    const moved = await s.api('PATCH', '/v1/relays/h2', { host: 'h.example.com:8443' });
    expect(moved.body.config.host).toBe('h.example.com:8443');
  });
});
