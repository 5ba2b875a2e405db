import { createHash } from 'node:crypto';
import { finalizeEvent, verifyEvent } from 'nostr-tools/pure';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createNip98Signer,
  type NostrEvent,
  nip98Backend,
  nip98Ready,
  useNip98Backend,
  verifyNip98,
} from '../../src/nostr/nip98.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { BOSUN_PUBKEY, BOSUN_SECRET, minimalBody, OTHER_SECRET, raw } from '../push/zooid/helpers.js';
import { FakeClock } from '../support/clock.js';

const T0 = Date.UTC(2026, 0, 1);
const URL1 = 'http://127.0.0.1:3334/relay/r1';
const sk = Buffer.from(BOSUN_SECRET, 'hex');

const decode = (header: string) =>
  JSON.parse(Buffer.from(header.slice('Nostr '.length), 'base64').toString('utf8')) as NostrEvent;
const encode = (event: unknown) => `Nostr ${Buffer.from(JSON.stringify(event)).toString('base64')}`;
const opts = (extra: Partial<Parameters<typeof verifyNip98>[1]> = {}) => ({
  url: URL1,
  method: 'POST',
  now: T0,
  windowSeconds: 60,
  ...extra,
});
/** A correctly signed event of any shape (nostr-tools pure). */
const signed = (template: { kind: number; created_at: number; tags: string[][]; content?: string }) =>
  finalizeEvent({ content: '', ...template }, sk);

describe('createNip98Signer', () => {
  it('signs kind 27235 with u, method and payload tags at the clock second', async () => {
    const clock = new FakeClock(T0 + 999);
    const signer = createNip98Signer(BOSUN_SECRET, { clock });
    expect(signer.pubkey).toBe(BOSUN_PUBKEY);
    const body = '{"host":"a"}';
    const header = await signer.sign(`${URL1}?x=1#frag`, 'post', body);
    expect(header.startsWith('Nostr ')).toBe(true);
    expect(header.slice(6)).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    expect(header.slice(6).length % 4).toBe(0);
    const event = decode(header);
    expect(event.kind).toBe(27235);
    expect(event.created_at).toBe(T0 / 1000);
    expect(event.content).toBe('');
    expect(event.pubkey).toBe(BOSUN_PUBKEY);
    expect(event.tags).toEqual([
      ['u', URL1],
      ['method', 'POST'],
      ['payload', createHash('sha256').update(body).digest('hex')],
    ]);
    expect(verifyEvent(structuredClone(event))).toBe(true);
  });

  it('omits payload without a body and hashes bytes and strings alike', async () => {
    const signer = createNip98Signer(BOSUN_SECRET, { clock: new FakeClock(T0) });
    expect(decode(await signer.sign(URL1, 'DELETE')).tags).toEqual([
      ['u', URL1],
      ['method', 'DELETE'],
    ]);
    const a = decode(await signer.sign(URL1, 'PUT', 'héllo')).tags[2];
    const b = decode(await signer.sign(URL1, 'PUT', Buffer.from('héllo', 'utf8'))).tags[2];
    expect(a).toEqual(b);
    expect(a).toEqual(['payload', createHash('sha256').update(Buffer.from('héllo')).digest('hex')]);
  });

  it('signs every request anew', async () => {
    const signer = createNip98Signer(BOSUN_SECRET, { clock: new FakeClock(T0) });
    const [a, b] = (await Promise.all([signer.sign(URL1, 'POST'), signer.sign(URL1, 'POST')])).map(decode);
    expect(a!.id).toBe(b!.id);
    expect(a!.sig).not.toBe(b!.sig);
  });

  it('rejects an invalid key without echoing it', () => {
    expect(() => createNip98Signer('0'.repeat(64))).toThrow(/64-character lowercase hex/);
    expect(() => createNip98Signer('zz')).toThrow(/^(?!.*zz)/);
  });

  it('uses the wasm backend on this Node once ready, and both backends agree', async () => {
    expect(await nip98Ready()).toBe('wasm');
    expect(nip98Backend()).toBe('wasm');
    const clock = new FakeClock(T0);
    try {
      expect(useNip98Backend('pure')).toBe(true);
      const fromPure = await createNip98Signer(BOSUN_SECRET, { clock }).sign(URL1, 'POST', 'x');
      expect(verifyNip98(fromPure, opts())).toMatchObject({ ok: true, pubkey: BOSUN_PUBKEY });
      expect(useNip98Backend('wasm')).toBe(true);
      const fromWasm = await createNip98Signer(BOSUN_SECRET, { clock }).sign(URL1, 'POST', 'x');
      expect(verifyNip98(fromPure, opts())).toMatchObject({ ok: true, pubkey: BOSUN_PUBKEY });
      useNip98Backend('pure');
      expect(verifyNip98(fromWasm, opts())).toMatchObject({ ok: true, pubkey: BOSUN_PUBKEY });
      const bad = decode(fromWasm);
      bad.tags[0] = ['u', `${URL1}x`];
      expect(verifyNip98(encode(bad), opts())).toEqual({
        ok: false,
        status: 401,
        error: 'invalid event signature',
      });
    } finally {
      useNip98Backend('wasm');
    }
  });
});

