import { afterEach, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator } from '../../src/push/zooid/emulator.js';
import { FakeClock } from '../support/clock.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { addTargets, defaultTargetEnv, startZooids } from '../support/targets.js';

/**
 * Issue 17's isolation acceptance on a fake clock: one of three targets down for 60 s; the other
 * two's relays sync with the same latency as with all up, measured in the same run; the dead one
 * converges within the retry curve's cap once it returns.
 *
 * Latency is counted in fake-clock steps: with all up a change is synced without the fake clock
 * moving at all (0 steps), over real loopback. A dead target must not change that — if its hung
 * requests held the workers the others need (a global in-flight limit), the others' changes would
 * wait for its timeouts, which only fire when the fake clock moves.
 */
const owner = keypair();
const open: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

const STEP_MS = 1000;
/** Real time a change gets to sync before the fake clock moves a step (generous: a loaded CI). */
const WINDOW_MS = 3000;
const RETRY_CAP_MS = 8000;
const realSleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Latency {
  /** Fake-clock steps moved before every relay was synced. */
  steps: number;
  /** Real time from the start of the measure to every relay synced. */
  wallMs: number;
}

async function rig() {
  const clock = new FakeClock();
  const fleet = await startZooids(3, { clock });
  const s = await startServer({
    clock,
    env: {
      ...defaultTargetEnv(fleet),
      BOSUN_SYNC_CONCURRENCY: '4',
      // The isolation under test: a dead target holds at most 2 of the 4 workers.
      BOSUN_SYNC_TARGET_CONCURRENCY: '2',
      // Below the retry cap, so the cap bounds convergence: a request cut short when the dead target
      // returns is held in doubt for one timeout before it is sent again.
      BOSUN_SYNC_TIMEOUT_MS: '5000',
      BOSUN_RETRY_BASE_MS: '1000',
      BOSUN_RETRY_CAP_MS: String(RETRY_CAP_MS),
      BOSUN_RETRY_MAX_ATTEMPTS: '100',
    },
  });
  open.push({ close: async () => s.close() });
  open.push(fleet);
  await addTargets(s.api, fleet, { eu: 'eu-1', us: 'us-1' });
  return { clock, keys: fleet.keys, zooids: fleet.zooids, s };
}

/** Every relay synced at its current version (read from the store: no API round trips). */
async function synced(s: TestServer, ids: string[]): Promise<boolean> {
  const relays = await s.peer.store.getRelays(ids);
  return (
    relays.length === ids.length &&
    relays.every((r) => r.sync.status === 'synced' && r.sync.syncedVersion === r.version)
  );
}

/**
 * Steps the fake clock a second at a time (giving each step WINDOW_MS of real time) until `ids`
 * are synced; gives up after `maxSteps` (steps: Infinity).
 */
async function latency(
  clock: FakeClock,
  s: TestServer,
  ids: string[],
  maxSteps: number,
  started: number,
): Promise<Latency> {
  for (let steps = 0; ; steps++) {
    const windowStart = Date.now();
    while (Date.now() - windowStart < WINDOW_MS) {
      if (await synced(s, ids)) return { steps, wallMs: Date.now() - started };
      await realSleep(5);
    }
    if (steps >= maxSteps) return { steps: Number.POSITIVE_INFINITY, wallMs: Date.now() - started };
    await clock.advance(STEP_MS);
  }
}

/**
 * Fake-clock steps until `ids` are synced. After each step the work it started gets real time to
 * finish: until the observer is idle, or WINDOW_MS when something sleeps on the fake clock (a
 * request's retry after a refused connection). Gives up after `maxSteps`.
 */
async function stepsUntilSynced(clock: FakeClock, s: TestServer, ids: string[], maxSteps: number) {
  for (let steps = 0; ; steps++) {
    let idle = false;
    void s.peer.observer!.idle().then(() => {
      idle = true;
    });
    const windowStart = Date.now();
    while (Date.now() - windowStart < WINDOW_MS) {
      if (await synced(s, ids)) return steps;
      if (idle) break;
      await realSleep(5);
    }
    if (await synced(s, ids)) return steps;
    if (steps >= maxSteps) return Number.POSITIVE_INFINITY;
    await clock.advance(STEP_MS);
  }
}

/** Moves the fake clock `ms` in steps, letting the work each step starts run on real loopback. */
async function pass(clock: FakeClock, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += STEP_MS) {
    await clock.advance(STEP_MS);
    await realSleep(10);
  }
}

