import { execFileSync } from 'node:child_process';
import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, startServer, type TestServer, tempDir } from '../support/env.js';
import { spawnBosun } from '../support/spawn.js';
import { manifest, relayFile, writeFleet } from './helpers.js';

async function run(args: string[], env: Record<string, string>) {
  const p = spawnBosun(args, env);
  const { code } = await p.exited;
  return { code, out: p.output() };
}

/** As run, but a process still running after `ms` is killed and reported as `hung`. */
async function runWithin(ms: number, args: string[], env: Record<string, string>) {
  const p = spawnBosun(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code: signal === 'SIGKILL' ? 'hung' : code, out: p.output() };
}

describe('bosun sync (CLI, API syncer)', () => {
  const root = tempDir('bosun-fleet-cli-');
  let s: TestServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    s = await startServer();
    env = { BOSUN_SERVER: s.url, BOSUN_TOKEN: ADMIN_TOKEN };
  });
  afterAll(async () => {
    await s.close();
    root.cleanup();
  });

  it('plans with exit 2 when there are changes, applies, then plans with exit 0', async () => {
    const dir = writeFleet(join(root.path, 'edge'), manifest('edge'), {
      'a.toml': relayFile('a.example.com', '[livekit]\napi_secret = "lk-one"\n'),
      'b.toml': relayFile('b.example.com'),
    });
    const plan = await run(['sync', dir, '--plan'], env);
    expect(plan.code).toBe(2);
    expect(plan.out).toContain('fleet edge: 2 to create, 0 to update, 0 to delete, 0 unchanged, 0 orphaned');
    expect(plan.out).toContain(`+ a (${join(dir, 'a.toml')}): create on a.example.com`);
    expect(await s.peer.store.lastActivityId()).toBe(0);

    const apply = await run(['sync', dir], env);
    expect(apply.code).toBe(0);
    expect(apply.out).toContain('applied fleet edge (edge.v1): 2 created, 0 updated, 0 deleted, 0 unchanged');
    expect(await s.peer.store.lastActivityId()).toBe(2);

    const again = await run(['sync', dir, '--plan'], env);
    expect(again.code).toBe(0);
    expect(again.out).toContain('no changes: bosun matches the files');
    const reapply = await run(['sync', dir], env);
    expect(reapply.code).toBe(0);
    expect(reapply.out).toContain('fleet edge is up to date (edge.v1): nothing to apply');
    expect(await s.peer.store.lastActivityId()).toBe(2);

    // A field diff, with the secret masked; an orphan reported, then pruned.
    writeFleet(dir, manifest('edge'), {
      'a.toml': relayFile('a.example.com', 'inactive = true\n[livekit]\napi_secret = "lk-two"\n'),
    });
    const diff = await run(['sync', dir, '--plan'], env);
    expect(diff.code).toBe(2);
    expect(diff.out).toContain(`~ a (${join(dir, 'a.toml')}): update\n      inactive: false -> true\n`);
    expect(diff.out).toContain('      livekit.api_secret: (sensitive) -> (sensitive)');
    expect(diff.out).toContain('! b: orphaned');
    expect(diff.out).not.toMatch(/lk-one|lk-two/);
    const keep = await run(['sync', dir], env);
    expect(keep.out).toContain('orphaned (kept; --prune deletes them): b');
    expect((await s.peer.store.getRelay('b'))!.deletedAt).toBeNull();
    const prunePlan = await run(['sync', dir, '--plan', '--prune'], env);
    expect([prunePlan.code, prunePlan.out.includes('- b: delete')]).toEqual([2, true]);
    const prune = await run(['sync', dir, '--prune', '--json'], env);
    expect(prune.code).toBe(0);
    const result = JSON.parse(prune.out);
    expect(result).toMatchObject({ written: true, pruned: { b: 'b' }, state: { config_id: 'edge.v3' } });
    expect((await s.peer.store.getRelay('b'))!.deletedAt).not.toBeNull();
  });

  it('prints each error as one line naming the file and line, or structured with --json, exit 1', async () => {
    const dir = writeFleet(join(root.path, 'broken'), manifest('broken'), {
      'r1.toml': 'host = "r1.example.com"\n[info]\nname = \n',
    });
    const bad = await run(['sync', dir, '--plan'], env);
    expect(bad.code).toBe(1);
    expect(bad.out.trim().split('\n')).toHaveLength(1);
    expect(bad.out.trim()).toMatch(new RegExp(`^bosun: ${join(dir, 'r1.toml')}:3: invalid TOML: `));

    writeFileSync(join(dir, 'r1.toml'), relayFile('r1.example.com', 'colour = "red"\n'));
    const json = await run(['sync', dir, '--json'], env);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.out)).toEqual({
      error: {
        type: 'sync_error',
        resource: `${join(dir, 'r1.toml')}:2`,
        description: 'colour: unknown field',
      },
    });

    writeFileSync(join(dir, 'r1.toml'), relayFile('r1.example.com'));
    const down = await run(['sync', dir], { BOSUN_SERVER: 'http://127.0.0.1:9', BOSUN_TOKEN: 'x' });
    expect(down.code).toBe(1);
    expect(down.out.trim()).toMatch(
      /^bosun: fleet\/broken: cannot reach bosun at http:\/\/127\.0\.0\.1:9 .*\[unreachable\]$/,
    );
    const denied = await run(['sync', dir, '--json'], { ...env, BOSUN_TOKEN: 'wrong' });
    expect(JSON.parse(denied.out).error).toMatchObject({
      type: 'sync_api_error',
      resource: 'fleet/broken',
      code: 'unauthorized',
      status: 401,
    });
    expect(await s.peer.store.latestFleetState!('broken')).toBeUndefined();
  });

  it('refuses a FIFO (or a link to one) without blocking, in sync and in serve --fleet, exit 1', async () => {
    const dir = writeFleet(join(root.path, 'fifo'), manifest('fifo'), {
      'r1.toml': relayFile('r1.example.com'),
    });
    const pipe = join(root.path, 'pipe');
    execFileSync('mkfifo', [pipe]);
    const db = { BOSUN_DATABASE_URL: `sqlite:${join(root.path, 'fifo.db')}`, BOSUN_ADMIN_TOKEN: ADMIN_TOKEN };
    for (const [name, make] of [
      ['r2.toml', (at: string) => symlinkSync(pipe, at)],
      ['r2.toml', (at: string) => execFileSync('mkfifo', [at])],
      ['fleet.toml', (at: string) => symlinkSync(pipe, at)],
    ] as const) {
      const at = join(dir, name);
      rmSync(at, { force: true });
      make(at);
      const line = `bosun: ${at}: is not a regular file (a FIFO)`;
      const plan = await runWithin(20_000, ['sync', dir, '--plan'], env);
      expect(plan, name).toEqual({ code: 1, out: `${line}\n` });
      const serve = await runWithin(20_000, ['serve', '--port', '0', '--fleet', dir], db);
      expect(serve.code, name).toBe(1);
      expect(serve.out, name).toContain(line);
      rmSync(at);
    }
  }, 180_000);

  it('--wait gives up with exit 1 when the relays do not sync in time', async () => {
    const dir = writeFleet(join(root.path, 'nowait'), manifest('nowait'), {
      'nw.toml': relayFile('nw.example.com'),
    });
    const res = await run(['sync', dir, '--wait', '--wait-timeout', '0.6', '--wait-interval', '0.2'], env);
    expect(res.code).toBe(1);
    expect(res.out).toContain('waiting for zooid: 0/1 synced, 0 failed, 1 pending');
    expect(res.out).toContain('gave up after 0.6s: nw still pending');
  });
});