describe('verifyNip98 (zooid check order)', () => {
  const signer = createNip98Signer(BOSUN_SECRET, { clock: new FakeClock(T0) });
  let good = '';
  beforeAll(async () => {
    good = await signer.sign(URL1, 'POST', '{}');
  });
  const err = (error: string, status = 401) => ({ ok: false, status, error });

  it('accepts a good header and returns the pubkey', () => {
    const v = verifyNip98(good, opts());
    expect(v.ok).toBe(true);
    expect(v.ok && v.pubkey).toBe(BOSUN_PUBKEY);
    expect(verifyNip98(`NOSTR ${good.slice(6)}`, opts()).ok).toBe(true);
    expect(verifyNip98(`nostr ${good.slice(6)}`, opts({ method: 'post' })).ok).toBe(true);
  });

  it('1-2: header presence and scheme', () => {
    expect(verifyNip98(undefined, opts())).toEqual(err('missing authorization header'));
    expect(verifyNip98('', opts())).toEqual(err('missing authorization header'));
    expect(verifyNip98('Nostr', opts())).toEqual(err('invalid authorization header format'));
    expect(verifyNip98(`Bearer ${good.slice(6)}`, opts())).toEqual(
      err('invalid authorization header format'),
    );
  });

  it('3: only standard padded base64', () => {
    const b64 = good.slice(6);
    const urlSafe = `Nostr ${b64.replace(/\+/g, '-').replace(/\//g, '_')}-`;
    expect(verifyNip98(urlSafe, opts())).toMatchObject({ ok: false, status: 401 });
    expect((verifyNip98(urlSafe, opts()) as { error: string }).error).toMatch(/^invalid base64 encoding: /);
    const unpadded = `Nostr ${Buffer.from('{}').toString('base64').replace(/=+$/, '')}`;
    expect(unpadded).toBe('Nostr e30');
    expect((verifyNip98(unpadded, opts()) as { error: string }).error).toMatch(/^invalid base64 encoding: /);
    expect((verifyNip98('Nostr ab!=', opts()) as { error: string }).error).toBe(
      'invalid base64 encoding: illegal base64 data at input byte 2',
    );
  });

  it('4-5: event json and kind', () => {
    expect((verifyNip98(encode('x').replace(/^Nostr /, 'Nostr '), opts()) as { error: string }).error).toBe(
      'invalid event json: json: cannot unmarshal string into Go value of type nostr.Event',
    );
    const notJson = `Nostr ${Buffer.from('{nope').toString('base64')}`;
    expect((verifyNip98(notJson, opts()) as { error: string }).error).toMatch(/^invalid event json: /);
    expect(verifyNip98(encode({ kind: '27235' }), opts())).toEqual(
      err('invalid event json: json: cannot unmarshal string into Go struct field Event.kind of type int64'),
    );
    expect(verifyNip98(encode({}), opts())).toEqual(err('invalid event kind: expected 27235, got 0'));
    const kind1 = signed({
      kind: 1,
      created_at: T0 / 1000,
      tags: [
        ['u', URL1],
        ['method', 'POST'],
      ],
    });
    expect(verifyNip98(encode(kind1), opts())).toEqual(err('invalid event kind: expected 27235, got 1'));
  });

  it('6: signature, checked on the JSON, before time, u and method', async () => {
    const ev = signed({
      kind: 27235,
      created_at: T0 / 1000,
      tags: [
        ['u', URL1],
        ['method', 'POST'],
      ],
    });
    expect(verifyNip98(encode(ev), opts()).ok).toBe(true);
    // nostr-tools caches "verified" on the object and a spread copies it: we must not be fooled.
    const tampered = {
      ...ev,
      tags: [
        ['u', 'http://evil/relay/r1'],
        ['method', 'POST'],
      ],
    };
    expect(verifyEvent(tampered)).toBe(true);
    expect(verifyNip98(encode(tampered), opts({ url: 'http://evil/relay/r1' }))).toEqual(
      err('invalid event signature'),
    );
    // a bad signature wins over a stale time and a wrong u
    expect(verifyNip98(encode(tampered), opts({ now: T0 + 3_600_000 }))).toEqual(
      err('invalid event signature'),
    );
    expect(verifyNip98(encode({ ...ev, sig: ev.sig.toUpperCase() }), opts())).toEqual(
      err('invalid event signature'),
    );
    expect(verifyNip98(encode({ ...ev, id: '0'.repeat(64) }), opts())).toEqual(
      err('invalid event signature'),
    );
    const other = await createNip98Signer(OTHER_SECRET, { clock: new FakeClock(T0) }).sign(URL1, 'POST');
    expect(verifyNip98(encode({ ...decode(other), pubkey: BOSUN_PUBKEY }), opts())).toEqual(
      err('invalid event signature'),
    );
  });

  it('7: the 60 s window (V2) is inclusive and two-sided; absent window means no check (V1)', () => {
    expect(verifyNip98(good, opts({ now: T0 + 60_999 })).ok).toBe(true);
    expect(verifyNip98(good, opts({ now: T0 + 61_000 }))).toEqual(
      err('event is outside the allowed time window'),
    );
    expect(verifyNip98(good, opts({ now: T0 - 60_000 })).ok).toBe(true);
    expect(verifyNip98(good, opts({ now: T0 - 61_000 }))).toEqual(
      err('event is outside the allowed time window'),
    );
    expect(verifyNip98(good, opts({ now: T0 + 86_400_000, windowSeconds: null })).ok).toBe(true);
    expect(verifyNip98(good, opts({ now: T0 + 86_400_000, windowSeconds: undefined })).ok).toBe(true);
    // a stale event with a wrong u reports the time first
    expect(verifyNip98(good, opts({ now: T0 + 61_000, url: `${URL1}/x` }))).toEqual(
      err('event is outside the allowed time window'),
    );
  });

  it('8: u must equal <scheme>://<Host><path> exactly', () => {
    const bad = err('event missing or invalid u tag');
    expect(verifyNip98(good, opts({ url: 'https://127.0.0.1:3334/relay/r1' }))).toEqual(bad);
    expect(verifyNip98(good, opts({ url: `${URL1}/` }))).toEqual(bad);
    expect(verifyNip98(good, opts({ url: 'http://127.0.0.1/relay/r1' }))).toEqual(bad);
    expect(verifyNip98(good, opts({ url: 'http://127.0.0.1:3334/relay/R1' }))).toEqual(bad);
    const withQuery = signed({
      kind: 27235,
      created_at: T0 / 1000,
      tags: [
        ['u', `${URL1}?a=1`],
        ['method', 'POST'],
      ],
    });
    expect(verifyNip98(encode(withQuery), opts())).toEqual(bad);
    // u wins over method
    expect(verifyNip98(good, opts({ url: `${URL1}/`, method: 'PUT' }))).toEqual(bad);
  });

  it('9: the method tag, uppercased, must equal the method', () => {
    expect(verifyNip98(good, opts({ method: 'PUT' }))).toEqual(err('event missing or invalid method tag'));
    const lower = signed({
      kind: 27235,
      created_at: T0 / 1000,
      tags: [
        ['u', URL1],
        ['method', 'post'],
      ],
    });
    expect(verifyNip98(encode(lower), opts()).ok).toBe(true);
    const none = signed({ kind: 27235, created_at: T0 / 1000, tags: [['u', URL1]] });
    expect(verifyNip98(encode(none), opts())).toEqual(err('event missing or invalid method tag'));
  });

  it('whitelist gives 403 after every 401 check; payload is ignored unless asked', () => {
    expect(verifyNip98(good, opts({ whitelist: ['ab'] }))).toEqual(err('pubkey not in whitelist', 403));
    expect(verifyNip98(good, opts({ whitelist: new Set([BOSUN_PUBKEY]) })).ok).toBe(true);
    expect(verifyNip98(good, opts({ whitelist: ['ab'], method: 'PUT' }))).toEqual(
      err('event missing or invalid method tag'),
    );
    expect(verifyNip98(good, opts({ body: 'other' })).ok).toBe(true);
    expect(verifyNip98(good, opts({ body: 'other', checkPayload: true }))).toEqual(
      err('event payload tag does not match the body'),
    );
    expect(verifyNip98(good, opts({ body: '{}', checkPayload: true })).ok).toBe(true);
  });
});

