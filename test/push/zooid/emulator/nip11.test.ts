import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../../../src/domain/keys.js';
import { call, minimalBody, nip11, OWNER_PUBKEY, RELAY_SECRET, relayApi, useEmulators } from '../helpers.js';

const { start, tempDir } = useEmulators('zooid-nip11-');

const SELF = publicKeyOf(RELAY_SECRET);
const BASE_NIPS = [1, 11, 42, 70, 86, '43'];

describe('NIP-11 on each relay host', () => {
  it('serves the document zooid builds, with nostr+json, on any path', async () => {
    const emu = await start();
    const body = minimalBody(1, {
      info: { name: 'R1', description: 'About R1', icon: 'https://x.test/i.png', pubkey: OWNER_PUBKEY },
    });
    expect((await relayApi(emu, 'POST', 'r1', body)).status).toBe(201);
    const res = await nip11(emu, 'r1.example.com');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/nostr+json');
    expect(res.json).toEqual({
      name: 'R1',
      description: 'About R1',
      pubkey: OWNER_PUBKEY,
      self: SELF,
      supported_nips: [...BASE_NIPS, 9, 77],
      software: 'https://github.com/coracle-social/zooid',
      version: 'v0.1.0',
      icon: 'https://x.test/i.png',
    });
    expect(emu.served('r1')).toEqual(res.json);
    expect((await nip11(emu, 'r1.example.com', { path: '/anything' })).json).toEqual(res.json);
  });

  it('leaves empty strings out and lists groups and blossom NIPs when enabled', async () => {
    const emu = await start();
    await relayApi(emu, 'POST', 'r2', {
      host: 'r2.example.com',
      schema: 'r2',
      secret: RELAY_SECRET,
      info: { pubkey: OWNER_PUBKEY },
      groups: { enabled: true },
      blossom: { enabled: true },
    });
    expect((await nip11(emu, 'r2.example.com')).json).toEqual({
      pubkey: OWNER_PUBKEY,
      self: SELF,
      supported_nips: [...BASE_NIPS, 'BUD-00', 'BUD-01', 'BUD-02', 'BUD-11', '29', 9, 77],
      software: 'https://github.com/coracle-social/zooid',
      version: 'v0.1.0',
    });
  });

  it('matches the Host header exactly as the config writes it, port included', async () => {
    const emu = await start();
    await relayApi(emu, 'POST', 'p', minimalBody('p', { host: 'p.example.com:8443' }));
    expect((await nip11(emu, 'p.example.com:8443')).status).toBe(200);
    for (const host of ['p.example.com', 'P.example.com:8443', 'p.example.com:443']) {
      const res = await nip11(emu, host);
      expect({ host, status: res.status, text: res.text }).toEqual({
        host,
        status: 404,
        text: 'Not Found\n',
      });
    }
  });

  it('answers 404 Not Found for an unknown host, an inactive relay and a deleted one', async () => {
    const emu = await start();
    const unknown = await nip11(emu, 'nobody.example.com');
    expect(unknown.status).toBe(404);
    expect(unknown.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(unknown.text).toBe('Not Found\n');

    await relayApi(emu, 'POST', 'r1', minimalBody(1, { inactive: true }));
    expect((await nip11(emu, 'r1.example.com')).status).toBe(404);
    expect(emu.served('r1')).toBeNull();
    await relayApi(emu, 'PATCH', 'r1', { inactive: false });
    expect((await nip11(emu, 'r1.example.com')).status).toBe(200);
    await relayApi(emu, 'PATCH', 'r1', { info: { name: 'Renamed' } });
    expect((await nip11(emu, 'r1.example.com')).json).toMatchObject({ name: 'Renamed' });
    await relayApi(emu, 'DELETE', 'r1');
    expect((await nip11(emu, 'r1.example.com')).status).toBe(404);
  });

  it('answers the relay page without the NIP-11 Accept header, and 404 elsewhere', async () => {
    const emu = await start();
    await relayApi(emu, 'POST', 'r1', minimalBody(1));
    const page = await nip11(emu, 'r1.example.com', { headers: {} });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const other = await nip11(emu, 'r1.example.com', { path: '/x', headers: { accept: 'application/json' } });
    expect(other.status).toBe(404);
  });

  it('serves the relays of its CONFIG dir from the start', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'f1.toml'), stringifyToml(minimalBody('f1')));
    const emu = await start({ configDir: dir });
    expect((await nip11(emu, 'rf1.example.com')).json).toMatchObject({ name: 'Rf1', self: SELF });
  });

  it('keeps management requests and relay hosts apart', async () => {
    const emu = await start({ apiHost: 'api.zooid.test' });
    await call(emu, 'POST', '/relay/a', minimalBody(1), { host: 'api.zooid.test' });
    // A signed management request sent with a relay's host reaches that relay, not the API.
    const viaRelay = await call(emu, 'POST', '/relay/b', minimalBody(2), { host: 'r1.example.com' });
    expect(viaRelay.status).toBe(404);
    expect(emu.relays().has('b')).toBe(false);
    expect(emu.requests.map((r) => r.path)).toEqual(['/relay/a']);
    // NIP-11 asked of the API host is the API's 404, never a relay's document.
    const viaApi = await nip11(emu, 'api.zooid.test');
    expect(viaApi.status).toBe(404);
    expect(viaApi.text).toBe('404 page not found\n');
    // A relay whose host is the API host is stored but never served.
    await call(emu, 'POST', '/relay/c', minimalBody(3, { host: 'api.zooid.test' }), {
      host: 'api.zooid.test',
    });
    expect(emu.relays().has('c')).toBe(true);
    expect((await nip11(emu, 'api.zooid.test')).text).toBe('404 page not found\n');
  });
});
