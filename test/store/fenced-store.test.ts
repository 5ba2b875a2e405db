import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ActivityDraft } from '../../src/domain/activity.js';
import { FencedStore } from '../../src/store/fenced-store.js';
import type { Fence, Store } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FencedError } from '../../src/store/write-errors.js';
import { keypair, tempDir } from '../support/env.js';
import { relayRecord } from '../support/relays.js';

const owner = keypair().pubkey;
const act = (relayId: string): ActivityDraft => ({
  type: 'create_relay',
  relayId,
  owner,
  actor: 'test',
  payload: { version: 1 },
  createdAt: 1000,
});

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

function openStore(): Store {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'bosun.db'));
  cleanup = async () => {
    await store.close();
    dir.cleanup();
  };
  return store;
}

describe('FencedStore', () => {
  it('refuses a worker write before there is a fence, without reaching the database', async () => {
    const store = openStore();
    const fenced = new FencedStore(store, () => null);
    const batch = {
      relays: [{ kind: 'insert' as const, relay: relayRecord('r1', owner) }],
      activities: [act('r1')],
    };
    await expect(fenced.commit(batch)).rejects.toBeInstanceOf(FencedError);
    await expect(fenced.setCursor('observer', 3)).rejects.toBeInstanceOf(FencedError);
    await expect(fenced.touchLiveChecks(['r1'], 5000)).rejects.toBeInstanceOf(FencedError);
    expect(await store.getRelay('r1')).toBeUndefined();
    expect(await store.lastActivityId()).toBe(0);
    expect(await store.getCursor('observer')).toBe(0);
  });

  it('writes with the current epoch and refuses a stale one once a newer term began', async () => {
    const store = openStore();
    let fence: Fence | null = { lease: 'worker', epoch: await store.newLeaseEpoch('worker') };
    const fenced = new FencedStore(store, () => fence);
    await fenced.commit({
      relays: [{ kind: 'insert', relay: relayRecord('r1', owner) }],
      activities: [act('r1')],
    });
    await fenced.setCursor('observer', 1);
    expect(await store.getCursor('observer')).toBe(1);

    // Another replica takes the lease over; this one still shows its old fence.
    await store.newLeaseEpoch('worker');
    const late = fenced.commit({
      relays: [{ kind: 'insert', relay: relayRecord('r2', owner) }],
      activities: [act('r2')],
    });
    await expect(late).rejects.toBeInstanceOf(FencedError);
    await expect(fenced.setCursor('observer', 2)).rejects.toBeInstanceOf(FencedError);
    await expect(fenced.touchLiveChecks(['r1'], 5000)).rejects.toBeInstanceOf(FencedError);
    expect(await store.getRelay('r2')).toBeUndefined();
    expect(await store.getCursor('observer')).toBe(1);

    // Reads and unfenced writes pass straight through.
    expect((await fenced.getRelay('r1'))?.id).toBe('r1');
    expect(await fenced.lastActivityId()).toBe(1);
    fence = { lease: 'worker', epoch: 2 };
    await fenced.setCursor('observer', 2);
    expect(await fenced.getCursor('observer')).toBe(2);
  });
});