const ids = (prefix: string, n = 3) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe.each([
  { down: 'hung (every request times out)', hang: true },
  { down: 'refusing connections', hang: false },
])('one target of three down for 60 s on a fake clock: $down', ({ hang }) => {
  it('the others sync with the same latency as with all up; the dead one converges after it returns', async () => {
    const { clock, keys, zooids, s } = await rig();
    const create = (id: string, fleet?: string) =>
      s.api('POST', '/v1/relays', relayBody(id, owner.pubkey, fleet ? { fleet } : {}));
    const change = (id: string, name: string) => s.api('PATCH', `/v1/relays/${id}`, { info: { name } });
    const healthy = [...ids('d'), ...ids('u')];
    // More than there are workers: under a global in-flight limit they would hang every one.
    const dead = ids('e', 6);
    const fleetOf = (id: string) => (id.startsWith('u') ? 'us' : id.startsWith('e') ? 'eu' : undefined);

    // All up: every relay created and synced (which warms every path), then the baseline round,
    // in this same run: the dead-to-be target's relays changed first, then the healthy ones, timed
    // from their first write to all synced.
    for (const id of [...dead, ...healthy]) expect((await create(id, fleetOf(id))).status).toBe(201);
    expect(await stepsUntilSynced(clock, s, [...dead, ...healthy], 0)).toBe(0);
    const round = async (n: number, maxSteps: number): Promise<Latency> => {
      for (const id of dead) expect((await change(id, `${id}-${n}`)).status).toBe(200);
      const started = Date.now();
      for (const id of healthy) expect((await change(id, `${id}-${n}`)).status).toBe(200);
      return latency(clock, s, healthy, maxSteps, started);
    };
    const allUp = await round(0, 5);
    expect(allUp.steps).toBe(0);

    // eu-1 goes down: hung (accepts, never answers in time) or gone (connections refused).
    const euPort = zooids[1]!.port;
    if (hang) zooids[1]!.setFaults({ latencyMs: 3_600_000 });
    else await zooids[1]!.close();
    const downAt = clock.now();

    // Six rounds, one every 10 s of the outage.
    const rounds: Latency[] = [];
    for (let n = 1; n <= 6; n++) {
      // No more steps than all up took: a healthy relay waiting for the dead target's timeouts fails here.
      const l = await round(n, allUp.steps);
      rounds.push(l);
      expect(l.steps, `round ${n}: fake-clock steps before the healthy targets' relays synced`).toBe(
        allUp.steps,
      );
      await pass(clock, 10_000);
    }
    const worstWall = Math.max(...rounds.map((r) => r.wallMs));
    console.log(
      `isolation (${hang ? 'hung' : 'refused'}): healthy relays synced in ${allUp.steps} fake steps all up, ` +
        `${rounds.map((r) => r.steps).join('/')} while eu-1 is down; wall ${allUp.wallMs} ms all up, ` +
        `worst ${worstWall} ms down`,
    );
    // Wall time too, loosely (a shared machine): not a timeout's worth more than all up.
    expect(worstWall).toBeLessThan(Math.max(3 * allUp.wallMs, allUp.wallMs + 1500));
    expect(clock.now() - downAt).toBe(60_000);
    // Nothing reached eu-1 while it was down.
    expect(await synced(s, dead)).toBe(false);
    // eu-1 returns at 60 s (restarted on its port: a hung zooid's connections are cut on restart).
    if (hang) await zooids[1]!.close();
    const back = await startZooidEmulator({ port: euPort, whitelist: [publicKeyOf(keys[1]!)], clock });
    open.push(back);
    const backAt = clock.now();
    // Converges by the retry curve's cap (the target's backoff and each relay's retry are capped
    // there), give or take a step: the step that reaches a retry time, and the one whose work ends it.
    const converged = await stepsUntilSynced(clock, s, dead, RETRY_CAP_MS / STEP_MS + 2);
    console.log(
      `isolation (${hang ? 'hung' : 'refused'}): eu-1's relays converged ${converged} fake s after it returned`,
    );
    expect(converged * STEP_MS).toBeLessThanOrEqual(RETRY_CAP_MS + 2 * STEP_MS);
    expect(clock.now() - backAt).toBeLessThanOrEqual(RETRY_CAP_MS + 2 * STEP_MS);
    expect([...back.relays().keys()].sort()).toEqual([...dead].sort());
    for (const id of dead) expect(back.relays().get(id)?.info.name).toBe(`${id}-6`);
    expect([...zooids[0]!.relays().keys()].sort()).toEqual(ids('d').sort());
    expect([...zooids[2]!.relays().keys()].sort()).toEqual(ids('u').sort());
  }, 60_000);
});
