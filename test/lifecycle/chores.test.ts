import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Command } from '../../src/command.js';
import { FakeClock } from '../../src/domain/clock.js';
import { Notifier } from '../../src/notifier.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

const owner = keypair();
let planet: Planet | undefined;
afterEach(async () => {
  await planet?.close();
  planet = undefined;
});

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
    const { bosun, zooid, idle, trigger } = planet;
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

    await trigger('retry_sweeper');
    await idle();
    expect(zooid.relays().has('orphan-retry')).toBe(false);
    await clock.advance(5000);
    await trigger('retry_sweeper');
    await idle();
    expect(zooid.relays().has('orphan-retry')).toBe(true);
    expect((await bosun.api('GET', '/v1/relays/orphan-retry')).body.sync.status).toBe('synced');
  });

  it('drift repair syncs lost work: a change pending for over a minute with nothing scheduled', async () => {
    const clock = new FakeClock();
    planet = await startPlanet({ clock });
    const { bosun, zooid, idle, trigger } = planet;
    const other = new SqliteStore(join(bosun.dir, 'bosun.db'));
    await new Command(other, new Notifier(), clock).createRelay(
      { role: 'admin', actor: 'other' },
      relayBody('lost', owner.pubkey),
    );
    await other.close();

    await trigger('drift_repair');
    await idle();
    expect(zooid.relays().has('lost')).toBe(false);
    await clock.advance(61_000);
    await trigger('drift_repair');
    await idle();
    expect(zooid.relays().has('lost')).toBe(true);
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
});
