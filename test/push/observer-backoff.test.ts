import { afterEach, describe, expect, it } from 'vitest';
import { Observer } from '../../src/push/observer.js';
import type { SyncOutcome } from '../../src/push/syncer.js';
import { commandRig } from '../support/command-rig.js';
import { captureLogger, keypair } from '../support/env.js';

const admin = { role: 'admin' as const, actor: 'admin' };
const { pubkey } = keypair();

describe('observer: a sync that fails inside bosun', () => {
  const open: { close: () => Promise<void> | void }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function rig(sync: (relayId: string) => Promise<SyncOutcome>) {
    const { store, clock, notifier, command } = commandRig(open);
    const { logger, lines } = captureLogger();
    const observer = new Observer({ store, notifier, clock, logger, sync });
    open.push({ close: () => observer.stop() });
    return { clock, command, observer, lines };
  }

  it('is tried again after 1 s, then 2, 4, 8 … up to 30 s, and at once when the relay changes', async () => {
    const tries: number[] = [];
    let failing = true;
    const { clock, command, observer, lines } = await rig(async () => {
      tries.push(clock.now());
      if (failing) throw new Error('database or disk is full');
      return { kind: 'synced', version: 1 };
    });
    await observer.start();
    const start = clock.now();
    await command.createRelay(admin, { id: 'r1', host: 'r1.example.com', info: { pubkey } });
    await observer.idle();
    await clock.advance(120_000);
    const gaps = tries.map((t, i) => (i === 0 ? t - start : t - tries[i - 1]!));
    expect(gaps).toEqual([0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    const logged = lines.map((l) => JSON.parse(l)).filter((l) => l.relayId === 'r1');
    expect(logged.map((l) => [l.failures, l.retryInMs])).toEqual(
      gaps.map((_, i) => [i + 1, Math.min(1000 * 2 ** i, 30_000)]),
    );

    // A change does not wait out the backoff; a sync that returns ends the failure streak.
    failing = false;
    const before = tries.length;
    await command.updateRelay(admin, 'r1', { info: { name: 'changed' } });
    await observer.idle();
    expect(tries.length).toBe(before + 1);
    expect(tries.at(-1)).toBe(clock.now());
    await clock.advance(120_000);
    expect(tries.length).toBe(before + 1);

    // The next failure starts over at 1 s.
    failing = true;
    await command.updateRelay(admin, 'r1', { info: { name: 'again' } });
    await observer.idle();
    await clock.advance(1000);
    expect(tries.length).toBe(before + 3);

    // Once the cause is gone (the database takes writes again), a waiting relay goes at once.
    await clock.advance(2000 + 4000);
    expect(tries.length).toBe(before + 5);
    failing = false;
    observer.retryFailedNow();
    await observer.idle();
    expect(tries.length).toBe(before + 6);
    expect(tries.at(-1)).toBe(clock.now());
    await clock.advance(120_000);
    expect(tries.length).toBe(before + 6);
  });
});
