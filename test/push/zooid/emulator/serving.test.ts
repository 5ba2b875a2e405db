import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../../../src/domain/keys.js';
import { createNip98Signer, type Nip98Signer } from '../../../../src/nostr/nip98.js';
import {
  runZooidEmulatorCli,
  startZooidEmulator,
  type ZooidEmulator,
  type ZooidEmulatorOptions,
} from '../../../../src/push/zooid/emulator.js';
import { FakeClock } from '../../../support/clock.js';
import { spawnBosun } from '../../../support/spawn.js';
import {
  BOSUN_PUBKEY,
  BOSUN_SECRET,
  minimalBody,
  nip11,
  RELAY_SECRET,
  raw,
  useEmulators,
} from '../helpers.js';

const OTHER_RELAY_SECRET = '6'.repeat(64);
const emulators = useEmulators('zooid-serving-');
const { tempDir } = emulators;

async function start(
  opts: Partial<ZooidEmulatorOptions> = {},
): Promise<{ emu: ZooidEmulator; signer: Nip98Signer }> {
  const emu = await emulators.start(opts);
  return { emu, signer: createNip98Signer(BOSUN_SECRET, opts.clock ? { clock: opts.clock } : {}) };
}
const api = (emu: ZooidEmulator, signer: Nip98Signer, method: string, id: string, body?: object) =>
  raw(emu.url, { method, path: `/relay/${id}`, signer, ...(body === undefined ? {} : { body }) });
/** The served name, or the status when the host answers no document. */
async function servedName(emu: ZooidEmulator, host: string): Promise<string | number | undefined> {
  const res = await nip11(emu, host);
  return res.status === 200 ? (res.json as { name?: string }).name : res.status;
}

describe('failLoad: accepted by the API, never served', () => {
  it('stores and writes the relay but answers 404 on its host, after any number of PUTs', async () => {
    const dir = tempDir();
    const { emu, signer } = await start({ configDir: dir, failLoad: ['r1'] });
    expect((await api(emu, signer, 'POST', 'r1', minimalBody(1))).status).toBe(201);
    expect((await api(emu, signer, 'POST', 'r2', minimalBody(2))).status).toBe(201);
    expect(emu.relays().has('r1')).toBe(true);
    expect(parseToml(readFileSync(join(dir, 'r1.toml'), 'utf8'))).toMatchObject({ host: 'r1.example.com' });
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
    expect(emu.served('r1')).toBeNull();
    expect(await servedName(emu, 'r2.example.com')).toBe('R2');
    expect((await api(emu, signer, 'PUT', 'r1', minimalBody(1))).status).toBe(200);
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
  });

  it('takes a predicate, and setServing applies from the next load (reload loads all)', async () => {
    const { emu, signer } = await start({ failLoad: (id) => id.startsWith('bad') });
    await api(emu, signer, 'POST', 'bad1', minimalBody(1));
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
    emu.setServing({ failLoad: [] });
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
    emu.reload();
    expect(await servedName(emu, 'r1.example.com')).toBe('R1');
    emu.setServing({ failLoad: ['bad1'] });
    await api(emu, signer, 'PATCH', 'bad1', { info: { name: 'N' } });
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
  });
});

describe('reloadDelayMs: the old document is served until zooid reloads', () => {
  it('serves nothing, then the old name, then nothing again, each until the delay passes', async () => {
    const clock = new FakeClock(Date.now());
    const { emu, signer } = await start({ clock, reloadDelayMs: 2_000 });
    expect((await api(emu, signer, 'POST', 'r1', minimalBody(1))).status).toBe(201);
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
    await clock.advance(1_999);
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
    await clock.advance(1);
    expect(await servedName(emu, 'r1.example.com')).toBe('R1');

    await api(emu, signer, 'PATCH', 'r1', { info: { name: 'First' } });
    await clock.advance(500);
    await api(emu, signer, 'PATCH', 'r1', { info: { name: 'Second' } });
    expect(await servedName(emu, 'r1.example.com')).toBe('R1');
    await clock.advance(1_500);
    expect(await servedName(emu, 'r1.example.com')).toBe('First');
    await clock.advance(500);
    expect(await servedName(emu, 'r1.example.com')).toBe('Second');

    await api(emu, signer, 'DELETE', 'r1');
    expect(await servedName(emu, 'r1.example.com')).toBe('Second');
    await clock.advance(2_000);
    expect(await servedName(emu, 'r1.example.com')).toBe(404);
  });

  it('a shorter delay set later never lets an older change overwrite a newer one', async () => {
    const clock = new FakeClock(Date.now());
    const { emu, signer } = await start({ clock, reloadDelayMs: 5_000 });
    await api(emu, signer, 'POST', 'r1', minimalBody(1));
    emu.setServing({ reloadDelayMs: 100 });
    await api(emu, signer, 'PATCH', 'r1', { info: { name: 'Newer' } });
    await clock.advance(100);
    expect(await servedName(emu, 'r1.example.com')).toBe('Newer');
    await clock.advance(5_000);
    expect(await servedName(emu, 'r1.example.com')).toBe('Newer');
  });

  it('the relays of the CONFIG dir are served at once at start', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'f1.toml'), stringifyToml(minimalBody('f1')));
    const { emu } = await start({ configDir: dir, clock: new FakeClock(Date.now()), reloadDelayMs: 60_000 });
    expect(await servedName(emu, 'rf1.example.com')).toBe('Rf1');
  });
});

