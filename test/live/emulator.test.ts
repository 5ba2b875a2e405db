import { afterEach, describe, expect, it } from 'vitest';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, keypair, relayBody, tempDir } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { spawnBosun } from '../support/spawn.js';

/** Live verification end to end: bosun, push sync and the zooid emulator serving NIP-11 by Host. */
describe('live verification against the zooid emulator', () => {
  let planet: Planet;
  const owner = keypair();
  afterEach(async () => {
    await planet?.close();
  });

  const relay = async (id: string) => (await planet.bosun.api('GET', `/v1/relays/${id}`)).body;
  /** Polls the relay until its live status is `status` (real clock: zooid and bosun run for real). */
  async function until(id: string, status: string, timeoutMs = 15_000) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await relay(id);
      if (r.live.status === status) return r;
      if (Date.now() > end)
        throw new Error(`${id}: live ${r.live.status} (${r.live.error}), wanted ${status}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }
  const puts = (id: string) => planet.zooid.accepted(id).filter((c) => c.method === 'PUT').length;
  const create = async (id: string, extra: Record<string, unknown> = {}) => {
    const res = await planet.bosun.api('POST', '/v1/relays', relayBody(id, owner.pubkey, extra));
    expect(res.status).toBe(201);
  };

  it('live, not_served (one repair, then backoff), wrong_identity, unexpected, an edit behind bosun’s back', async () => {
    const twin = keypair();
    planet = await startPlanet({
      verify: { graceMs: 1500 },
      serving: { failLoad: ['broken'], servedSecret: { twin: twin.secret } },
    });
    await create('ok');
    await create('broken');
    await create('twin');
    await create('gone');
    await create('edited');

    const ok = await until('ok', 'live');
    expect(ok.live).toEqual({ status: 'live', checked_at: expect.any(String), error: '' });

    // Accepted by the API, never served: not_served, one full PUT past the grace, then left alone.
    const broken = await until('broken', 'not_served');
    expect(broken.live.error).toMatch(/404/);
    const deadline = Date.now() + 10_000;
    while (puts('broken') < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(puts('broken')).toBe(1);
    await new Promise((r) => setTimeout(r, 3000));
    expect(puts('broken')).toBe(1);
    expect((await relay('broken')).live.status).toBe('not_served');
    expect(
      planet.bosun.logs.some((l) => l.includes('repairing with a full PUT') && l.includes('broken')),
    ).toBe(true);

    // Served under another key: wrong_identity, reported, never repaired.
    expect((await until('twin', 'wrong_identity')).live.error).toContain(twin.pubkey.slice(0, 16));
    await new Promise((r) => setTimeout(r, 2000));
    expect(puts('twin')).toBe(0);

    // Deactivated, but zooid keeps serving it (its file edited back behind bosun's back).
    await until('gone', 'live');
    await planet.bosun.api('POST', '/v1/relays/gone/deactivate');
    await until('gone', 'not_served');
    planet.zooid.editRelay('gone', (c) => {
      c.inactive = false;
    });
    planet.bosun.peer.verifier!.schedule('gone');
    expect((await until('gone', 'unexpected')).live.error).toBe('inactive relay is still served');
    expect(puts('gone')).toBe(0);

    // Renamed in zooid behind bosun's back: stale with the diff, then repaired by a PUT.
    await until('edited', 'live');
    planet.zooid.editRelayName('edited', 'hacked');
    planet.bosun.peer.verifier!.schedule('edited');
    const stale = await until('edited', 'stale');
    expect(stale.live.diff).toEqual({ name: { want: 'edited', got: 'hacked' } });
    await until('edited', 'live');
    expect(puts('edited')).toBe(1);

    // One observe_relay per change of status, not per check.
    const acts = (await planet.bosun.api('GET', '/v1/activities?relay=edited')).body.activities;
    expect(
      acts.filter((a: { type: string }) => a.type === 'observe_relay').map((a: any) => a.payload.to),
    ).toEqual(['live', 'stale', 'live']);

    // The CLI's LIVE column shows each status.
    const cli = spawnBosun(['relay', 'list'], { BOSUN_SERVER: planet.bosun.url, BOSUN_TOKEN: ADMIN_TOKEN });
    expect((await cli.exited).code).toBe(0);
    const table = cli.output();
    expect(table).toMatch(/^ID\s+HOST\s+FLEET\s+STATE\s+VERSION\s+SYNC\s+TARGET\s+LIVE\s+ERROR/m);
    const row = (id: string, state: string, live: string) =>
      new RegExp(`^${id}\\s+\\S+\\s+default\\s+${state}\\s+\\d+\\s+synced\\s+default\\s+${live}\\b`, 'm');
    expect(table).toMatch(row('ok', 'active', 'live'));
    expect(table).toMatch(row('broken', 'active', 'not_served'));
    expect(table).toMatch(row('twin', 'active', 'wrong_identity'));
    expect(table).toMatch(row('gone', 'inactive', 'unexpected'));
    expect(table).toMatch(row('edited', 'active', 'live'));

    // Metrics show each status.
    const metrics = await fetch(`${planet.bosun.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^bosun_relays_live\{status="live"\} 2$/m);
    expect(metrics).toMatch(/^bosun_relays_live\{status="not_served"\} 1$/m);
    expect(metrics).toMatch(/^bosun_relays_live\{status="wrong_identity"\} 1$/m);
    expect(metrics).toMatch(/^bosun_relays_live\{status="unexpected"\} 1$/m);
    expect(metrics).toMatch(/^bosun_live_check_seconds_count [1-9]/m);
    expect(metrics).toMatch(/^bosun_live_repairs_total [2-9]/m);
  }, 90_000);

  it.skipIf(!postgresUrl)(
    'PostgreSQL (push leased per target): a repair goes through the log, for whichever replica holds the target',
    async () => {
      const db = freshSchema();
      try {
        planet = await startPlanet({
          verify: { graceMs: 1500 },
          serving: { failLoad: ['broken'] },
          env: { BOSUN_DATABASE_URL: db.url },
        });
        await create('broken');
        await until('broken', 'not_served');
        const deadline = Date.now() + 10_000;
        while (puts('broken') < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(puts('broken')).toBe(1);
        // The verifier runs on the worker lease's replica; the relay's target may be another's, so
        // the repair is a resync activity that target's observer follows, not an in-memory hand-off.
        const history = (await planet.bosun.api('GET', '/v1/activities?relay=broken')).body.activities as {
          type: string;
          actor: string;
        }[];
        expect(history.filter((a) => a.type === 'resync_relay').map((a) => a.actor)).toEqual([
          'system:verifier',
        ]);
      } finally {
        await planet?.close();
        await db.drop();
      }
    },
    60_000,
  );

  it('a slow reload passes through stale to live without a repair', async () => {
    planet = await startPlanet({ verify: { graceMs: 6000 }, serving: { reloadDelayMs: 2500 } });
    await create('slow');
    await until('slow', 'live');
    await planet.bosun.api('PATCH', '/v1/relays/slow', { info: { name: 'renamed' } });
    expect((await until('slow', 'stale')).live.diff).toEqual({ name: { want: 'renamed', got: 'slow' } });
    await until('slow', 'live');
    expect(puts('slow')).toBe(0);
  });

  it('reads a fleet pinned to a target at that target’s verify_url, with the relay’s host', async () => {
    const dir = tempDir();
    let second: ZooidEmulator | undefined;
    try {
      planet = await startPlanet({ verify: { graceMs: 60_000 }, zooidConfigDir: dir.path });
      // A second zooid instance with no API whitelist: it only serves what its CONFIG dir holds
      // (the first instance's files, loaded when it reloads).
      second = await startZooidEmulator({ configDir: dir.path });
      const target = await planet.bosun.api('POST', '/v1/targets', {
        name: 'eu',
        url: planet.zooid.url,
        verify_url: second.url,
      });
      expect(target.status).toBe(201);
      expect((await planet.bosun.api('GET', '/v1/targets/eu')).body.verify_url).toBe(second.url);
      const [defaultTarget] = (await planet.bosun.api('GET', '/v1/targets')).body.targets;
      expect(defaultTarget).toMatchObject({ name: 'default', verify_url: planet.zooid.url });
      expect((await planet.bosun.api('PUT', '/v1/fleets/eu', { target: 'eu' })).status).toBe(200);
      await create('home');
      await create('away', { fleet: 'eu' });
      // Push sync writes both to the first instance; only `away` is read at the second, which has
      // not loaded it yet.
      await until('home', 'live');
      expect((await until('away', 'not_served')).live.error).toMatch(/404/);
      second.reload();
      planet.bosun.peer.verifier!.schedule('away');
      await until('away', 'live');
    } finally {
      await second?.close();
      dir.cleanup();
    }
  });
});
