import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/command.js';
import { publicKeyOf } from '../../src/domain/keys.js';
import type { Relay } from '../../src/domain/relay.js';
import type { FleetRecord, Target } from '../../src/domain/target.js';
import { type Destination, Router } from '../../src/push/router.js';
import type { SyncOutcome } from '../../src/push/syncer.js';
import type { ZooidResult } from '../../src/push/zooid/client.js';
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
  const calls: { target: string; relayId: string; due?: boolean; from?: string }[] = [];
  const gates = new Map<string, (result?: ZooidResult) => void>();
  const requeued: string[] = [];
  /** Requests whose answer was lost, still open, by `target/relay`. */
  const open = new Map<string, Promise<void>>();
  const outcomes: string[] = [];
  const router = new Router({
    store,
    command,
    clock,
    random: () => 0.5,
    retry: { baseMs: 1000, capMs: 8000, maxAttempts: 5, jitter: 0 },
    logger: pino({ level: 'silent' }),
    defaultTarget: { url: 'http://default.test', secretKey: KEY },
    perTargetConcurrency: limit,
    syncerFor: (target: Destination, onResult: (result: ZooidResult) => void) => ({
      syncRelay: async (
        { id: relayId }: Relay,
        opts: { due?: boolean; elsewhere?: { name: string } },
      ): Promise<SyncOutcome> => {
        calls.push({
          target: target.name,
          relayId,
          ...(opts.due ? { due: true } : {}),
          ...(opts.elsewhere ? { from: opts.elsewhere.name } : {}),
        });
        const result = await new Promise<ZooidResult>((resolve) =>
          gates.set(relayId, (r = { ok: true, status: 200, attempts: 1 }) => resolve(r)),
        );
        onResult(result);
        return result.ok ? { kind: 'synced', version: 1 } : { kind: 'retry', at: 1, error: result.message };
      },
      removeCopy: async (): Promise<ZooidResult> => ({ ok: true, status: 200, attempts: 1 }),
      pending: (relayId: string) => open.get(`${target.name}/${relayId}`),
    }),
    requeue: (relayId) => requeued.push(relayId),
    onOutcome: (t, o) => outcomes.push(`${t}:${o.kind}`),
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
  /** Where zooid holds the relay (pushedTarget), and whether it is deleted. */
  const place = (id: string, on: string, deleted = false) => {
    const r = relays.get(id)!;
    relays.set(id, {
      ...r,
      deletedAt: deleted ? 1 : null,
      sync: { ...r.sync, status: 'pending', ackedDeleted: false, pushedTarget: on },
    });
  };
  /** The target eu-1, the fleet eu pinned to it, and these relays in eu. */
  const onEu = (...ids: string[]) => {
    target('eu-1');
    fleet('eu', { kind: 'target', name: 'eu-1' });
    for (const id of ids) relay(id, 'eu');
  };
  return {
    clock,
    router,
    relays,
    fleet,
    target,
    relay,
    place,
    onEu,
    failures,
    calls,
    gates,
    requeued,
    reads,
    outcomes,
    open,
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Router', () => {
  it("waits for another target's request still open for the relay before sending it anywhere, then puts it back", async () => {
    const r = rig();
    r.relay('a', 'shop');
    const first = r.router.syncRelay('a');
    await tick();
    r.gates.get('a')!();
    await first;
    // Its request to default timed out and may still land there; meanwhile its fleet moved to eu-1.
    let settle!: () => void;
    r.open.set('default/a', new Promise<void>((resolve) => (settle = resolve)));
    r.onEu();
    r.place('a', 'default');
    r.relay('a', 'eu');
    r.place('a', 'default');
    expect(await r.router.syncRelay('a')).toEqual({ kind: 'skipped', reason: 'busy' });
    expect(r.calls.map((c) => c.target)).toEqual(['default']);
    expect(r.requeued).toEqual([]);
    settle();
    r.open.delete('default/a');
    await tick();
    expect(r.requeued).toEqual(['a']);
    const moved = r.router.syncRelay('a');
    await tick();
    r.gates.get('a')!();
    await moved;
    expect(r.calls).toEqual([
      { target: 'default', relayId: 'a' },
      { target: 'eu-1', relayId: 'a', from: 'default' },
    ]);
  });

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

  it('moves a relay that lives elsewhere through its fleet target, naming the target it leaves', async () => {
    const r = rig();
    r.target('eu-1');
    r.fleet('eu', { kind: 'target', name: 'eu-1' });
    r.relay('a', 'eu');
    r.place('a', 'default');
    const sync = r.router.syncRelay('a');
    await tick();
    r.gates.get('a')!();
    expect(await sync).toEqual({ kind: 'synced', version: 1 });
    expect(r.calls).toEqual([{ target: 'eu-1', relayId: 'a', from: 'default' }]);
  });

  it('a pull-only fleet: a live relay stays where it is; a deleted one is deleted where it lives', async () => {
    const r = rig();
    r.target('eu-1');
    r.fleet('agents', { kind: 'none' });
    r.relay('live', 'agents');
    r.place('live', 'eu-1');
    expect(await r.router.syncRelay('live')).toEqual({ kind: 'skipped', reason: 'pull_only' });
    r.relay('gone', 'agents');
    r.place('gone', 'eu-1', true);
    const sync = r.router.syncRelay('gone');
    await tick();
    r.gates.get('gone')!();
    await sync;
    expect(r.calls).toEqual([{ target: 'eu-1', relayId: 'gone' }]);
  });

  it('a relay on a target bosun cannot reach any more fails with that target named', async () => {
    const r = rig();
    r.relay('a', 'default');
    r.place('a', 'vanished');
    expect(await r.router.syncRelay('a')).toMatchObject({
      kind: 'retry',
      error: expect.stringMatching(/^the relay lives on the target vanished, which bosun cannot reach/),
    });
    expect(r.calls).toEqual([]);
  });

  it('ownerOf names the target whose push work each sync is: where syncRelay sends it or records its failure', async () => {
    const r = rig();
    r.target('eu-1');
    r.fleet('eu', { kind: 'target', name: 'eu-1' });
    r.fleet('agents', { kind: 'none' });
    r.fleet('lost', { kind: 'target', name: 'gone' });
    r.relay('moving', 'eu');
    r.place('moving', 'default');
    r.relay('pulled', 'agents');
    r.place('pulled', 'eu-1');
    r.relay('dropped', 'agents');
    r.place('dropped', 'eu-1', true);
    r.relay('pinned', 'lost');
    r.relay('left', 'lost');
    r.place('left', 'eu-1', true);
    const owners: Record<string, string | null> = {};
    for (const id of ['moving', 'pulled', 'dropped', 'pinned', 'left'])
      owners[id] = await r.router.ownerOf(r.relays.get(id)!);
    expect(owners).toEqual({
      moving: 'eu-1',
      pulled: null,
      dropped: 'eu-1',
      pinned: 'gone',
      left: 'eu-1',
    });
    // And syncRelay agrees: the sends go to the owners; the unroutable one only records a failure.
    for (const id of ['moving', 'dropped', 'left']) {
      const sync = r.router.syncRelay(id);
      await tick();
      r.gates.get(id)!();
      await sync;
    }
    expect(r.calls.map((c) => `${c.relayId}@${c.target}`)).toEqual([
      'moving@eu-1',
      'dropped@eu-1',
      'left@eu-1',
    ]);
    expect(await r.router.syncRelay('pulled')).toEqual({ kind: 'skipped', reason: 'pull_only' });
    expect(await r.router.syncRelay('pinned')).toMatchObject({
      kind: 'retry',
      error: expect.stringMatching(/gone/),
    });
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
    r.onEu('e1', 'e2');
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

  it('a target that stops answering: its relays are recorded retrying until its backoff ends, and sent at once when it answers again', async () => {
    const r = rig(1);
    r.onEu('e1', 'e2', 'e3');
    const e1 = r.router.syncRelay('e1');
    await tick();
    // e2 waits for e1's slot in memory, while eu-1 still looks healthy.
    expect(await r.router.syncRelay('e2')).toEqual({ kind: 'skipped', reason: 'waiting' });
    const down = 'zooid did not answer PATCH within 300 ms';
    r.gates.get('e1')!({ ok: false, kind: 'transient', message: down, attempts: 1 });
    await e1;
    // The failure put e2 back on the queue rather than leaving it waiting for a slot.
    expect(r.requeued).toEqual(['e2']);
    // Backing off (retry base 1 s): e2 and e3 send nothing, and say why and until when.
    const until = r.clock.now() + 1000;
    expect(await r.router.syncRelay('e2')).toEqual({ kind: 'retry', at: until, error: down });
    expect(await r.router.syncRelay('e3')).toEqual({ kind: 'retry', at: until, error: down });
    expect(r.failures).toEqual([
      { id: 'e2', error: down, nextAttemptAt: until },
      { id: 'e3', error: down, nextAttemptAt: until },
    ]);
    // Recorded once per backoff, not again on each wake-up.
    expect(await r.router.syncRelay('e3')).toMatchObject({ kind: 'skipped', reason: 'not_due' });
    expect(r.failures).toHaveLength(2);
    expect(r.calls).toEqual([{ target: 'eu-1', relayId: 'e1' }]);
    // Its probe answers long before the backoff ends: the held relays are requeued at once and
    // sent despite the retry time they stored.
    r.router.release('eu-1');
    expect(r.requeued).toEqual(['e2', 'e2', 'e3']);
    const e2 = r.router.syncRelay('e2');
    await tick();
    expect(r.calls.at(-1)).toEqual({ target: 'eu-1', relayId: 'e2', due: true });
    r.gates.get('e2')!();
    expect(await e2).toEqual({ kind: 'synced', version: 1 });
  });

  it('a target whose oldest request is unanswered for long takes no more until one returns', async () => {
    const r = rig(3);
    r.onEu('e1', 'e2', 'e3', 'e4');
    const e1 = r.router.syncRelay('e1');
    await tick();
    // Within the stall time (100 ms; it has no history yet): a second request goes.
    await r.clock.advance(80);
    const e2 = r.router.syncRelay('e2');
    await tick();
    expect(r.calls.map((c) => c.relayId)).toEqual(['e1', 'e2']);
    // e1 unanswered past it: the target may have stopped answering; e3 waits without a worker.
    await r.clock.advance(40);
    expect(await r.router.syncRelay('e3')).toEqual({ kind: 'skipped', reason: 'waiting' });
    expect(r.calls.map((c) => c.relayId)).toEqual(['e1', 'e2']);
    // e1 returns, e2 (sent 40 ms ago) is not stalled: e3 gets the freed slot.
    r.gates.get('e1')!();
    await e1;
    expect(r.requeued).toEqual(['e3']);
    const e3 = r.router.syncRelay('e3');
    await tick();
    expect(r.calls.map((c) => c.relayId)).toEqual(['e1', 'e2', 'e3']);
    r.gates.get('e2')!();
    r.gates.get('e3')!();
    await Promise.all([e2, e3]);
  });

  it('a target whose backoff ended gets one request until it answers (a probe), then its full limit', async () => {
    const r = rig(3);
    r.onEu('e1', 'e2', 'e3', 'e4');
    const e1 = r.router.syncRelay('e1');
    await tick();
    r.gates.get('e1')!({ ok: false, kind: 'transient', message: 'zooid did not answer', attempts: 1 });
    await e1;
    await r.clock.advance(1000);
    // Backoff over, eu-1 not yet heard from: were all three sent, a target that still hangs would
    // hold three workers for a timeout after every backoff, not one.
    const e2 = r.router.syncRelay('e2');
    await tick();
    const e3 = r.router.syncRelay('e3');
    const e4 = r.router.syncRelay('e4');
    await tick();
    await tick();
    expect(r.calls.map((c) => c.relayId)).toEqual(['e1', 'e2']);
    expect(await e3).toEqual({ kind: 'skipped', reason: 'waiting' });
    expect(await e4).toEqual({ kind: 'skipped', reason: 'waiting' });
    // It answers: the waiting relays get its slots at once.
    r.gates.get('e2')!();
    await e2;
    expect(r.requeued).toEqual(['e3', 'e4']);
    const rest = [r.router.syncRelay('e3'), r.router.syncRelay('e4')];
    await tick();
    await tick();
    expect(r.calls.map((c) => c.relayId)).toEqual(['e1', 'e2', 'e3', 'e4']);
    r.gates.get('e3')!();
    r.gates.get('e4')!();
    await Promise.all(rest);
  });

  it('a sync that succeeds ends the target backoff too', async () => {
    const r = rig(2);
    r.onEu('e1', 'e2', 'e3');
    const e1 = r.router.syncRelay('e1');
    const e2 = r.router.syncRelay('e2');
    await tick();
    await tick();
    r.gates.get('e1')!({ ok: false, kind: 'transient', message: 'connect ECONNREFUSED', attempts: 1 });
    await e1;
    expect(await r.router.syncRelay('e3')).toMatchObject({ kind: 'retry', error: 'connect ECONNREFUSED' });
    // e2's request was already out; zooid answers it: eu-1 is back.
    r.gates.get('e2')!();
    await e2;
    expect(r.requeued).toEqual(['e3']);
    const e3 = r.router.syncRelay('e3');
    await tick();
    expect(r.calls.at(-1)).toEqual({ target: 'eu-1', relayId: 'e3', due: true });
    r.gates.get('e3')!();
    await e3;
  });

  it('reports each target’s load and each outcome under its target (the per-target metrics)', async () => {
    const r = rig(1);
    r.target('eu-1');
    r.fleet('eu', { kind: 'target', name: 'eu-1' });
    r.fleet('gone', { kind: 'target', name: 'nowhere' });
    r.fleet('edge', { kind: 'none' });
    for (const [id, f] of [
      ['e1', 'eu'],
      ['e2', 'eu'],
      ['d1', 'default'],
      ['g1', 'gone'],
      ['p1', 'edge'],
    ])
      r.relay(id!, f!);
    const e1 = r.router.syncRelay('e1');
    const d1 = r.router.syncRelay('d1');
    await tick();
    expect(await r.router.syncRelay('e2')).toEqual({ kind: 'skipped', reason: 'waiting' });
    const load = () =>
      Object.fromEntries(r.router.load().map((l) => [l.target, [l.inFlight, l.waiting, l.held]]));
    expect(load()).toEqual({ 'eu-1': [1, 1, 0], default: [1, 0, 0] });
    // No answer from eu-1: it backs off, and e2 (put back on the queue) is held for it.
    r.gates.get('e1')!({ ok: false, kind: 'transient', message: 'ECONNREFUSED', attempts: 1 });
    r.gates.get('d1')!();
    await Promise.all([e1, d1]);
    expect(await r.router.syncRelay('e2')).toMatchObject({ kind: 'retry' });
    expect(load()).toEqual({ 'eu-1': [0, 0, 1], default: [0, 0, 0] });
    expect(await r.router.syncRelay('g1')).toMatchObject({ kind: 'retry' });
    await r.router.syncRelay('p1');
    // A pull-only relay has no target: no outcome is reported for it.
    expect(r.outcomes).toEqual([
      'eu-1:skipped',
      'eu-1:retry',
      'default:synced',
      'eu-1:retry',
      'nowhere:retry',
    ]);
  });
});
