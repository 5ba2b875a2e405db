import { statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ADMIN_TOKEN, tempDir } from '../support/env.js';
import { spawnBosun, startServe } from '../support/spawn.js';
import { manifest, relayFile, writeFleet } from './helpers.js';

const N = 3000;

function fleetDir(path: string, name: string): string {
  const relays: Record<string, string> = {};
  for (let i = 0; i < N; i++)
    relays[`r${i}.toml`] = relayFile(`r${i}.example.com`, `[info]\nname = "${name}"\n`);
  return writeFleet(path, manifest('crash'), relays);
}

/** Opens the database as a restarted bosun would and checks that it holds exactly one fleet version. */
async function inspect(file: string) {
  const db = new Database(file);
  expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  db.close();
  const store = new SqliteStore(file);
  try {
    const relays = await store.listRelays({ limit: N + 1 });
    const names = new Set(relays.map((r) => r.config.info.name));
    expect(names.size, `relays from both versions: ${[...names]}`).toBe(1);
    const latest = (await store.latestFleetState!('crash'))!;
    // The recorded State describes exactly the relays as they are.
    const byId = new Map(relays.map((r) => [r.id, r]));
    expect(latest.state.relays).toHaveLength(N);
    for (const r of latest.state.relays) expect(r.config_id).toBe(`${r.id}.v${byId.get(r.id)!.version}`);
    // Every relay version has its activity, and no activity is without its change.
    const activities = await store.lastActivityId();
    expect(activities).toBe(relays.reduce((sum, r) => sum + r.version, 0));
    return { name: [...names][0]!, version: latest.version };
  } finally {
    await store.close();
  }
}

describe('bosun serve --fleet', () => {
  const dir = tempDir('bosun-fleet-crash-');
  afterAll(() => dir.cleanup());
  const file = join(dir.path, 'bosun.db');
  const env = {
    BOSUN_DATABASE_URL: `sqlite:${file}`,
    BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
    BOSUN_LOG_LEVEL: 'info',
  };

  it('refuses to start on invalid fleet files, naming the file and line', async () => {
    const bad = writeFleet(join(dir.path, 'bad'), manifest('crash'), { 'r1.toml': 'host = 42\n' });
    const p = spawnBosun(['serve', '--port', '0', '--fleet', bad], env);
    const { code } = await p.exited;
    expect(code).toBe(1);
    expect(p.output()).toContain(`bosun: ${join(bad, 'r1.toml')}:1: host: expected string, received number`);
  });

  it('loads a fleet at start; an apply killed by SIGKILL leaves the old or the new version, never a mix', async () => {
    const a = fleetDir(join(dir.path, 'a'), 'A');
    const b = fleetDir(join(dir.path, 'b'), 'B');
    const first = await startServe({ ...env, BOSUN_FLEET_DIR: a });
    expect(first.output()).toMatch(/"msg":"fleet applied"/);
    first.child.kill('SIGTERM');
    await first.exited;
    let current = await inspect(file);
    expect(current).toEqual({ name: 'A', version: 1 });

    // Kill at different points of the apply: as it starts, as soon as it writes to the WAL (in the
    // middle of its transaction, while SQLite spills or commits ~3,000 rows), and after it is done.
    const wal = `${file}-wal`;
    const walMark = () => {
      try {
        const st = statSync(wal);
        return `${st.size}:${st.mtimeMs}`;
      } catch {
        return 'none';
      }
    };
    const outcomes: string[] = [];
    for (const when of ['start', 'writing', 'writing', 'writing', 'done'] as const) {
      const target = current.name === 'A' ? 'B' : 'A';
      const p = spawnBosun(['serve', '--port', '0', '--fleet', target === 'A' ? a : b], env);
      await p.waitFor(/"msg":"applying fleet"/);
      if (when === 'writing') {
        const before = walMark();
        const deadline = Date.now() + 20_000;
        while (walMark() === before && Date.now() < deadline) {
          // busy-wait: the kill must land while the transaction is being written
        }
      } else if (when === 'done') {
        await p.waitFor(/"msg":"fleet applied"/);
      }
      p.child.kill('SIGKILL');
      expect((await p.exited).signal).toBe('SIGKILL');
      const next = await inspect(file);
      if (next.name === target) expect(next.version).toBe(current.version + 1);
      else expect(next).toEqual(current);
      outcomes.push(`${when}:${next.name === target ? 'new' : 'old'}`);
      current = next;
    }
    expect(outcomes[0]).toBe('start:old');
    expect(outcomes[4]).toBe('done:new');
  });
});
