import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../src/domain/keys.js';
import type { Principal } from '../../src/domain/principal.js';
import type { Relay } from '../../src/domain/relay.js';
import type { FetchOutcome } from '../../src/live/compare.js';
import { LiveVerify, type RelayInfoRequest, Verifier } from '../../src/live/verifier.js';
import { DelegatingStore } from '../../src/store/delegating-store.js';
import type { Fence } from '../../src/store/port.js';
import { useCommandRig } from '../support/command-rig.js';
import { captureLogger, keypair, relayBody } from '../support/env.js';

const admin: Principal = { role: 'admin', actor: 'admin:test' };
const policy = { graceMs: 30_000, backoffMs: 300_000, capMs: 3_600_000 };

/** zooid's NIP-11 document of a relay as recorded (docs/zooid-contract.md §5). */
const docOf = (r: Relay): Record<string, unknown> => ({
  name: r.config.info.name,
  pubkey: r.config.info.pubkey,
  self: publicKeyOf(r.secret),
});

describe('Verifier', () => {
  const rig = useCommandRig();
  let verifier: Verifier;
  let lines: string[];
  /** What the fake zooid serves per host; absent: 404. */
  let served: Map<string, Record<string, unknown>>;
  let requests: RelayInfoRequest[];
  let times: number[];
  let repairs: string[];
  let inFlight = 0;
  let maxInFlight = 0;
  const { pubkey } = keypair();

  const fetchInfo = async (req: RelayInfoRequest): Promise<FetchOutcome> => {
    requests.push(req);
    times.push(rig.clock.now());
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((r) => setImmediate(r));
    inFlight--;
    const doc = served.get(req.host);
    return doc ? { ok: true, doc } : { ok: false, error: 'HTTP 404 Not Found' };
  };

  function make(over: Partial<ConstructorParameters<typeof Verifier>[0]> = {}) {
    verifier = new Verifier({
      store: rig.store,
      command: rig.command,
      fetchInfo,
      clock: rig.clock,
      logger: captured.logger,
      verifyUrl: 'http://127.0.0.1:3334',
      policy,
      repair: (id) => repairs.push(id),
      ...over,
    });
    verifier.start();
  }
  let captured: ReturnType<typeof captureLogger>;

  beforeEach(() => {
    served = new Map();
    requests = [];
    times = [];
    repairs = [];
    maxInFlight = 0;
    captured = captureLogger();
    lines = captured.lines;
    make();
  });
  afterEach(async () => {
    await verifier.stop();
  });

  /** A relay zooid acknowledged (push sync done). */
  async function syncedRelay(id: string, extra: Record<string, unknown> = {}): Promise<Relay> {
    const { relay } = await rig.command.createRelay(admin, relayBody(id, pubkey, extra));
    await rig.command.completeRelaySync(id, { version: relay.version, config: {}, deleted: false });
    return (await rig.store.getRelay(id))!;
  }
  const live = async (id: string) => (await rig.store.getRelay(id))!.live;
  /** Advances in steps, letting each step's checks finish (as real time would). */
  const run = async (ms: number) => {
    for (let left = ms; left > 0; left -= 1000) {
      await rig.clock.advance(Math.min(1000, left));
      await verifier.idle();
    }
    if (ms === 0) await rig.clock.advance(0);
    await verifier.idle();
  };

  it('reads a synced relay back at the zooid address with its Host, and records it live', async () => {
    const r = await syncedRelay('r1');
    served.set('r1.example.com', docOf(r));
    verifier.synced('r1');
    await run(999);
    expect(requests).toHaveLength(0); // zooid reloads first
    await run(1);
    expect(requests).toEqual([
      {
        baseUrl: 'http://127.0.0.1:3334',
        host: 'r1.example.com',
        timeoutMs: 5000,
        signal: expect.anything(),
      },
    ]);
    expect(await live('r1')).toMatchObject({ status: 'live', checkedAt: rig.clock.now(), error: '' });
    expect(repairs).toEqual([]);
  });

  it('defaults to https://<host>/ without a verify URL', async () => {
    await verifier.stop();
    make({ verifyUrl: null });
    await syncedRelay('r1', { host: 'r1.example.com:7777' });
    await verifier.check('r1');
    expect(requests[0]).toMatchObject({
      baseUrl: 'https://r1.example.com:7777/',
      host: 'r1.example.com:7777',
    });
  });

  it('not served: one repair after the grace, then reported with backoff, not hammered', async () => {
    await syncedRelay('r1');
    verifier.synced('r1');
    await run(1000);
    expect((await live('r1')).status).toBe('not_served');
    await run(25_000);
    expect(repairs).toEqual([]);
    await run(10_000);
    expect(repairs).toEqual(['r1']);
    // The repair's sync completes (still not served): rechecked, but no second PUT before the backoff.
    verifier.synced('r1');
    await run(60_000);
    expect(repairs).toEqual(['r1']);
    const checks = requests.length;
    await run(240_000);
    expect(repairs).toEqual(['r1', 'r1']);
    expect(requests.length - checks).toBeLessThan(10);
    expect(lines.some((l) => l.includes('still not live after a repair'))).toBe(true);
    const log = await rig.store.activitiesAfter({ after: 0, limit: 100 });
    expect(log.filter((a) => a.type === 'observe_relay').map((a) => a.payload.to)).toEqual(['not_served']);
  });

  it('a slow reload passes through stale to live without a repair', async () => {
    const r = await syncedRelay('r1');
    served.set('r1.example.com', { ...docOf(r), name: 'old name' });
    verifier.synced('r1');
    await run(1000);
    expect(await live('r1')).toMatchObject({
      status: 'stale',
      diff: { name: { want: 'r1', got: 'old name' } },
    });
    served.set('r1.example.com', docOf(r));
    await run(10_000);
    expect((await live('r1')).status).toBe('live');
    await run(120_000);
    expect(repairs).toEqual([]);
  });

  it('an edit behind bosun’s back is stale, then repaired', async () => {
    const r = await syncedRelay('r1');
    served.set('r1.example.com', { ...docOf(r), name: 'edited in zooid' });
    await verifier.check('r1');
    await run(31_000);
    expect(repairs).toEqual(['r1']);
  });

  it('wrong identity is recorded and warned about once it lasts, never repaired', async () => {
    const r = await syncedRelay('r1');
    served.set('r1.example.com', { ...docOf(r), self: keypair().pubkey });
    await verifier.check('r1');
    expect((await live('r1')).status).toBe('wrong_identity');
    await run(31_000);
    expect(repairs).toEqual([]);
    expect(lines.filter((l) => l.includes('relay is wrong_identity'))).toHaveLength(1);
  });

  it('an inactive or deleted relay still served is unexpected; the periodic pass finds both', async () => {
    const a = await syncedRelay('a');
    const b = await syncedRelay('b');
    await syncedRelay('c');
    await rig.command.deactivateRelay(admin, 'a');
    await rig.command.deleteRelay(admin, 'b');
    served.set('a.example.com', docOf(a));
    served.set('b.example.com', docOf(b));
    const pass = new LiveVerify({ store: rig.store, verifier, clock: rig.clock, intervalMs: 300_000 });
    await pass.once(new AbortController().signal);
    await run(300_000);
    expect((await live('a')).status).toBe('unexpected');
    expect((await live('b')).status).toBe('unexpected');
    expect((await live('c')).status).toBe('not_served');
    expect(repairs).not.toContain('a');
    expect(repairs).not.toContain('b');
    // Spread over the interval, not all at once.
    const first = (host: string) => times[requests.findIndex((r) => r.host === host)]! - times[0]!;
    expect([first('a.example.com'), first('b.example.com'), first('c.example.com')]).toEqual([
      0, 100_000, 200_000,
    ]);
    // Each unexpected relay is read again once the grace is over, and warned about then.
    const aChecks = times.filter((_, i) => requests[i]!.host === 'a.example.com').map((t) => t - times[0]!);
    expect(aChecks).toHaveLength(2);
    expect(aChecks[1]).toBeGreaterThanOrEqual(30_000);
    expect(aChecks[1]).toBeLessThan(32_000);
    expect(lines.filter((l) => l.includes('relay is unexpected'))).toHaveLength(2);
  });

  it('a read that throws is not served; at most `concurrency` reads at once', async () => {
    await verifier.stop();
    make({
      concurrency: 2,
      fetchInfo: async (req) => {
        if (req.host === 'boom.example.com') throw new Error('socket hang up');
        return fetchInfo(req);
      },
    });
    await syncedRelay('boom');
    for (let i = 0; i < 6; i++) await syncedRelay(`r${i}`);
    for (const id of ['boom', 'r0', 'r1', 'r2', 'r3', 'r4', 'r5']) verifier.schedule(id);
    await run(0);
    expect(await live('boom')).toMatchObject({ status: 'not_served', error: 'socket hang up' });
    expect(maxInFlight).toBeLessThanOrEqual(2);
    expect(requests).toHaveLength(6);
  });

  it('an unchanged check commits nothing: its time is written by one bulk touch within a second', async () => {
    /** The real store, counting the touches the verifier sends. */
    class Touches extends DelegatingStore {
      readonly calls: { ids: string[]; at: number }[] = [];
      override touchLiveChecks(ids: readonly string[], at: number, fence?: Fence): Promise<number> {
        this.calls.push({ ids: [...ids], at });
        return super.touchLiveChecks(ids, at, fence);
      }
    }
    const store = new Touches(rig.store);
    await verifier.stop();
    make({ store });
    for (const id of ['r1', 'r2']) served.set(`${id}.example.com`, docOf(await syncedRelay(id)));
    await verifier.check('r1');
    await verifier.check('r2');
    const first = rig.clock.now();
    const revs = async () => [(await rig.store.getRelay('r1'))!.rev, (await rig.store.getRelay('r2'))!.rev];
    const before = { revs: await revs(), activities: await rig.store.lastActivityId() };

    await rig.clock.advance(5000);
    const second = rig.clock.now();
    expect(await verifier.check('r1')).toBe('live');
    expect(await verifier.check('r2')).toBe('live');
    expect(store.calls).toEqual([]);
    expect((await live('r1')).checkedAt).toBe(first);
    await run(1000);
    expect(store.calls).toEqual([{ ids: ['r1', 'r2'], at: second }]);
    expect((await live('r1')).checkedAt).toBe(second);
    expect((await live('r2')).checkedAt).toBe(second);
    expect({ revs: await revs(), activities: await rig.store.lastActivityId() }).toEqual(before);

    // A change of status still goes through Command, with its activity; stop sends what is pending.
    served.delete('r1.example.com');
    await rig.clock.advance(5000);
    expect(await verifier.check('r1')).toBe('not_served');
    expect(await verifier.check('r2')).toBe('live');
    const [observed] = await rig.store.activitiesAfter({ after: before.activities, limit: 10 });
    expect(observed).toMatchObject({ type: 'observe_relay', payload: { from: 'live', to: 'not_served' } });
    await verifier.stop();
    expect(store.calls.at(-1)).toEqual({ ids: ['r2'], at: rig.clock.now() });
    expect((await live('r2')).checkedAt).toBe(rig.clock.now());
  });

  it('reads the queued relays in batches, not one read per check; a relay asked for again is read afresh', async () => {
    class Reads extends DelegatingStore {
      readonly batches: string[][] = [];
      singles = 0;
      override getRelays(ids: readonly string[]) {
        this.batches.push([...ids]);
        return super.getRelays(ids);
      }
      override getRelay(id: string) {
        this.singles++;
        return super.getRelay(id);
      }
    }
    const store = new Reads(rig.store);
    await verifier.stop();
    /** Holds the first two checks (r0, r1), then the others, until opened. */
    const gates = [0, 1].map(() => {
      let open: () => void = () => {};
      const shut = new Promise<void>((resolve) => {
        open = resolve;
      });
      return { shut, open, waiting: 0 };
    });
    make({
      store,
      concurrency: 2,
      fetchInfo: async (req) => {
        const gate = gates[/^r[01]\./.test(req.host) ? 0 : 1]!;
        gate.waiting++;
        await gate.shut;
        return fetchInfo(req);
      },
    });
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await syncedRelay(`r${i}`);
      served.set(r.config.host, docOf(r));
      ids.push(r.id);
    }
    const until = async (cond: () => boolean) => {
      while (!cond()) await new Promise((r) => setImmediate(r));
    };
    verifier.spread(ids, 0);
    await rig.clock.advance(0);
    // r0 and r1 were read alone (nothing queued behind them yet); the others wait in the queue.
    await until(() => gates[0]!.waiting === 2);
    gates[0]!.open();
    // r2's check reads r2-r39 at once; r39, read ahead, is renamed and asked for again.
    await until(() => gates[1]!.waiting === 2);
    await rig.command.updateRelay(admin, 'r39', { info: { name: 'renamed' } });
    verifier.schedule('r39');
    await rig.clock.advance(0);
    gates[1]!.open();
    await run(0);
    expect(requests).toHaveLength(40);
    expect(store.batches).toEqual([ids.slice(2)]);
    expect(store.singles).toBe(3); // r0, r1, and r39 read afresh
    expect((await live('r39')).status).toBe('stale');
  });

  it('reads each relay at its fleet’s target’s verify_url; default: the verify URL; none: the host', async () => {
    const secretKey = keypair().secret;
    await rig.command.createTarget(
      admin,
      { name: 'eu', url: 'http://10.0.0.6:3334', secret_key: secretKey, verify_url: 'http://10.0.0.6:3335' },
      { defaultKey: false },
    );
    await rig.command.createTarget(
      admin,
      { name: 'us', url: 'http://10.0.0.7:3334', secret_key: secretKey },
      { defaultKey: false },
    );
    await rig.command.setFleetTarget(admin, 'eu', { kind: 'target', name: 'eu' });
    await rig.command.setFleetTarget(admin, 'us', { kind: 'target', name: 'us' });
    await rig.command.setFleetTarget(admin, 'pull', { kind: 'none' });
    for (const [id, fleet] of [
      ['d', 'default'],
      ['e', 'eu'],
      ['u', 'us'],
      ['p', 'pull'],
      ['n', 'no-row'],
    ] as const) {
      await syncedRelay(id, { fleet });
      await verifier.check(id);
    }
    expect(requests.map((r) => [r.host, r.baseUrl])).toEqual([
      ['d.example.com', 'http://127.0.0.1:3334'],
      ['e.example.com', 'http://10.0.0.6:3335'],
      ['u.example.com', 'https://u.example.com/'],
      ['p.example.com', 'https://p.example.com/'],
      ['n.example.com', 'http://127.0.0.1:3334'],
    ]);
    // A changed verify_url is used once the fleet's address is read again (10 s).
    await rig.command.updateTarget(
      admin,
      'eu',
      { verify_url: 'http://10.0.0.6:4000' },
      { defaultKey: false },
    );
    await verifier.check('e');
    expect(requests.at(-1)?.baseUrl).toBe('http://10.0.0.6:3335');
    await rig.clock.advance(10_000);
    await verifier.check('e');
    expect(requests.at(-1)?.baseUrl).toBe('http://10.0.0.6:4000');
  });
});