describe('bosun sync --wait with push sync', () => {
  const bosunKey = generateSecretKey();
  let zooid: ZooidEmulator;
  let s: TestServer;
  const root = tempDir('bosun-fleet-wait-');

  beforeAll(async () => {
    zooid = await startZooidEmulator({ whitelist: [publicKeyOf(bosunKey)] });
    s = await startServer({ env: { ZOOID_API_URL: zooid.url, BOSUN_SECRET_KEY: bosunKey } });
  });
  afterAll(async () => {
    await s.close();
    await zooid.close();
    root.cleanup();
  });

  it('follows the scheduled relays until zooid has them', async () => {
    const dir = writeFleet(join(root.path, 'pushed'), manifest('pushed'), {
      'p1.toml': relayFile('p1.example.com'),
      'p2.toml': relayFile('p2.example.com', '[groups]\nenabled = true\n'),
    });
    const res = await run(['sync', dir, '--wait', '--wait-interval', '0.1'], {
      BOSUN_SERVER: s.url,
      BOSUN_TOKEN: ADMIN_TOKEN,
    });
    expect(res.code).toBe(0);
    expect(res.out).toContain('all 2 scheduled relays synced');
    expect(zooid.relays().get('p2')).toMatchObject({ host: 'p2.example.com', groups: { enabled: true } });
    expect(zooid.relays().has('p1')).toBe(true);
  });
});
