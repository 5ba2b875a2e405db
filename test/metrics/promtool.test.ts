import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody, tempDir } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';

/**
 * Prometheus' own linter on a live `/metrics` (relays in two fleets, activity, syncs, a retrying
 * relay), on SQLite and on PostgreSQL (pool gauges). promtool comes from Debian's `prometheus`
 * package (`.ci/run` installs it); with CI set a missing promtool fails instead of skipping.
 */
const PROMTOOL = process.env.BOSUN_PROMTOOL ?? 'promtool';
const HAVE_PROMTOOL = spawnSync(PROMTOOL, ['--version']).status === 0;
const SKIP = !HAVE_PROMTOOL && !process.env.CI;
if (SKIP)
  console.warn(`promtool test skipped: ${PROMTOOL} not found (apt-get install prometheus; CI installs it)`);

const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe.skipIf(SKIP).each([
  { db: 'sqlite', skip: false },
  { db: 'postgres', skip: !postgresUrl },
])('/metrics on $db', ({ db, skip }) => {
  let planet: Planet;
  let schema: ReturnType<typeof freshSchema> | undefined;
  const owner = keypair();

  beforeAll(async () => {
    if (skip) return;
    schema = db === 'postgres' ? freshSchema('bosun_prom') : undefined;
    planet = await startPlanet({
      env: { BOSUN_RETRY_MAX_ATTEMPTS: '3', ...(schema ? { BOSUN_DATABASE_URL: schema.url } : {}) },
    });
    await planet.bosun.api('POST', '/v1/relays', relayBody('ok-1', owner.pubkey));
    await planet.bosun.api(
      'POST',
      '/v1/relays',
      relayBody('ok-2', owner.pubkey, { fleet: 'east', inactive: true }),
    );
    await planet.bosun.api('PUT', '/v1/fleets/edge', { target: null });
    await planet.bosun.api('POST', '/v1/relays', relayBody('pulled-1', owner.pubkey, { fleet: 'edge' }));
    await planet.idle();
    planet.zooid.setFaults({ failAll: true });
    await planet.bosun.api('POST', '/v1/relays', relayBody('bad-1', owner.pubkey));
    await planet.idle();
    await planet.trigger('target_health');
  }, 60_000);
  afterAll(async () => {
    await planet?.close();
    await schema?.drop();
  });

  it.skipIf(skip)(
    'passes `promtool check metrics` and shows fleets, inactive relays and a waiting change',
    async () => {
      expect(HAVE_PROMTOOL, `${PROMTOOL} not found: apt-get install prometheus`).toBe(true);
      const text = await fetch(`${planet.bosun.url}/metrics`).then((r) => r.text());
      expect(text).toContain('bosun_syncs_total{');
      const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${lint.stdout}${lint.stderr}`.trim()).toBe('');
      expect(lint.status).toBe(0);

      expect(value(text, 'bosun_fleet_relays{fleet="east",status="synced"}')).toBe(1);
      expect(value(text, 'bosun_fleet_relays{fleet="default",status="retrying"}')).toBe(1);
      expect(value(text, 'bosun_relays_inactive')).toBe(1);
      // Push sync's metrics carry the target (issue 17.6); bosun_relays keeps its series.
      expect(value(text, 'bosun_target_relays{target="default",status="retrying"}')).toBe(1);
      expect(value(text, 'bosun_target_relays{target="none",status="pull"}')).toBe(1);
      expect(value(text, 'bosun_relays{status="retrying"}')).toBe(1);
      expect(value(text, 'bosun_sync_duration_seconds_count{target="default"}')).toBeGreaterThanOrEqual(3);
      expect(value(text, 'bosun_sync_retries_scheduled_total{target="default"}')).toBeGreaterThanOrEqual(1);
      expect(value(text, 'bosun_sync_in_flight{target="default"}')).toBe(0);
      expect(value(text, 'bosun_sync_waiting{target="default"}')).toBe(0);
      expect(value(text, 'bosun_oldest_unsynced_change_age_seconds')).toBeGreaterThan(0);
      // One series per observer: SQLite's one for every target, PostgreSQL's per held target.
      const observer = db === 'postgres' ? 'default' : '_all';
      expect(value(text, `bosun_sync_queue_depth{target="${observer}"}`)).toBe(0);
      expect(value(text, `bosun_observer_cursor{target="${observer}"}`)).toBeGreaterThan(0);
      if (db === 'postgres') {
        expect(value(text, 'bosun_pg_pool_clients{state="idle"}')).toBeGreaterThanOrEqual(0);
        expect(value(text, 'bosun_pg_pool_clients{state="in_use"}')).toBeGreaterThanOrEqual(0);
        expect(value(text, 'bosun_pg_pool_waiting')).toBe(0);
      } else {
        expect(text).not.toContain('bosun_pg_pool');
      }
    },
  );
});

describe.skipIf(SKIP)("the README's example alerts", () => {
  it('pass `promtool check rules`', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const block = /Example alerts:\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toContain('bosun_oldest_unsynced_change_age_seconds');
    const dir = tempDir();
    try {
      const file = join(dir.path, 'alerts.yml');
      writeFileSync(file, block!);
      const check = spawnSync(PROMTOOL, ['check', 'rules', file], { encoding: 'utf8' });
      expect(check.stderr).toBe('');
      expect(check.status).toBe(0);
    } finally {
      dir.cleanup();
    }
  });
});
