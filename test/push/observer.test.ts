import { afterEach, describe, expect, it } from 'vitest';
import { Observer } from '../../src/push/observer.js';
import type { SyncOutcome } from '../../src/push/syncer.js';
import { DelegatingStore } from '../../src/store/delegating-store.js';
import { commandRig } from '../support/command-rig.js';
import { captureLogger, keypair } from '../support/env.js';
import { until } from '../support/until.js';

const admin = { role: 'admin' as const, actor: 'admin' };
const { pubkey } = keypair();

type Call = { relayId: string; force: boolean; at: number };

/** A failure inside bosun (the sync throws, as on a full disk) until `heal()`; then every sync succeeds. */
function fullDisk() {
  let failing = true;
  return {
    outcome: (): SyncOutcome => {
      if (failing) throw new Error('database or disk is full');
      return { kind: 'synced', version: 1 };
    },
    heal: () => {
      failing = false;
    },
  };
}

describe('Observer: what it holds per relay', () => {
  const open: { close: () => Promise<void> | void }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  /** An observer over a real store whose sync answers with `outcome(relayId)`. */
  async function rig(outcome: (relayId: string) => SyncOutcome) {
    const { store, clock, notifier, command } = commandRig(open);
    const calls: Call[] = [];
    const observer = new Observer({
      store,
      notifier,
      clock,
      logger: captureLogger().logger,
      sync: async (relayId, _signal, { force }) => {
        calls.push({ relayId, force, at: clock.now() });
        return outcome(relayId);
      },
    });
    open.push({ close: () => observer.stop() });
    const create = (id: string) =>
      command.createRelay(admin, { id, host: `${id}.example.com`, info: { pubkey } });
    return { clock, command, observer, calls, create };
  }

  it('a forced sync is forced once; the next one is not', async () => {
    const { observer, calls, create } = await rig(() => ({ kind: 'synced', version: 1 }));
    await observer.start();
    await create('r1');
    await observer.idle();
    observer.enqueue('r1', { force: true });
    await observer.idle();
    observer.enqueue('r1');
    await observer.idle();
    expect(calls.map((c) => c.force)).toEqual([false, true, false]);
  });

  it('the cursor stays before a change whose sync threw, and passes it once a sync returns', async () => {
    const disk = fullDisk();
    const { clock, observer, calls, create } = await rig(disk.outcome);
    await observer.start();
    const before = observer.cursor;
    await create('r1');
    await observer.idle();
    expect(calls).toHaveLength(1);
    expect(observer.cursor).toBe(before);
    disk.heal();
    await clock.advance(1000);
    await observer.idle();
    expect(calls).toHaveLength(2);
    expect(observer.cursor).toBeGreaterThan(before);
  });

  it('retryFailedNow re-runs relays that failed inside bosun, not those waiting on a zooid retry', async () => {
    const disk = fullDisk();
    const { clock, observer, calls, create } = await rig((relayId) => {
      if (relayId === 'zooid-says-later') return { kind: 'retry', at: clock.now() + 60_000, error: '503' };
      return disk.outcome();
    });
    await observer.start();
    await create('inside-bosun');
    await create('zooid-says-later');
    await observer.idle();
    expect(calls.map((c) => c.relayId).sort()).toEqual(['inside-bosun', 'zooid-says-later']);

    disk.heal();
    observer.retryFailedNow();
    await observer.idle();
    expect(calls.slice(2).map((c) => [c.relayId, c.at])).toEqual([['inside-bosun', clock.now()]]);
    // Its backoff timer was cancelled with the early run: nothing more for it a second later.
    await clock.advance(1000);
    expect(calls).toHaveLength(3);
    // The zooid retry keeps its own time.
    await clock.advance(59_000);
    expect(calls.slice(3).map((c) => c.relayId)).toEqual(['zooid-says-later']);
  });

  it('stop cancels every retry timer; a start after it begins anew from the persisted cursor', async () => {
    const disk = fullDisk();
    const { clock, observer, calls, create } = await rig(disk.outcome);
    await observer.start();
    await create('r1');
    await observer.idle();
    expect(clock.pending()).toBe(1);
    await observer.stop();
    expect(clock.pending()).toBe(0);

    disk.heal();
    const seen = calls.length;
    await observer.start();
    await observer.idle();
    // r1's change is read again from the cursor (it never synced), and synced.
    expect(new Set(calls.slice(seen).map((c) => c.relayId))).toEqual(new Set(['r1']));
    expect(observer.cursor).toBeGreaterThan(0);
  });
  it('writes its cursor one write at a time: syncs done meanwhile coalesce into the next write', async () => {
    const { store, clock, notifier, command } = commandRig(open);
    // Cursor writes wait for release(), so the next syncs finish while one is in flight.
    const writes: number[] = [];
    let release = () => {};
    class Held extends DelegatingStore {
      override async setCursor(name: string, position: number): Promise<void> {
        writes.push(position);
        await new Promise<void>((r) => {
          release = r;
        });
        return super.setCursor(name, position);
      }
    }
    const synced: string[] = [];
    const observer = new Observer({
      store: new Held(store),
      notifier,
      clock,
      logger: captureLogger().logger,
      sync: async (relayId) => {
        synced.push(relayId);
        return { kind: 'synced', version: 1 };
      },
    });
    open.push({ close: () => observer.stop() });
    await observer.start();
    const create = async (id: string, n: number) => {
      await command.createRelay(admin, { id, host: `${id}.example.com`, info: { pubkey } });
      await until(() => synced.length === n && observer.cursor === n, 2000, `${id} synced`, 1);
      await new Promise((r) => setImmediate(r));
    };
    await create('r1', 1);
    await create('r2', 2);
    await create('r3', 3);
    expect(writes).toEqual([1]);
    release();
    await until(() => writes.length === 2, 2000, 'the next write', 1);
    release();
    await observer.idle();
    expect(writes).toEqual([1, 3]);
    expect(await store.getCursor('observer')).toBe(3);
  });
});
