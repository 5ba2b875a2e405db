import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

/**
 * Prometheus' own linter on a live `/metrics` (relays, activity, syncs, a failing relay). promtool
 * comes from Debian's `prometheus` package (`.ci/run` installs it); with CI set a missing promtool
 * fails instead of skipping.
 */
const PROMTOOL = process.env.BOSUN_PROMTOOL ?? 'promtool';
const HAVE_PROMTOOL = spawnSync(PROMTOOL, ['--version']).status === 0;
const SKIP = !HAVE_PROMTOOL && !process.env.CI;
if (SKIP)
  console.warn(`promtool test skipped: ${PROMTOOL} not found (apt-get install prometheus; CI installs it)`);

describe.skipIf(SKIP)('/metrics under promtool', () => {
  let planet: Planet;
  const owner = keypair();

  beforeAll(async () => {
    planet = await startPlanet({ env: { BOSUN_RETRY_MAX_ATTEMPTS: '3' } });
    await planet.bosun.api('POST', '/v1/relays', relayBody('ok-1', owner.pubkey));
    await planet.bosun.api('POST', '/v1/relays', relayBody('ok-2', owner.pubkey, { fleet: 'east' }));
    await planet.idle();
    planet.zooid.setFaults({ failAll: true });
    await planet.bosun.api('POST', '/v1/relays', relayBody('bad-1', owner.pubkey));
    await planet.idle();
    await planet.trigger('target_health');
  }, 60_000);
  afterAll(async () => {
    await planet?.close();
  });

  it('passes `promtool check metrics`', async () => {
    expect(HAVE_PROMTOOL, `${PROMTOOL} not found: apt-get install prometheus`).toBe(true);
    const text = await fetch(`${planet.bosun.url}/metrics`).then((r) => r.text());
    expect(text).toContain('bosun_syncs_total{');
    const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(`${lint.stdout}${lint.stderr}`.trim()).toBe('');
    expect(lint.status).toBe(0);
  });
});
