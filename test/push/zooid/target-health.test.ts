import { describe, expect, it } from 'vitest';
import type { ZooidResult } from '../../../src/push/zooid/client.js';
import { startZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { TargetHealth } from '../../../src/push/zooid/target-health.js';
import { useCleanups } from '../../support/cleanups.js';
import { FakeClock } from '../../support/clock.js';
import { endlessAnswer } from '../../support/endless-answer.js';
import { keypair, relayBody } from '../../support/env.js';
import { startPlanet } from '../../support/planet.js';
import { until } from '../../support/until.js';

const owner = keypair();
const { defer } = useCleanups();

/** bosun_zooid_up by target, as /metrics shows it. */
async function upByTarget(url: string): Promise<Record<string, string>> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  return Object.fromEntries(
    [...text.matchAll(/^bosun_zooid_up\{target="([^"]+)"\} (\d)$/gm)].map((m) => [m[1]!, m[2]!]),
  );
}

describe('target health: every target, from its probe and its sync results (issue 17.4)', () => {
  it('a named target that refuses bosun’s key (403) is down while its probe answers; default stays up', async () => {
    const clock = new FakeClock();
    const planet = await startPlanet({ clock });
    defer(() => planet.close());
    const { bosun, idle, trigger, bosunPubkey } = planet;
    // A second zooid that does not whitelist bosun's key yet.
    const eu = await startZooidEmulator({ whitelist: [owner.pubkey], clock });
    defer(() => eu.close());
    expect((await bosun.api('POST', '/v1/targets', { name: 'eu-1', url: eu.url })).status).toBe(201);
    expect((await bosun.api('PUT', '/v1/fleets/eu', { target: 'eu-1' })).status).toBe(200);
    const target = async (name: string) => (await bosun.api('GET', `/v1/targets/${name}`)).body;

    await trigger('target_health');
    // The probe alone cannot tell: this zooid answers it.
    expect(await target('eu-1')).toMatchObject({ up: true, error: null, syncFailures: 0 });
    expect(await upByTarget(bosun.url)).toEqual({ default: '1', 'eu-1': '1' });

    await bosun.api('POST', '/v1/relays', relayBody('denied', owner.pubkey, { fleet: 'eu' }));
    await bosun.api('POST', '/v1/relays', relayBody('home', owner.pubkey));
    await idle();
    for (let i = 0; i < 2; i++) await clock.advance(5_000, idle);
    expect(eu.requests.filter((r) => r.id === 'denied' && r.status === 403).length).toBeGreaterThanOrEqual(3);

    const down = await target('eu-1');
    expect(down).toMatchObject({ up: false, url: eu.url });
    expect(down.syncFailures).toBeGreaterThanOrEqual(3);
    expect(down.error).toContain(bosunPubkey);
    expect(await upByTarget(bosun.url)).toEqual({ default: '1', 'eu-1': '0' });
    // A probe that answers again does not make it up: its syncs still all fail.
    await trigger('target_health');
    expect((await target('eu-1')).up).toBe(false);
    expect(await upByTarget(bosun.url)).toEqual({ default: '1', 'eu-1': '0' });
    // The list says the same; default is untouched by eu-1's refusals.
    const list = (await bosun.api('GET', '/v1/targets')).body.targets;
    expect(list.map((t: { name: string; up: boolean }) => [t.name, t.up])).toEqual([
      ['default', true],
      ['eu-1', false],
    ]);
    expect((await bosun.api('GET', '/v1/relays/home')).body.sync.status).toBe('synced');

    // Whitelisted: the next retry succeeds, and one success sets the target up.
    eu.setWhitelist([owner.pubkey, bosunPubkey]);
    await clock.advance(10_000, idle);
    expect((await bosun.api('GET', '/v1/relays/denied')).body.sync.status).toBe('synced');
    expect(await target('eu-1')).toMatchObject({ up: true, error: null, syncFailures: 0 });
    expect(await upByTarget(bosun.url)).toEqual({ default: '1', 'eu-1': '1' });
  });

  it('a named target that does not answer is down; removed, its series goes with it', async () => {
    const clock = new FakeClock();
    const planet = await startPlanet({ clock });
    defer(() => planet.close());
    const { bosun, trigger } = planet;
    const eu = await startZooidEmulator({ clock });
    defer(() => eu.close());
    expect((await bosun.api('POST', '/v1/targets', { name: 'eu-1', url: eu.url })).status).toBe(201);
    await trigger('target_health');
    expect(await upByTarget(bosun.url)).toEqual({ default: '1', 'eu-1': '1' });
    await eu.close();
    // The first probe may find its kept-alive socket closed; a fresh connect is refused.
    await trigger('target_health');
    await trigger('target_health');
    expect((await bosun.api('GET', '/v1/targets/eu-1')).body).toMatchObject({
      up: false,
      latencyMs: null,
      error: 'ECONNREFUSED',
    });
    expect(await upByTarget(bosun.url)).toEqual({ default: '1', 'eu-1': '0' });

    expect((await bosun.api('DELETE', '/v1/targets/eu-1')).status).toBe(204);
    await trigger('target_health');
    expect(await upByTarget(bosun.url)).toEqual({ default: '1' });
  });
});

describe('TargetHealth', () => {
  const refused: ZooidResult = {
    ok: false,
    kind: 'forbidden',
    status: 403,
    message: 'pubkey not whitelisted',
    attempts: 1,
  };
  const unanswered: ZooidResult = { ok: false, kind: 'transient', message: 'ECONNREFUSED', attempts: 1 };
  const rejected: ZooidResult = { ok: false, kind: 'invalid', status: 400, message: 'bad host', attempts: 1 };

  it('three syncs refused or unanswered in a row take a target down; a success sets it up, before any probe', () => {
    const seen: [string, boolean | null][] = [];
    const health = new TargetHealth(async () => [], new FakeClock(), fetch, {
      onStatus: (name, s) => seen.push([name, s.up]),
    });
    const eu = { name: 'eu-1', url: 'http://127.0.0.1:1' };
    health.recordSync(eu, refused);
    health.recordSync(eu, unanswered);
    expect(health.status('eu-1')).toMatchObject({ up: null, syncFailures: 2 });
    health.recordSync(eu, refused);
    expect(health.status('eu-1')).toMatchObject({ up: false, syncFailures: 3 });
    expect(health.status('eu-1')!.error).toContain('pubkey not whitelisted');
    // zooid answered about the relay, not about itself: the run of failures ends, nothing is known.
    health.recordSync(eu, rejected);
    expect(health.status('eu-1')).toMatchObject({ up: null, syncFailures: 0 });
    for (let i = 0; i < 3; i++) health.recordSync(eu, refused);
    health.recordSync(eu, { ok: true, status: 200, attempts: 1 });
    expect(health.status('eu-1')).toMatchObject({ up: true, error: null, syncFailures: 0 });
    expect(seen).toEqual([
      ['eu-1', false],
      ['eu-1', null],
      ['eu-1', false],
      ['eu-1', true],
    ]);
    expect(health.status('other')).toBeNull();
  });

  it('the probe reads no body: an endless answer at the probed URL neither holds it nor fills memory', async () => {
    const zooid = await endlessAnswer(401);
    defer(() => zooid.close());
    const health = new TargetHealth(async () => [{ name: 'eu-1', url: zooid.url }], new FakeClock());
    const started = performance.now();
    await health.once(AbortSignal.timeout(5_000));
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(health.status('eu-1')).toMatchObject({ up: true, error: null });
    await until(() => zooid.closed() === 1, 5_000, 'the probe connection closed');
  });
});
