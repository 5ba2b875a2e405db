/**
 * What an abandoned (timed-out) request does in zooid, on one fake clock for bosun and zooid: zooid
 * has read the whole request, so the client's abort no longer stops it — zooid applies it when its
 * own work is done, whenever that is. A hold measured from the client's timeout ("wait as long as the
 * timeout again") therefore does not cover a request zooid keeps longer than timeout + hold: a newer
 * PATCH sent after the hold lands first and the abandoned, older one overwrites it. This is the
 * out-of-order push seen in test/chaos/faults.test.ts (configs 12, 72, 57) — not an artefact of the
 * emulator's log: the stale config is what zooid ends up holding.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createNip98Signer } from '../../../src/nostr/nip98.js';
import { ZooidClient } from '../../../src/push/zooid/client.js';
import { startZooidEmulator, type ZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { FakeClock } from '../../support/clock.js';
import { BOSUN_PUBKEY, BOSUN_SECRET, minimalBody } from './helpers.js';

const emulators: ZooidEmulator[] = [];
afterEach(async () => {
  await Promise.all(emulators.splice(0).map((e) => e.close()));
});

const tick = () => new Promise((r) => setTimeout(r, 1));

describe('an abandoned request in zooid', () => {
  it('lands after a newer one when zooid keeps it longer than timeout + hold', async () => {
    const TIMEOUT = 300;
    const HOLD = TIMEOUT; // src/peer.ts: inDoubtHoldMs = the sync timeout
    const clock = new FakeClock(Date.now());
    const emu = await startZooidEmulator({ whitelist: [BOSUN_PUBKEY], clock });
    emulators.push(emu);
    const client = new ZooidClient({
      apiUrl: emu.url,
      signer: createNip98Signer(BOSUN_SECRET, { clock }),
      clock,
      timeoutMs: TIMEOUT,
    });
    expect((await client.create('r1', minimalBody(1))).ok).toBe(true);

    // Version 57: zooid reads it, then is slow (a latency spike) before applying it.
    emu.setFaults({ latencyMs: 700 });
    const stale = client.patch('r1', { info: { name: 'v57' } });
    while (emu.requests.length < 2 || emu.requests[1]!.body === null) await tick();
    await clock.advance(TIMEOUT);
    const gaveUp = await stale;
    expect(gaveUp).toMatchObject({ ok: false, kind: 'transient', inDoubt: true });

    // The syncer holds the relay for HOLD from now, then sends version 72.
    await clock.advance(HOLD);
    emu.setFaults({});
    expect((await client.patch('r1', { info: { name: 'v72' } })).ok).toBe(true);
    expect(emu.relays().get('r1')?.info.name).toBe('v72');

    // zooid finishes the abandoned request: the older config overwrites the newer one.
    await clock.advance(700 - TIMEOUT - HOLD);
    while (emu.accepted('r1').length < 3) await tick();
    expect(emu.accepted('r1').map((c) => (c.body as { info?: { name?: string } }).info?.name)).toEqual([
      'R1',
      'v72',
      'v57',
    ]);
    expect(emu.relays().get('r1')?.info.name).toBe('v57');
  });
});
