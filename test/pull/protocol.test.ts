import { describe, expect, it } from 'vitest';
import {
  encodeHeldVersions,
  fingerprint,
  isValidRelayId,
  isValidVersion,
  MAX_HELD_VERSIONS_BYTES,
  parseDelete,
  parseHeldVersions,
  parsePatch,
  parsePut,
  parseReconnect,
  relayIdFromPath,
  validateRelayRep,
} from '../../src/pull/protocol.js';
import { rep, SECRET } from './harness.js';

describe('ids and versions', () => {
  it.each(['a', 'A', '0', 'r-7f3a', 'a.b_c-d', 'x'.repeat(128)])('valid id %s', (id) => {
    expect(isValidRelayId(id)).toBe(true);
  });
  it.each(['', '.a', '-a', '_a', '../x', 'a/b', 'a b', 'é', 'x'.repeat(129)])('invalid id %j', (id) => {
    expect(isValidRelayId(id)).toBe(false);
  });
  it('versions are integers 1…2^53−1', () => {
    expect([1, 2 ** 53 - 1].map(isValidVersion)).toEqual([true, true]);
    expect([0, -1, 1.5, 2 ** 53, Number.NaN, '1'].map(isValidVersion)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });
});

describe('held versions header', () => {
  it('encodes ascending by id', () => {
    expect(
      encodeHeldVersions([
        ['b', 2],
        ['B', 20],
        ['a', 1],
      ]),
    ).toBe('B=20,a=1,b=2');
    expect(encodeHeldVersions([])).toBe('');
  });

  it('is omitted above 8 KiB', () => {
    const id = (n: number) => `r${String(n).padStart(5, '0')}`; // "r00000=1," is 9 bytes
    const fits = Array.from({ length: 909 }, (_, i) => [id(i), 1] as const);
    const value = encodeHeldVersions([...fits, [id(909), 1234]]);
    expect(value?.length).toBe(MAX_HELD_VERSIONS_BYTES); // exactly 8 KiB is still sent
    expect(value?.startsWith('r00000=1,r00001=1,')).toBe(true);
    expect(encodeHeldVersions([...fits, [id(909), 12345]])).toBeUndefined();
  });

  it('parses what it encodes; garbage -> undefined', () => {
    const value = encodeHeldVersions([
      ['b', 2],
      ['a', 9007199254740991],
    ])!;
    expect(parseHeldVersions(value)).toEqual(
      new Map([
        ['a', 9007199254740991],
        ['b', 2],
      ]),
    );
    expect(parseHeldVersions(' a=1 , b=2 ')).toEqual(
      new Map([
        ['a', 1],
        ['b', 2],
      ]),
    );
    expect(parseHeldVersions('')).toEqual(new Map());
    for (const bad of [
      'a',
      'a=',
      'a=0',
      'a=01',
      'a=x',
      '../x=1',
      'a=1,a=2',
      'a=1,,b=2',
      'a=9007199254740992',
    ]) {
      expect(parseHeldVersions(bad), bad).toBeUndefined();
    }
    expect(parseHeldVersions(`a=1,${'b'.repeat(9000)}=1`)).toBeUndefined();
  });
});

describe('payloads', () => {
  it('fingerprint is the first 8 hex of SHA-256', () => {
    expect(fingerprint('abc')).toBe('ba7816bf');
  });

  it('put: malformed types vs ignored extras', () => {
    expect(parsePut('{"path":"/","epoch":"e","data":{"relays":{},"x":1},"y":2}')).toEqual({
      ok: true,
      value: { path: '/', epoch: 'e', relays: {}, delta: false, unchanged: [] },
    });
    expect(parsePut('{"path":"/","data":{"relays":{},"delta":true,"unchanged":["a"]}}')).toMatchObject({
      ok: true,
      value: { epoch: undefined, delta: true, unchanged: ['a'] },
    });
    for (const bad of [
      'nope',
      '{"path":999,"data":{"relays":{}}}',
      '{"path":"/","data":999}',
      '{"path":"/","data":{"relays":[]}}',
      '{"path":"/","data":{"relays":null}}',
      '{"path":"/","epoch":5,"data":{"relays":{}}}',
    ]) {
      expect(parsePut(bad).ok, bad).toBe(false);
    }
  });

  it('a JSON error never repeats the input', () => {
    expect(parsePut(`{"relays":"${SECRET}`)).toEqual({ ok: false, reason: 'not JSON' });
  });

  it('patch, delete, reconnect', () => {
    expect(parsePatch('{"path":"relays/a","data":{}}').ok).toBe(true);
    expect(parsePatch('{"path":"relays/a","data":[]}').ok).toBe(false);
    expect(parsePatch('{"path":"relays/a","data":999}').ok).toBe(false);
    expect(parseDelete('{"path":"relays/a","version":3}')).toEqual({
      ok: true,
      value: { path: 'relays/a', version: 3 },
    });
    expect(parseDelete('{"path":"relays/a","version":"3"}').ok).toBe(false);
    expect(parseDelete('{"path":"relays/a","version":0}').ok).toBe(false);
    expect(parseReconnect('{"reason":"draining","delayMs":10000}')).toEqual({
      reason: 'draining',
      delayMs: 10000,
    });
    expect(parseReconnect('{"delayMs":-1,"reason":3}')).toEqual({});
    expect(parseReconnect('')).toEqual({});
    expect(relayIdFromPath('relays/a.b')).toBe('a.b');
    expect(relayIdFromPath('filters/x')).toBeUndefined();
  });

  it('validateRelayRep: ignores unknown fields, defaults expiring, refuses without echoing values', () => {
    const r = rep('a', 1);
    const { expiring: _omit, ...withoutExpiring } = r;
    expect(validateRelayRep({ ...withoutExpiring, extra: true }, 'a')).toEqual({ ok: true, value: r });
    const refused = [
      [r, 'b', /^id: a differs from b$/],
      [r, '../a', /^id: must match/],
      [{ ...r, version: 0 }, 'a', /^version: /],
      [{ ...r, version: 1.5 }, 'a', /^version: /],
      [{ ...r, config: [] }, 'a', /^config: /],
      [{ ...r, config: 'c' }, 'a', /^config: /],
      [{ ...r, secret: 'AB'.repeat(32) }, 'a', /^secret: /],
      [{ ...r, expiring: [{ name: 'secret', value: 'v' }] }, 'a', /^expiring\.0\.expiresAt: /],
      ['not an object', 'a', /^\(data\): /],
    ] as const;
    for (const [value, key, reason] of refused) {
      const result = validateRelayRep(value, key);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.reason).toMatch(reason);
        expect(result.reason).not.toContain(SECRET);
      }
    }
  });
});