describe('servedSecret: a relay served under another key', () => {
  it('serves self as the override key’s pubkey, from the next load', async () => {
    const { emu, signer } = await start({ servedSecret: { r1: OTHER_RELAY_SECRET } });
    await api(emu, signer, 'POST', 'r1', minimalBody(1));
    await api(emu, signer, 'POST', 'r2', minimalBody(2));
    expect(emu.served('r1')?.self).toBe(publicKeyOf(OTHER_RELAY_SECRET));
    expect(emu.served('r2')?.self).toBe(publicKeyOf(RELAY_SECRET));
    expect(emu.relays().get('r1')?.secret).toBe(RELAY_SECRET);
    emu.setServing({ servedSecret: {} });
    emu.reload();
    expect(emu.served('r1')?.self).toBe(publicKeyOf(RELAY_SECRET));
  });
});

describe('edits behind bosun’s back', () => {
  it('editRelayName changes the file and the served name, without an API request', async () => {
    const dir = tempDir();
    const { emu, signer } = await start({ configDir: dir });
    await api(emu, signer, 'POST', 'r1', minimalBody(1));
    const requests = emu.requests.length;
    emu.editRelayName('r1', 'Edited by hand');
    expect(await servedName(emu, 'r1.example.com')).toBe('Edited by hand');
    expect(emu.relays().get('r1')?.info.name).toBe('Edited by hand');
    expect(parseToml(readFileSync(join(dir, 'r1.toml'), 'utf8'))).toMatchObject({
      info: { name: 'Edited by hand' },
    });
    expect(emu.requests.length).toBe(requests);
    expect(emu.accepted('r1').length).toBe(1);
    emu.editRelay('r1', (c) => {
      c.info.description = 'Also by hand';
    });
    expect(emu.served('r1')?.description).toBe('Also by hand');
    expect(() => emu.editRelayName('nope', 'x')).toThrow(/no relay "nope"/);
  });

  it('reload() picks up a file edited on disk, and a file removed', async () => {
    const dir = tempDir();
    const { emu, signer } = await start({ configDir: dir });
    await api(emu, signer, 'POST', 'r1', minimalBody(1));
    await api(emu, signer, 'POST', 'r2', minimalBody(2));
    writeFileSync(join(dir, 'r1.toml'), stringifyToml(minimalBody(1, { info: { name: 'On disk' } })));
    rmSync(join(dir, 'r2.toml'));
    expect(await servedName(emu, 'r1.example.com')).toBe('R1');
    emu.reload();
    expect(await servedName(emu, 'r1.example.com')).toBe('On disk');
    expect(await servedName(emu, 'r2.example.com')).toBe(404);
    expect([...emu.relays().keys()]).toEqual(['r1']);
  });
});

describe('the CLI knobs', () => {
  it('passes --fail-load, --reload-delay-ms and --served-secret, logging pubkeys, never secrets', async () => {
    const lines: string[] = [];
    const emu = await runZooidEmulatorCli({
      whitelist: BOSUN_PUBKEY,
      failLoad: 'r1, r3',
      reloadDelayMs: '0',
      servedSecret: `r2=${OTHER_RELAY_SECRET}`,
      log: (l) => lines.push(l),
    });
    emulators.track(emu);
    const line = JSON.parse(lines[0]!);
    expect(line.fail_load).toEqual(['r1', 'r3']);
    expect(line.served_under).toEqual({ r2: publicKeyOf(OTHER_RELAY_SECRET) });
    expect(lines[0]).not.toContain(OTHER_RELAY_SECRET);
    const signer = createNip98Signer(BOSUN_SECRET);
    await api(emu, signer, 'POST', 'r1', minimalBody(1));
    await api(emu, signer, 'POST', 'r2', minimalBody(2));
    expect(emu.served('r1')).toBeNull();
    expect(emu.served('r2')?.self).toBe(publicKeyOf(OTHER_RELAY_SECRET));

    const bad = (o: Partial<Parameters<typeof runZooidEmulatorCli>[0]>) =>
      runZooidEmulatorCli({ whitelist: BOSUN_PUBKEY, log: () => {}, ...o });
    await expect(bad({ reloadDelayMs: '-1' })).rejects.toThrow(/--reload-delay-ms/);
    await expect(bad({ servedSecret: 'r1' })).rejects.toThrow(/--served-secret: give id=/);
    await expect(bad({ servedSecret: 'r1=abc' })).rejects.toThrow(/not a valid 64-hex Nostr key/);
  });

  it('SIGHUP makes `bosun zooid-emulator` reload its config dir', async () => {
    const dir = tempDir();
    const p = spawnBosun(['zooid-emulator', '--port', '0', '--whitelist', BOSUN_PUBKEY, '--config-dir', dir]);
    try {
      const url = JSON.parse(await p.waitFor(/zooid emulator listening/)).url as string;
      expect((await nip11({ url }, 'rh.example.com')).status).toBe(404);
      writeFileSync(join(dir, 'h.toml'), stringifyToml(minimalBody('h')));
      p.child.kill('SIGHUP');
      await p.waitFor(/zooid emulator reloaded/);
      expect((await nip11({ url }, 'rh.example.com')).json).toMatchObject({ name: 'Rh' });
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });
});

describe('no whitelist: a zooid that only serves its relays', () => {
  it('serves the relays of its CONFIG dir and refuses every management request (403)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'w1.toml'), stringifyToml(minimalBody('w1')));
    const emu = emulators.track(await startZooidEmulator({ configDir: dir }));
    expect(emu.pubkeysAllowed).toEqual([]);
    expect(await servedName(emu, 'rw1.example.com')).toBe('Rw1');
    const signer = createNip98Signer(BOSUN_SECRET);
    const res = await api(emu, signer, 'POST', 'r2', minimalBody(2));
    expect(res.status).toBe(403);
    expect(res.json).toEqual({ error: 'pubkey not in whitelist' });
    expect(emu.relays().has('r2')).toBe(false);
  });
});
