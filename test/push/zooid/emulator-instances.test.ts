import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../../src/domain/keys.js';
import { createNip98Signer } from '../../../src/nostr/nip98.js';
import { startZooidEmulator, type ZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { minimalBody, OWNER_PUBKEY, raw } from './helpers.js';

const KEYS = ['a', 'b', 'c'].map((ch) => ch.repeat(64));
const emulators: ZooidEmulator[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(emulators.map((e) => e.close()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('several emulators in one process (issue 17: one per zooid instance)', () => {
  it('three instances keep their own whitelist, config dir, relays and relay hosts', async () => {
    for (const key of KEYS) {
      const dir = mkdtempSync(join(tmpdir(), 'zooid-instance-'));
      dirs.push(dir);
      emulators.push(await startZooidEmulator({ whitelist: [publicKeyOf(key)], configDir: dir }));
    }
    expect(new Set(emulators.map((e) => e.port)).size).toBe(3);
    const signers = KEYS.map((k) => createNip98Signer(k));
    // Every instance accepts only its own key: 201 on the diagonal, 403 elsewhere.
    const statuses: number[][] = [];
    for (const [i, emu] of emulators.entries()) {
      const row: number[] = [];
      for (const [j, signer] of signers.entries()) {
        const res = await raw(emu.url, {
          method: 'POST',
          path: `/relay/r${j}`,
          body: minimalBody(`${j}`, { info: { name: `R${j} on ${i}`, pubkey: OWNER_PUBKEY } }),
          signer,
        });
        row.push(res.status);
      }
      statuses.push(row);
    }
    expect(statuses).toEqual([
      [201, 403, 403],
      [403, 201, 403],
      [403, 403, 201],
    ]);
    for (const [i, emu] of emulators.entries()) {
      expect([...emu.relays().keys()]).toEqual([`r${i}`]);
      expect(existsSync(join(emu.dir!, `r${i}.toml`))).toBe(true);
      for (const j of [0, 1, 2]) {
        const res = await raw(emu.url, {
          method: 'GET',
          path: '/',
          host: `r${j}.example.com`,
          headers: { accept: 'application/nostr+json' },
        });
        expect({ i, j, status: res.status }).toEqual({ i, j, status: i === j ? 200 : 404 });
      }
    }
    // Changing one instance's whitelist leaves the others alone.
    emulators[0]!.setWhitelist([publicKeyOf(KEYS[1]!)]);
    expect(emulators[0]!.pubkeysAllowed).toEqual([publicKeyOf(KEYS[1]!)]);
    expect(emulators[1]!.pubkeysAllowed).toEqual([publicKeyOf(KEYS[1]!)]);
    expect(emulators[2]!.pubkeysAllowed).toEqual([publicKeyOf(KEYS[2]!)]);
    const moved = await raw(emulators[0]!.url, {
      method: 'POST',
      path: '/relay/x',
      body: minimalBody('x'),
      signer: signers[1]!,
    });
    expect(moved.status).toBe(201);
    const refused = await raw(emulators[2]!.url, {
      method: 'POST',
      path: '/relay/y',
      body: minimalBody('y'),
      signer: signers[1]!,
    });
    expect(refused.status).toBe(403);
  });
});