describe('signer against the emulator', () => {
  let emu: ZooidEmulator;
  const emuClock = new FakeClock(T0);
  beforeAll(async () => {
    emu = await startZooidEmulator({ whitelist: [BOSUN_PUBKEY], clock: emuClock });
  });
  afterAll(() => emu.close());
  afterEach(() => {
    emu.requests.length = 0;
  });

  const bosun = (at = T0) => createNip98Signer(BOSUN_SECRET, { clock: new FakeClock(at) });

  it('accepts the signed request', async () => {
    const res = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a1',
      body: minimalBody(1),
      signer: bosun(),
    });
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ message: 'relay created successfully' });
    expect(emu.requests[0]?.pubkey).toBe(BOSUN_PUBKEY);
  });

  it('rejects wrong u, wrong method, an old created_at and a foreign key with zooid texts', async () => {
    const wrongU = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a2',
      body: minimalBody(2),
      signer: bosun(),
      u: `${emu.url}/relay/a2/`,
    });
    expect([wrongU.status, wrongU.json]).toEqual([401, { error: 'event missing or invalid u tag' }]);
    const https = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a2',
      body: minimalBody(2),
      signer: bosun(),
      u: `https://${emu.apiHost}/relay/a2`,
    });
    expect([https.status, https.json]).toEqual([401, { error: 'event missing or invalid u tag' }]);
    const wrongMethod = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a2',
      body: minimalBody(2),
      signer: bosun(),
      signMethod: 'PUT',
    });
    expect([wrongMethod.status, wrongMethod.json]).toEqual([
      401,
      { error: 'event missing or invalid method tag' },
    ]);
    const old = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a2',
      body: minimalBody(2),
      signer: bosun(T0 - 61_000),
    });
    expect([old.status, old.json]).toEqual([401, { error: 'event is outside the allowed time window' }]);
    const foreign = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a2',
      body: minimalBody(2),
      signer: createNip98Signer(OTHER_SECRET, { clock: new FakeClock(T0) }),
    });
    expect([foreign.status, foreign.json]).toEqual([403, { error: 'pubkey not in whitelist' }]);
    const missing = await raw(emu.url, { method: 'POST', path: '/relay/a2', body: minimalBody(2) });
    expect([missing.status, missing.text]).toEqual([401, '{"error":"missing authorization header"}\n']);
    expect(missing.headers['content-type']).toBe('application/json');
    expect(emu.relays().has('a2')).toBe(false);
  });

  it('compares u without the query string', async () => {
    const res = await raw(emu.url, {
      method: 'POST',
      path: '/relay/q1?debug=1',
      body: minimalBody(4),
      signer: bosun(),
    });
    expect(res.status).toBe(201);
    expect(emu.relays().has('q1')).toBe(true);
  });

  it('honours X-Forwarded-Proto: https exactly', async () => {
    const res = await raw(emu.url, {
      method: 'POST',
      path: '/relay/a3',
      body: minimalBody(3),
      signer: bosun(),
      u: `https://${emu.apiHost}/relay/a3`,
      headers: { 'x-forwarded-proto': 'https' },
    });
    expect(res.status).toBe(201);
  });

  it('V1 has no time window', async () => {
    const v1 = await startZooidEmulator({ whitelist: BOSUN_PUBKEY, variant: 'v1', clock: emuClock });
    try {
      const res = await raw(v1.url, {
        method: 'POST',
        path: '/relay/old',
        body: minimalBody(9),
        signer: bosun(T0 - 86_400_000),
      });
      expect(res.status).toBe(201);
    } finally {
      await v1.close();
    }
  });
});
