import { afterEach, describe, expect, it } from 'vitest';
import { keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

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

    // Metrics and the CLI show each status.
    const metrics = await fetch(`${planet.bosun.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^bosun_relays_live\{status="live"\} 2$/m);
    expect(metrics).toMatch(/^bosun_relays_live\{status="not_served"\} 1$/m);
    expect(metrics).toMatch(/^bosun_relays_live\{status="wrong_identity"\} 1$/m);
    expect(metrics).toMatch(/^bosun_relays_live\{status="unexpected"\} 1$/m);
    expect(metrics).toMatch(/^bosun_live_check_seconds_count [1-9]/m);
    expect(metrics).toMatch(/^bosun_live_repairs_total [2-9]/m);
  });

  it('a slow reload passes through stale to live without a repair', async () => {
    planet = await startPlanet({ verify: { graceMs: 6000 }, serving: { reloadDelayMs: 2500 } });
    await create('slow');
    await until('slow', 'live');
    await planet.bosun.api('PATCH', '/v1/relays/slow', { info: { name: 'renamed' } });
    expect((await until('slow', 'stale')).live.diff).toEqual({ name: { want: 'renamed', got: 'slow' } });
    await until('slow', 'live');
    expect(puts('slow')).toBe(0);
  });
});
