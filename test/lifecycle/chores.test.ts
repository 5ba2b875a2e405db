import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Command } from '../../src/command.js';
import { Notifier } from '../../src/notifier.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../support/clock.js';
import { keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

const owner = keypair();
let planet: Planet | undefined;
/** A zooid started again in a test, on the port of the planet's. */
let back: ZooidEmulator | undefined;
afterEach(async () => {
  await planet?.close();
  await back?.close();
  planet = undefined;
  back = undefined;
});

/** Runs `chore` now and again once `ms` have passed: only the second run pushes the relay to zooid. */
async function pushesOnlyAfter(p: Planet, clock: FakeClock, chore: string, relayId: string, ms: number) {
  await p.trigger(chore);
  await p.idle();
  expect(p.zooid.relays().has(relayId)).toBe(false);
  await clock.advance(ms);
  await p.trigger(chore);
  await p.idle();
  expect(p.zooid.relays().has(relayId)).toBe(true);
}

describe('chores, end to end through a test peer', () => {
  it('resync repairs a relay edited or deleted in zooid behind bosun’s back', async () => {
    planet = await startPlanet();
    const { bosun, zooid, direct, idle, trigger } = planet;
    await bosun.api('POST', '/v1/relays', relayBody('drifted', owner.pubkey, { groups: { enabled: true } }));
    await bosun.api('POST', '/v1/relays', relayBody('vanished', owner.pubkey));
    await idle();
    expect(zooid.requests.filter((r) => r.id).map((r) => r.method)).toEqual(['POST', 'POST']);
    const secret = zooid.relays().get('vanished')!.secret;

    expect((await direct.patch('drifted', { groups: { enabled: false }, info: { name: 'hacked' } })).ok).toBe(
      true,
    );
    expect((await direct.remove('vanished')).ok).toBe(true);
    zooid.requests.length = 0;

    // Starting bosun re-asserted nothing (no fleet-wide PUT storm on restart); a resync pass does.
    await trigger('resync');
    expect(zooid.relays().get('drifted')).toMatchObject({
      groups: { enabled: true },
      info: { name: 'drifted' },
    });
    expect(zooid.relays().get('vanished')).toMatchObject({ secret, host: 'vanished.example.com' });
    expect(zooid.requests.map((r) => `${r.method} ${r.id} ${r.status}`).sort()).toEqual([
      'POST vanished 201',
      'PUT drifted 200',
      'PUT vanished 404',
    ]);
  });

  it('the retry sweeper runs a due retry whose in-memory timer was lost', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock });
    const { bosun } = planet;
    // Committed by another process: no notification, no timer in this one.
    const other = new SqliteStore(join(bosun.dir, 'bosun.db'));
    const cmd = new Command(other, new Notifier(), clock);
    await cmd.createRelay({ role: 'admin', actor: 'other' }, relayBody('orphan-retry', owner.pubkey));
    await cmd.failRelaySync('orphan-retry', {
      version: 1,
      error: 'zooid down',
      attempts: 1,
      nextAttemptAt: clock.now() + 5000,
    });
    await other.close();

    await pushesOnlyAfter(planet, clock, 'retry_sweeper', 'orphan-retry', 5000);
    expect((await bosun.api('GET', '/v1/relays/orphan-retry')).body.sync.status).toBe('synced');
  });

  it('drift repair syncs lost work: a change pending for over a minute with nothing scheduled', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock });
    const other = new SqliteStore(join(planet.bosun.dir, 'bosun.db'));
    await new Command(other, new Notifier(), clock).createRelay(
      { role: 'admin', actor: 'other' },
      relayBody('lost', owner.pubkey),
    );
    await other.close();

    await pushesOnlyAfter(planet, clock, 'drift_repair', 'lost', 61_000);
  });

  it('credential expiry revokes tokens past their expiry', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock });
    const { bosun, trigger } = planet;
    const created = await bosun.api('POST', '/v1/tokens', {
      role: 'tenant',
      owner: 'eve',
      expires_in_seconds: 60,
    });
    await clock.advance(61_000);
    await trigger('credential_expiry');
    const tokens = (await bosun.api('GET', '/v1/tokens')).body.tokens;
    expect(tokens.find((t: { id: string }) => t.id === created.body.id).revoked_at).not.toBeNull();
    expect((await bosun.api('GET', '/v1/relays', undefined, created.body.token)).status).toBe(401);
  });

  it('activity retention prunes old activities, never past the observer’s cursor or the newest', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock, env: { BOSUN_ACTIVITY_RETENTION: '1h' } });
    const { bosun, idle, trigger, zooid } = planet;
    await bosun.api('POST', '/v1/relays', relayBody('old', owner.pubkey));
    await idle();
    await clock.advance(2 * 3_600_000);
    zooid.setFaults({ failAll: true });
    await bosun.api('PATCH', '/v1/relays/old', { info: { name: 'newer' } }); // its sync fails: cursor stays before it
    await idle();
    const before = (await bosun.api('GET', '/v1/activities?limit=100')).body.activities.map(
      (a: { type: string }) => a.type,
    );
    expect(before).toEqual(['create_relay', 'complete_relay_sync', 'update_relay', 'fail_relay_sync']);
    await trigger('activity_retention');
    const after = (await bosun.api('GET', '/v1/activities?limit=100')).body.activities.map(
      (a: { type: string }) => a.type,
    );
    expect(after).toEqual(['update_relay', 'fail_relay_sync']);
  });

  it('target health reports zooid up with its latency, and down when it is unreachable', async () => {
    planet = await startPlanet();
    const { bosun, zooid, trigger } = planet;
    await trigger('target_health');
    let targets = (await bosun.api('GET', '/v1/targets')).body.targets;
    expect(targets).toEqual([expect.objectContaining({ url: zooid.url, up: true, error: null })]);
    expect(targets[0].latencyMs).toBeGreaterThanOrEqual(0);
    await zooid.close();
    await trigger('target_health');
    targets = (await bosun.api('GET', '/v1/targets')).body.targets;
    // The first probe may find its kept-alive socket closed; a fresh connect is refused.
    expect(targets[0]).toMatchObject({
      up: false,
      latencyMs: null,
      error: expect.stringMatching(/ECONNREFUSED|UND_ERR_SOCKET/),
    });
    await trigger('target_health');
    targets = (await bosun.api('GET', '/v1/targets')).body.targets;
    expect(targets[0]).toMatchObject({ up: false, latencyMs: null, error: 'ECONNREFUSED' });
    const metrics = await fetch(`${bosun.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/bosun_zooid_up\{target="[^"]+"\} 0/);
    expect(metrics).toMatch(/bosun_chore_runs_total\{chore="target_health",result="ok"\} 4/);
  });

  it('failed relays whose fault can heal (409, 404) are retried at a slow pace; a rejected config (400) waits', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({
      clock,
      // A request sent while the clock jumps minutes ahead must not time out on it.
      env: { BOSUN_CHORE_RESYNC_FAILED_INTERVAL: '10m', BOSUN_SYNC_TIMEOUT_MS: '600000' },
    });
    const { bosun, zooid, idle } = planet;
    const status = async (id: string) => (await bosun.api('GET', `/v1/relays/${id}`)).body.sync.status;
    zooid.setFaults({
      statusOverride: { POST: { status: 400, body: '{"error":"invalid info.pubkey: bad"}' } },
    });
    await bosun.api('POST', '/v1/relays', relayBody('rejected', owner.pubkey));
    await idle();
    // A 404 to the POST itself: as if ZOOID_API_URL pointed elsewhere for a while.
    zooid.setFaults({ statusOverride: { POST: 404 } });
    await bosun.api('POST', '/v1/relays', relayBody('lost', owner.pubkey));
    await idle();
    zooid.setFaults({});
    // A host held in zooid by a relay bosun does not know.
    zooid.setFaults({
      statusOverride: {
        POST: { status: 409, body: '{"error":"host \\"wants.example.com\\" is already in use"}' },
      },
    });
    await bosun.api('POST', '/v1/relays', relayBody('wants', owner.pubkey));
    await idle();
    for (const id of ['rejected', 'lost', 'wants']) expect(await status(id), id).toBe('failed');

    // The faults heal: the other relay leaves the host, the URL is right again.
    zooid.setFaults({});
    zooid.requests.length = 0;
    // Each timer's work ends before time moves on (see FakeClock.advance).
    await clock.advance(9 * 60_000, idle);
    expect(zooid.requests.filter((r) => r.id)).toEqual([]);
    await clock.advance(2 * 60_000, idle);
    for (const id of ['lost', 'wants']) {
      expect((await bosun.api('GET', `/v1/relays/${id}`)).body.sync, id).toMatchObject({ status: 'synced' });
    }
    expect(zooid.relays().get('wants')!.host).toBe('wants.example.com');
    expect(await status('rejected')).toBe('failed');
    expect(zooid.requests.filter((r) => r.id === 'rejected')).toEqual([]);
  });

  it('failed relays are retried at once when the zooid target recovers', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock, env: { BOSUN_RETRY_MAX_ATTEMPTS: '1' } });
    const { bosun, zooid, idle, trigger, bosunPubkey } = planet;
    const status = async (id: string) => (await bosun.api('GET', `/v1/relays/${id}`)).body.sync.status;
    zooid.setFaults({ failAll: true, failStatus: 503 });
    await bosun.api('POST', '/v1/relays', relayBody('outage', owner.pubkey));
    await idle();
    expect(await status('outage')).toBe('failed');
    await zooid.close();
    await trigger('target_health');
    await trigger('target_health');
    expect((await bosun.api('GET', '/v1/targets')).body.targets[0].up).toBe(false);

    back = await startZooidEmulator({ port: zooid.port, whitelist: [bosunPubkey], clock });
    await trigger('target_health');
    // The recovery triggers resync_failed; idle waits for that run and the push it starts.
    await idle();
    expect(await status('outage')).toBe('synced');
    expect(back.relays().has('outage')).toBe(true);
  });

  it('a zooid that refuses bosun’s key (403) is not up, and the target says which key; whitelisted, up again', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock });
    const { bosun, zooid, idle, trigger, bosunPubkey } = planet;
    const target = async () => (await bosun.api('GET', '/v1/targets')).body.targets[0];
    const upMetric = async () =>
      /bosun_zooid_up\{target="[^"]+"\} (\d)/.exec(
        await fetch(`${bosun.url}/metrics`).then((r) => r.text()),
      )?.[1];
    zooid.setWhitelist([owner.pubkey]);
    await trigger('target_health');
    // The probe alone cannot tell: zooid answers it.
    expect(await target()).toMatchObject({ up: true, error: null });

    await bosun.api('POST', '/v1/relays', relayBody('denied', owner.pubkey));
    await idle();
    for (let i = 0; i < 2; i++) {
      await clock.advance(5_000);
      await idle();
    }
    expect(zooid.requests.filter((r) => r.id === 'denied' && r.status === 403).length).toBeGreaterThanOrEqual(
      3,
    );
    await trigger('target_health');
    const down = await target();
    expect(down).toMatchObject({ up: false, syncFailures: expect.any(Number) });
    expect(down.syncFailures).toBeGreaterThanOrEqual(3);
    expect(down.error).toContain(bosunPubkey);
    expect(down.error).toContain('API_WHITELIST');
    expect(await upMetric()).toBe('0');

    zooid.setWhitelist([owner.pubkey, bosunPubkey]);
    await clock.advance(10_000);
    await idle();
    expect((await bosun.api('GET', '/v1/relays/denied')).body.sync.status).toBe('synced');
    expect(await target()).toMatchObject({ up: true, error: null, syncFailures: 0 });
    expect(await upMetric()).toBe('1');
  });
});
