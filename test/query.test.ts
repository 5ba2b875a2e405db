import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Command } from '../src/command.js';
import type { Principal } from '../src/domain/principal.js';
import { Notifier } from '../src/notifier.js';
import { Query } from '../src/query.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { FakeClock } from './support/clock.js';
import { keypair, tempDir } from './support/env.js';

const admin: Principal = { role: 'admin', actor: 'test' };
const tenant: Principal = { role: 'tenant', owner: 't', actor: 'tenant:t' };
const agent: Principal = { role: 'agent', fleet: 'edge', actor: 'agent:edge', tokenId: 'tok_edge' };
const pubkey = keypair().pubkey;

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

function setup() {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'bosun.db'));
  cleanup = async () => {
    await store.close();
    dir.cleanup();
  };
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  return { clock, command: new Command(store, new Notifier(), clock), query: new Query(store) };
}

describe('Query', () => {
  it('tallies only the relays the caller may see, live ones only, with the inactive among them', async () => {
    const { command, query } = setup();
    const relay = (id: string, extra: Record<string, unknown> = {}) => ({
      id,
      host: `${id}.example.com`,
      info: { pubkey },
      ...extra,
    });
    await command.createRelay(admin, relay('a1'));
    await command.createRelay(admin, relay('a2', { fleet: 'edge', inactive: true }));
    await command.createRelay(tenant, relay('t1'));
    await command.createRelay(tenant, relay('t2', { inactive: true }));
    await command.createRelay(tenant, relay('t3'));
    await command.deleteRelay(tenant, 't3');
    await command.failRelaySync('t1', { version: 1, error: 'boom', attempts: 1, nextAttemptAt: null });

    const zero = { pending: 0, synced: 0, retrying: 0, failed: 0, pull: 0 };
    expect(await query.relayTally(admin)).toEqual({
      byStatus: { pending: 3, synced: 0, retrying: 0, failed: 1, pull: 0 },
      inactive: 2,
      byFleet: new Map([
        ['default', { ...zero, pending: 2, failed: 1 }],
        ['edge', { ...zero, pending: 1 }],
      ]),
    });
    expect(await query.relayTally(tenant)).toEqual({
      byStatus: { pending: 1, synced: 0, retrying: 0, failed: 1, pull: 0 },
      inactive: 1,
      byFleet: new Map([['default', { ...zero, pending: 1, failed: 1 }]]),
    });
    expect(await query.relayTally(agent)).toEqual({
      byStatus: { pending: 1, synced: 0, retrying: 0, failed: 0, pull: 0 },
      inactive: 1,
      byFleet: new Map([['edge', { ...zero, pending: 1 }]]),
    });
  });

  it('failing relays of some fleets, through the caller’s scope; each fleet’s target', async () => {
    const { command, query } = setup();
    const relay = (id: string, fleet: string) => ({ id, host: `${id}.example.com`, info: { pubkey }, fleet });
    for (const [who, id, fleet] of [
      [admin, 'a-eu', 'eu'],
      [admin, 'a-edge', 'edge'],
      [tenant, 't-eu', 'eu'],
      [tenant, 't-us', 'us'],
    ] as const) {
      await command.createRelay(who, relay(id, fleet));
      await command.failRelaySync(id, { version: 1, error: 'boom', attempts: 1, nextAttemptAt: null });
    }
    await command.failRelaySync('t-eu', { version: 1, error: 'again', attempts: 2, nextAttemptAt: 5 });
    const ids = async (p: Principal, fleets: string[]) =>
      (await query.failingRelaysOf(p, fleets, 10)).map((r) => `${r.id}:${r.sync.status}`).sort();
    expect(await ids(admin, ['eu', 'edge'])).toEqual(['a-edge:failed', 'a-eu:failed', 't-eu:retrying']);
    expect(await ids(tenant, ['eu', 'edge'])).toEqual(['t-eu:retrying']);
    expect(await ids(agent, ['eu', 'edge'])).toEqual(['a-edge:failed']);
    expect(await ids(admin, [])).toEqual([]);

    await command.createTarget(admin, { name: 'eu-1', url: 'http://127.0.0.1:1' }, { defaultKey: true });
    await command.setFleetTarget(admin, 'eu', { kind: 'target', name: 'eu-1' });
    await command.setFleetTarget(admin, 'edge', { kind: 'none' });
    const targetOf = await query.fleetTargets();
    expect(['eu', 'edge', 'us'].map(targetOf)).toEqual(['eu-1', null, 'default']);
    // Asked about one fleet, it reads that fleet's row alone, with the same rule.
    const one = async (fleet: string) => (await query.fleetTargets(new Set([fleet])))(fleet);
    expect(await Promise.all(['eu', 'edge', 'us'].map(one))).toEqual(['eu-1', null, 'default']);
    // A pull-only fleet's relays wait for no push: none of them is failing.
    expect(await ids(admin, ['edge'])).toEqual([]);
  });

  it('finds where a time starts in the log by bisection', async () => {
    const { clock, command, query } = setup();
    expect(await query.activityIdBefore(clock.now())).toBe(0);
    const start = clock.now();
    for (let i = 1; i <= 9; i++) {
      await command.createRelay(admin, { id: `r${i}`, host: `r${i}.example.com`, info: { pubkey } });
      await clock.advance(1000);
    }
    // Activity i was created at start + (i − 1) s.
    expect(await query.activityIdBefore(start)).toBe(0);
    expect(await query.activityIdBefore(start + 4000)).toBe(4);
    expect(await query.activityIdBefore(start + 3500)).toBe(4);
    expect(await query.activityIdBefore(start + 60_000)).toBe(9);
  });
});
