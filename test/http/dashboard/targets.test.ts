import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTargetFleet, type TargetFleet } from './target-fleet.js';

describe('dashboard by target: the overview’s counts and the target page (issue 17.6)', () => {
  let f: TargetFleet;
  const api = (...args: Parameters<TargetFleet['planet']['bosun']['api']>) => f.planet.bosun.api(...args);
  beforeAll(async () => {
    f = await startTargetFleet();
  }, 60_000);
  afterAll(async () => {
    await f?.close();
  });

  it('overview: relay counts grouped by target, pull-only fleets as target null, last', async () => {
    const o = (await api('GET', '/v1/dashboard/overview')).body;
    expect(o.by_target).toEqual([
      {
        target: 'default',
        fleets: ['default'],
        pending: 0,
        synced: 2,
        retrying: 0,
        failed: 0,
        pull: 0,
        total: 2,
      },
      { target: 'eu-1', fleets: ['eu'], pending: 0, synced: 0, retrying: 1, failed: 1, pull: 0, total: 2 },
      { target: null, fleets: ['edge'], pending: 0, synced: 0, retrying: 0, failed: 0, pull: 1, total: 1 },
    ]);
    // Every target is listed with its health, the registered ones too.
    expect(o.fleet.targets.map((t: { name: string; up: boolean }) => [t.name, t.up])).toEqual([
      ['default', true],
      ['eu-1', true],
    ]);
  });

  it('target page: its health, fleets, counts and failing relays (failed first, then retrying)', async () => {
    const res = await api('GET', '/v1/dashboard/targets/eu-1');
    expect(res.status).toBe(200);
    const d = res.body;
    expect(d.target).toMatchObject({
      name: 'eu-1',
      url: f.eu.url,
      up: true,
      syncFailures: 1,
      key: 'default',
    });
    expect(d.target.checkedAt).toEqual(expect.any(String));
    expect(JSON.stringify(d)).not.toMatch(/secret_key|"secret"/);
    expect(d.fleets).toEqual(['eu']);
    expect(d.counts).toEqual({ pending: 0, synced: 0, retrying: 1, failed: 1, pull: 0, total: 2 });
    expect(d.failing.map((r: { id: string }) => r.id)).toEqual(['eu-bad', 'eu-later']);
    expect(d.failing[0].sync).toMatchObject({ status: 'failed', next_attempt_at: null });
    expect(d.failing[0].sync.error).toContain('400');
    expect(d.failing[1].sync).toMatchObject({ status: 'retrying', next_attempt_at: expect.any(String) });
    expect(d.failing[1].sync.error).toContain('500');

    const home = (await api('GET', '/v1/dashboard/targets/default')).body;
    expect(home.counts).toMatchObject({ synced: 2, total: 2 });
    expect(home.failing).toEqual([]);
  });

  it('unknown target: 404 naming it; tenants get no target page and no by-target counts', async () => {
    const missing = await api('GET', '/v1/dashboard/targets/nope');
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toContain('nope');
    expect((await api('GET', '/v1/dashboard/targets/none')).status).toBe(404);

    const denied = await api('GET', '/v1/dashboard/targets/eu-1', undefined, f.aliceToken);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    const alice = (await api('GET', '/v1/dashboard/overview', undefined, f.aliceToken)).body;
    expect(alice.by_target).toBeNull();
    expect(alice.fleet).toBeNull();
    expect(alice.counts).toMatchObject({ synced: 1, total: 1 });
  });
});
