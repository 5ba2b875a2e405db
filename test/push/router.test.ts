import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/command.js';
import { publicKeyOf } from '../../src/domain/keys.js';
import type { Relay } from '../../src/domain/relay.js';
import type { FleetRecord, Target } from '../../src/domain/target.js';
import { type Destination, Router } from '../../src/push/router.js';
import type { SyncOutcome } from '../../src/push/syncer.js';
import type { Store } from '../../src/store/port.js';
import { FakeClock } from '../support/clock.js';
import { relayRecord } from '../support/relays.js';

const KEY = '1'.repeat(64);

function rig(limit = 1) {
  const clock = new FakeClock();
  const relays = new Map<string, Relay>();
  const fleets = new Map<string, FleetRecord>();
  const targets = new Map<string, Target>();
  const reads = { fleet: 0 };
  const store = {
    getRelay: async (id: string) => relays.get(id),
    getFleet: async (name: string) => {
      reads.fleet++;
      return fleets.get(name);
    },
    getTarget: async (name: string) => targets.get(name),
  } as unknown as Store;
  const failures: { id: string; error: string; nextAttemptAt: number | null }[] = [];
  const command = {
    failRelaySync: async (id: string, f: { error: string; nextAttemptAt: number | null }) => {
      failures.push({ id, error: f.error, nextAttemptAt: f.nextAttemptAt });
      const r = relays.get(id)!;
      relays.set(id, {
        ...r,
        sync: { ...r.sync, status: 'retrying', error: f.error, nextAttemptAt: f.nextAttemptAt, attempts: 1 },
      });
    },
  } as unknown as Command;
  const calls: { target: string; relayId: string }[] = [];
  const gates = new Map<string, () => void>();
  const requeued: string[] = [];
  const router = new Router({
    store,
    command,
    clock,
    random: () => 0.5,
    retry: { baseMs: 1000, capMs: 8000, maxAttempts: 5, jitter: 0 },
    logger: pino({ level: 'silent' }),
    defaultTarget: { url: 'http://default.test', secretKey: KEY },
    perTargetConcurrency: limit,
    syncerFor: (target: Destination) => ({
      syncRelay: async (relayId: string): Promise<SyncOutcome> => {
        calls.push({ target: target.name, relayId });
        await new Promise<void>((resolve) => gates.set(relayId, resolve));
        return { kind: 'synced', version: 1 };
      },
    }),
    requeue: (relayId) => requeued.push(relayId),
  });
  const fleet = (name: string, target: FleetRecord['target']) =>
    fleets.set(name, { name, target, createdAt: 0, updatedAt: 0 });
  const target = (name: string) =>
    targets.set(name, {
      name,
      url: `http://${name}.test`,
      secretKey: null,
      verifyUrl: null,
      rev: 1,
      createdAt: 0,
      updatedAt: 0,
    });
  const relay = (id: string, fleetName: string) =>
    relays.set(id, relayRecord(id, publicKeyOf(KEY), { fleet: fleetName }));
  return { clock, router, fleet, target, relay, failures, calls, gates, requeued, reads };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Router', () => {
  it('a fleet pinned to a target that no longer exists fails with its name, then waits for the retry', async () => {
    const r = rig();
    r.fleet('eu', { kind: 'target', name: 'gone' });
    r.relay('a', 'eu');
    const first = await r.router.syncRelay('a');
    expect(first).toMatchObject({
      kind: 'retry',
      error: 'fleet eu uses the target gone, which does not exist',
    });
    expect(r.failures).toHaveLength(1);
    expect(await r.router.syncRelay('a')).toMatchObject({ kind: 'skipped', reason: 'not_due' });
    expect(r.failures).toHaveLength(1);
    expect(r.calls).toEqual([]);
  });

  it('pull-only fleets are never pushed', async () => {
    const r = rig();
    r.fleet('agents', { kind: 'none' });
    r.relay('p', 'agents');
    expect(await r.router.syncRelay('p')).toEqual({ kind: 'skipped', reason: 'pull_only' });
    expect(r.calls).toEqual([]);
  });

  it('re-reads a fleet route once its TTL passed, not before', async () => {
    const r = rig();
    r.fleet('eu', { kind: 'none' });
    expect(await r.router.route('eu')).toEqual({ kind: 'pull' });
    r.target('eu-1');
    r.fleet('eu', { kind: 'target', name: 'eu-1' });
    expect(await r.router.route('eu')).toEqual({ kind: 'pull' });
    expect(r.reads.fleet).toBe(1);
    await r.clock.advance(2000);
    expect(await r.router.route('eu')).toMatchObject({
      kind: 'push',
      target: { name: 'eu-1', secretKey: KEY },
    });
  });

  it('a full target makes its relays wait off the queue; other targets go on; freed slots requeue them', async () => {
    const r = rig(1);
    r.target('eu-1');
    r.fleet('eu', { kind: 'target', name: 'eu-1' });
    r.relay('e1', 'eu');
    r.relay('e2', 'eu');
    r.relay('d1', 'default');
    const e1 = r.router.syncRelay('e1');
    await tick();
    expect(await r.router.syncRelay('e2')).toEqual({ kind: 'skipped', reason: 'waiting' });
    const d1 = r.router.syncRelay('d1');
    await tick();
    expect(r.calls).toEqual([
      { target: 'eu-1', relayId: 'e1' },
      { target: 'default', relayId: 'd1' },
    ]);
    expect(r.requeued).toEqual([]);
    r.gates.get('e1')!();
    r.gates.get('d1')!();
    await Promise.all([e1, d1]);
    expect(r.requeued).toEqual(['e2']);
  });
});
