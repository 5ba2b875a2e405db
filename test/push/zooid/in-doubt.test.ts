/**
 * What an abandoned (timed-out) request does in zooid, on one fake clock for bosun and zooid: zooid
 * has read the whole request, so the client's abort no longer stops it — zooid applies it when its
 * own work is done, whenever that is. A hold measured from the client's timeout ("wait as long as the
 * timeout again") therefore does not cover a request zooid keeps longer than timeout + hold: a newer
 * PATCH sent after the hold lands first and the abandoned, older one overwrites it. This is the
 * out-of-order push seen in test/chaos/faults.test.ts (configs 12, 72, 57) — not an artefact of the
 * emulator's log: the stale config is what zooid ends up holding.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../../src/command.js';
import { createNip98Signer } from '../../../src/nostr/nip98.js';
import { Infra } from '../../../src/push/syncer.js';
import { ZooidClient } from '../../../src/push/zooid/client.js';
import type { Store } from '../../../src/store/port.js';
import { FakeClock } from '../../support/clock.js';
import { BOSUN_SECRET, minimalBody, useEmulators } from './helpers.js';

const emulators = useEmulators();

const tick = () => new Promise((r) => setTimeout(r, 1));
const TIMEOUT = 300;

/** An emulator on a fake clock holding r1, and a client to it whose requests time out after TIMEOUT. */
async function withR1() {
  const clock = new FakeClock(Date.now());
  const emu = await emulators.start({ clock });
  const client = new ZooidClient({
    apiUrl: emu.url,
    signer: createNip98Signer(BOSUN_SECRET, { clock }),
    clock,
    timeoutMs: TIMEOUT,
  });
  expect((await client.create('r1', minimalBody(1))).ok).toBe(true);
  return { clock, emu, client };
}

describe('an abandoned request in zooid', () => {
  it('is over only when zooid answered it, however long past timeout + hold that is', async () => {
    const HOLD = TIMEOUT; // src/peer.ts: inDoubtHoldMs = the sync timeout
    const { clock, emu, client } = await withR1();

    // Version 57: zooid reads it, then is slow (a latency spike) before applying it.
    emu.setFaults({ latencyMs: 700 });
    const stale = client.patch('r1', { info: { name: 'v57' } });
    while (emu.requests.length < 2 || emu.requests[1]!.body === null) await tick();
    await clock.advance(TIMEOUT);
    const gaveUp = await stale;
    expect(gaveUp).toMatchObject({ ok: false, kind: 'transient', inDoubt: true });

    // A hold of HOLD from the timeout is not enough: zooid still has the request.
    let over = false;
    if (!gaveUp.ok)
      void gaveUp.settled?.then(() => {
        over = true;
      });
    expect(gaveUp.ok === false && gaveUp.settled).toBeInstanceOf(Promise);
    await clock.advance(HOLD);
    await tick();
    expect(over).toBe(false);
    expect(emu.accepted('r1')).toHaveLength(1);

    // zooid answers the abandoned request once it applied it: only then is it over, and the newer
    // version sent after that is the one zooid keeps.
    await clock.advance(700 - TIMEOUT - HOLD);
    while (!over) await tick();
    expect(emu.accepted('r1')).toHaveLength(2);
    emu.setFaults({});
    expect((await client.patch('r1', { info: { name: 'v72' } })).ok).toBe(true);
    expect(emu.accepted('r1').map((c) => (c.body as { info?: { name?: string } }).info?.name)).toEqual([
      'R1',
      'v57',
      'v72',
    ]);
    expect(emu.relays().get('r1')?.info.name).toBe('v72');
    expect(clock.pending()).toBe(0);
  });

  it("holds the relay (Infra.pending) after a move's DELETE whose answer was lost, until it cannot land", async () => {
    const { clock, emu, client } = await withR1();
    const infra = new Infra({
      store: {} as Store,
      command: {} as Command,
      client,
      blossomS3: null,
      clock,
      random: () => 0.5,
      retry: { baseMs: 1000, capMs: 1000, maxAttempts: 3, jitter: 0 },
      inDoubtHoldMs: TIMEOUT,
      logger: pino({ level: 'silent' }),
    });
    expect(infra.pending('r1')).toBeUndefined();

    emu.setFaults({ latencyMs: 700 });
    const removing = infra.removeCopy('r1');
    while (emu.requests.length < 2) await tick();
    await clock.advance(TIMEOUT);
    expect(await removing).toMatchObject({ ok: false, inDoubt: true });
    const pending = infra.pending('r1');
    expect(pending).toBeInstanceOf(Promise);
    let over = false;
    void pending!.then(() => {
      over = true;
    });
    // zooid still has the DELETE: another target's request for r1 must wait.
    await clock.advance(TIMEOUT);
    await tick();
    expect(over).toBe(false);
    await clock.advance(700 - 2 * TIMEOUT);
    while (!over) await tick();
    expect(emu.relays().has('r1')).toBe(false);
    expect(infra.pending('r1')).toBeUndefined();
  });
});
