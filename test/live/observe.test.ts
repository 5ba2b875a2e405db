import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command } from '../../src/command.js';
import { DEFAULT_REPAIR, type LiveObservation, nextLiveState, UNKNOWN_LIVE } from '../../src/domain/live.js';
import type { Principal } from '../../src/domain/principal.js';
import { Notifier } from '../../src/notifier.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../support/clock.js';
import { keypair, relayBody, tempDir } from '../support/env.js';

const admin: Principal = { role: 'admin', actor: 'admin:test' };
const policy = { graceMs: 30_000, backoffMs: 300_000, capMs: 3_600_000 };
const seen = (status: LiveObservation['status'], error = ''): LiveObservation => ({
  status,
  error,
  diff: null,
});
const serve = { shouldServe: true, canRepair: true, policy };

describe('nextLiveState', () => {
  it('repairs a stale relay once the grace has passed, then backs off, doubling up to the cap', () => {
    let t = nextLiveState(UNKNOWN_LIVE, seen('stale'), 1000, serve);
    expect(t).toMatchObject({ changed: true, repair: false });
    expect(t.live).toMatchObject({ status: 'stale', since: 1000, checkedAt: 1000, nextRepairAt: 31_000 });
    t = nextLiveState(t.live, seen('stale'), 30_999, serve);
    expect(t).toMatchObject({ changed: false, repair: false });
    t = nextLiveState(t.live, seen('stale'), 31_000, serve);
    expect(t.repair).toBe(true);
    expect(t.live).toMatchObject({ since: 1000, repairs: 1, nextRepairAt: 331_000 });
    t = nextLiveState(t.live, seen('stale'), 100_000, serve);
    expect(t.repair).toBe(false);
    t = nextLiveState(t.live, seen('stale'), 331_000, serve);
    expect(t.live).toMatchObject({ repairs: 2, nextRepairAt: 931_000 });
    let live = t.live;
    for (let i = 0; i < 10; i++) live = nextLiveState(live, seen('stale'), live.nextRepairAt!, serve).live;
    expect(live.nextRepairAt! - live.checkedAt!).toBe(policy.capMs);
  });

  it('a status that changes starts over; a slow reload that turns live before the grace is never repaired', () => {
    let t = nextLiveState(UNKNOWN_LIVE, seen('stale'), 0, serve);
    t = nextLiveState(t.live, seen('live'), 10_000, serve);
    expect(t).toMatchObject({ changed: true, repair: false });
    expect(t.live).toMatchObject({ status: 'live', since: 10_000, repairs: 0, nextRepairAt: null });
    t = nextLiveState(t.live, seen('not_served', 'HTTP 404'), 20_000, serve);
    expect(t.live.nextRepairAt).toBe(50_000);
  });

  it('postpones a repair while push sync is busy with the relay, and never repairs what it cannot fix', () => {
    let t = nextLiveState(UNKNOWN_LIVE, seen('not_served'), 0, serve);
    t = nextLiveState(t.live, seen('not_served'), 40_000, { ...serve, canRepair: false });
    expect(t.repair).toBe(false);
    t = nextLiveState(t.live, seen('not_served'), 41_000, serve);
    expect(t.repair).toBe(true);
    for (const status of ['wrong_identity', 'unexpected'] as const) {
      let u = nextLiveState(UNKNOWN_LIVE, seen(status), 0, serve);
      u = nextLiveState(u.live, seen(status), 10 * DEFAULT_REPAIR.capMs, serve);
      expect(u).toMatchObject({ repair: false, live: { nextRepairAt: null } });
    }
    const off = nextLiveState(UNKNOWN_LIVE, seen('not_served'), 0, { ...serve, shouldServe: false });
    expect(
      nextLiveState(off.live, seen('not_served'), 10 * policy.capMs, { ...serve, shouldServe: false }).repair,
    ).toBe(false);
  });
});

describe('Command.observeRelay', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteStore;
  let command: Command;
  let clock: FakeClock;
  const { pubkey } = keypair();

  beforeEach(() => {
    dir = tempDir();
    store = new SqliteStore(join(dir.path, 'bosun.db'));
    clock = new FakeClock();
    command = new Command(store, new Notifier(), clock);
  });
  afterEach(async () => {
    await store.close();
    dir.cleanup();
  });

  it('records every check, and appends observe_relay only when the status changes', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    const check = (observation: LiveObservation) =>
      command.observeRelay('r1', { version: 1, observation, canRepair: true, policy });
    const first = await check(seen('not_served', 'HTTP 404'));
    expect(first?.activity).toMatchObject({
      type: 'observe_relay',
      actor: 'system:verifier',
      payload: { version: 1, from: 'unknown', to: 'not_served', error: 'HTTP 404' },
    });
    await clock.advance(5000);
    const again = await check(seen('not_served', 'HTTP 404'));
    expect(again?.activity).toBeNull();
    expect((await store.getRelay('r1'))?.live).toMatchObject({
      status: 'not_served',
      checkedAt: clock.now(),
      since: clock.now() - 5000,
      error: 'HTTP 404',
    });
    const fixed = await check(seen('live'));
    expect(fixed?.activity?.payload).toEqual({ version: 1, from: 'not_served', to: 'live' });
    const log = await store.activitiesAfter({ after: 0, limit: 100 });
    expect(log.map((a) => a.type)).toEqual(['create_relay', 'observe_relay', 'observe_relay']);
  });

  it('drops a check of a version the relay has moved past', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    await command.updateRelay(admin, 'r1', { info: { name: 'two' } });
    expect(
      await command.observeRelay('r1', { version: 1, observation: seen('live'), canRepair: true, policy }),
    ).toBeNull();
    expect(
      await command.observeRelay('nope', { version: 1, observation: seen('live'), canRepair: true, policy }),
    ).toBeNull();
    expect((await store.getRelay('r1'))?.live.status).toBe('unknown');
  });
});
