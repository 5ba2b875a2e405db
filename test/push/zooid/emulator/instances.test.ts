import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../../../src/domain/keys.js';
import { createNip98Signer, type Nip98Signer } from '../../../../src/nostr/nip98.js';
import type { ZooidEmulator } from '../../../../src/push/zooid/emulator.js';
import { minimalBody, nip11, OWNER_PUBKEY, raw, useEmulators } from '../helpers.js';

const KEYS = ['a', 'b', 'c'].map((ch) => ch.repeat(64));
const { start, tempDir } = useEmulators('zooid-instance-');
const postAs = (emu: ZooidEmulator, signer: Nip98Signer, id: string, body = minimalBody(id)) =>
  raw(emu.url, { method: 'POST', path: `/relay/${id}`, body, signer });

describe('several emulators in one process (issue 17: one per zooid instance)', () => {
  it('three instances keep their own whitelist, config dir, relays and relay hosts', async () => {
    const emulators: ZooidEmulator[] = [];
    for (const key of KEYS) {
      emulators.push(await start({ whitelist: [publicKeyOf(key)], configDir: tempDir() }));
    }
    expect(new Set(emulators.map((e) => e.port)).size).toBe(3);
    const signers = KEYS.map((k) => createNip98Signer(k));
    // Every instance accepts only its own key: 201 on the diagonal, 403 elsewhere.
    const statuses: number[][] = [];
    for (const [i, emu] of emulators.entries()) {
      const row: number[] = [];
      for (const [j, signer] of signers.entries()) {
        const body = minimalBody(`${j}`, { info: { name: `R${j} on ${i}`, pubkey: OWNER_PUBKEY } });
        const res = await postAs(emu, signer, `r${j}`, body);
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
        const res = await nip11(emu, `r${j}.example.com`);
        expect({ i, j, status: res.status }).toEqual({ i, j, status: i === j ? 200 : 404 });
      }
    }
    // Changing one instance's whitelist leaves the others alone.
    emulators[0]!.setWhitelist([publicKeyOf(KEYS[1]!)]);
    expect(emulators[0]!.pubkeysAllowed).toEqual([publicKeyOf(KEYS[1]!)]);
    expect(emulators[1]!.pubkeysAllowed).toEqual([publicKeyOf(KEYS[1]!)]);
    expect(emulators[2]!.pubkeysAllowed).toEqual([publicKeyOf(KEYS[2]!)]);
    expect((await postAs(emulators[0]!, signers[1]!, 'x')).status).toBe(201);
    expect((await postAs(emulators[2]!, signers[1]!, 'y')).status).toBe(403);
  });
});
