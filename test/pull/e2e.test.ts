/**
 * End to end: a real `bosun serve` and three real `bosun agent` processes writing to temp dirs.
 * Relays are created, updated, deactivated, moved, rotated and deleted; every directory converges to
 * exactly its fleet's relays. Then the server is SIGKILLed and restarted, and an agent is SIGKILLed
 * while changes happen and restarted: everything converges again. No process ever logs a secret.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultWorkDir } from '../../src/pull/agent/agent-files.js';
import { apiCall, keypair, relayBody, tempDir } from '../support/env.js';
import { killAll, type Spawned, spawnBosun, startServe } from '../support/spawn.js';

const ADMIN = 'e2e-admin-token-0123456789';
const { pubkey } = keypair();
const procs: Spawned[] = [];
const tmp = tempDir('bosun-e2e-');
afterAll(async () => {
  await killAll(procs);
  tmp.cleanup();
});

const env = {
  BOSUN_DATABASE_URL: `sqlite:${join(tmp.path, 'bosun.db')}`,
  BOSUN_ADMIN_TOKEN: ADMIN,
  BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
};

async function until(
  cond: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await cond()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('bosun serve + bosun agent, end to end', () => {
  it('three agents converge through every kind of change, a server kill -9 and an agent kill -9', async () => {
    let serve = await startServe(env, tmp.path);
    procs.push(serve);
    const url = serve.url;
    const port = new URL(url).port;
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await apiCall(url, method, path, body, ADMIN);
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
      return res.body;
    };
    const token = async (fleet: string) =>
      (await api('POST', '/v1/tokens', { role: 'agent', fleet })).token as string;
    const create = (id: string, fleet: string) => api('POST', '/v1/relays', relayBody(id, pubkey, { fleet }));

    await create('e1', 'edge');
    await create('e2', 'edge');
    await create('c1', 'core');
    const tokens = { edge: await token('edge'), core: await token('core') };

    const agents: { name: string; fleet: 'edge' | 'core'; dir: string; proc: Spawned }[] = [];
    const startAgent = async (name: string, fleet: 'edge' | 'core', dir = join(tmp.path, name)) => {
      const proc = spawnBosun(['--server', url, 'agent', '--dir', dir, '--health', '127.0.0.1:0'], {
        BOSUN_AGENT_TOKEN: tokens[fleet],
      });
      procs.push(proc);
      await proc.waitFor(/"msg":"agent in sync"/);
      return { name, fleet, dir, proc };
    };
    agents.push(
      await startAgent('a1', 'edge'),
      await startAgent('a2', 'edge'),
      await startAgent('a3', 'core'),
    );

    const secretsSeen = new Set<string>(Object.values(tokens));
    /** Every dir holds exactly its fleet's live relays, as the API shows them, mode 0600. */
    const converged = async () => {
      for (const fleet of ['edge', 'core'] as const) {
        const { relays } = await api('GET', `/v1/relays?fleet=${fleet}&limit=1000`);
        const want = new Map<string, { config: { host: string; inactive: boolean } }>(
          relays.map((r: { id: string }) => [r.id, r]),
        );
        for (const a of agents.filter((x) => x.fleet === fleet)) {
          const files = readdirSync(a.dir).filter((f) => f.endsWith('.toml'));
          const ids = files.map((f) => f.slice(0, -5)).sort();
          if (JSON.stringify(ids) !== JSON.stringify([...want.keys()].sort())) return false;
          for (const f of files) {
            const file = join(a.dir, f);
            expect(statSync(file).mode & 0o777).toBe(0o600);
            const doc = parse(readFileSync(file, 'utf8')) as Record<string, any>;
            const r = want.get(f.slice(0, -5))!;
            if (doc.host !== r.config.host || doc.inactive !== r.config.inactive) return false;
            secretsSeen.add(doc.secret);
            for (const c of doc.expiring ?? []) secretsSeen.add(c.value);
          }
        }
      }
      return true;
    };
    const fileOf = (agent: number, id: string) =>
      parse(readFileSync(join(agents[agent]!.dir, `${id}.toml`), 'utf8')) as Record<string, any>;

    await until(converged, 'initial convergence');
    expect(fileOf(0, 'e1').secret).toBe(fileOf(1, 'e1').secret);

    // Every kind of change.
    const oldSecret = fileOf(0, 'e1').secret as string;
    await api('PATCH', '/v1/relays/e1', { info: { name: 'E one' } });
    await api('POST', '/v1/relays/e2/deactivate');
    await create('e3', 'edge');
    await api('PATCH', '/v1/relays/c1', { fleet: 'edge' });
    // Rotation through the CLI: `bosun relay rotate-secret <id> --grace 1h`.
    const rotate = spawnBosun(['--server', url, 'relay', 'rotate-secret', 'e1', '--grace', '1h', '--json'], {
      BOSUN_TOKEN: ADMIN,
    });
    procs.push(rotate);
    expect((await rotate.exited).code).toBe(0);
    expect(JSON.parse(rotate.output()).expiring).toEqual([
      { name: 'secret', fingerprint: expect.stringMatching(/^[0-9a-f]{8}$/), expires_at: expect.any(String) },
    ]);
    await until(converged, 'convergence after changes');
    await until(
      () => fileOf(0, 'e1').secret !== oldSecret && fileOf(1, 'e1').secret !== oldSecret,
      'rotation',
    );
    expect(fileOf(0, 'e1').expiring).toEqual([
      { name: 'secret', value: oldSecret, expires_at: expect.any(Number) },
    ]);
    expect(fileOf(0, 'e1').info.name).toBe('E one');
    expect(fileOf(0, 'e2').inactive).toBe(true);
    await api('DELETE', '/v1/relays/e2');
    await create('c2', 'core');
    await until(converged, 'convergence after delete');

    // kill -9 the server; a new one on the same port and database; changes after it.
    serve.child.kill('SIGKILL');
    await serve.exited;
    serve = Object.assign(spawnBosun(['serve', '--port', port], env, tmp.path), { url });
    procs.push(serve);
    await serve.waitFor(/"msg":"bosun listening"/);
    await api('DELETE', '/v1/relays/e3');
    await api('PATCH', '/v1/relays/c2', { info: { name: 'C two' } });
    await create('e4', 'edge');
    await until(converged, 'convergence after the server restart');

    // kill -9 an agent; changes while it is down; it restarts from its state and converges.
    const a2 = agents[1]!;
    a2.proc.child.kill('SIGKILL');
    await a2.proc.exited;
    await api('DELETE', '/v1/relays/e1');
    await api('PATCH', '/v1/relays/e4', { fleet: 'core' });
    await create('e5', 'edge');
    agents[1] = await startAgent('a2', 'edge', a2.dir);
    await until(converged, 'convergence after the agent restart');
    expect(agents[1].proc.output()).toMatch(/"held":[1-9][0-9]*,.*"msg":"agent starting"/);
    expect(readdirSync(a2.dir).filter((f) => !f.endsWith('.toml'))).toEqual([]);
    // The killed agent's temp files are gone. Checked once the new one stopped (SIGTERM finishes a
    // write in progress): while it runs, its own state write may have a temp file for a moment.
    agents[1].proc.child.kill('SIGTERM');
    expect((await agents[1].proc.exited).code).toBe(0);
    expect(readdirSync(defaultWorkDir(a2.dir)).filter((f) => f.startsWith('.bosun-tmp-'))).toEqual([]);

    // Case 37 end to end: no secret in any process's output.
    const outputs = procs.map((p) => p.output()).join('\n');
    expect(secretsSeen.size).toBeGreaterThan(5);
    for (const secret of secretsSeen) expect(outputs).not.toContain(secret);
  }, 90_000);
});
