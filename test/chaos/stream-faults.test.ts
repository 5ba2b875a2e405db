import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey } from '../../src/domain/keys.js';
import { relayToml } from '../../src/pull/agent/agent-files.js';
import { fingerprint } from '../../src/pull/protocol.js';
import { relayRep } from '../../src/pull/server/rep.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ADMIN_TOKEN, apiCall, keypair, tempDir } from '../support/env.js';
import { seededRandom } from '../support/random.js';
import { killAll, type Spawned, spawnBosun, startServe } from '../support/spawn.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/**
 * The agent stream cut every few seconds: a real `bosun agent` follows a real `bosun serve`
 * through a loopback TCP proxy that, every 1–3 s (seeded jitter), drops every connection — at
 * once, or after swallowing what was in flight for a moment — for CUT_MS, while a client keeps
 * changing the fleet: updates, host changes, (de)activations, secret rotations, moves to another
 * fleet and back, deletes and re-creates.
 *
 * - while it runs, sampled files never go back: the counter in each relay's `info.name` never
 *   decreases, and a relay's secret never returns to one it had replaced;
 * - the agent saw the cuts and resumed (delta puts after reconnecting);
 * - afterwards the config dir is exactly bosun's record: one file per live relay of the agent's
 *   fleet (inactive ones with `inactive = true`), byte for byte what the agent writes for the
 *   stored relay, and nothing else.
 *
 * BOSUN_CHAOS_SEED replays the schedule of cuts and changes.
 */
const SEED = Number(process.env.BOSUN_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CUT_MS = 12_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const counterOf = (name: unknown) => Number(String(name).replace(/^k/, ''));

interface Known {
  fleet: 'edge' | 'core';
  exists: boolean;
  inactive: boolean;
}

describe('agent stream cut every few seconds', () => {
  const tmp = tempDir('bosun-stream-faults-');
  const procs: Spawned[] = [];
  let proxy: TcpProxy | undefined;
  afterAll(async () => {
    await killAll(procs);
    await proxy?.close();
    tmp.cleanup();
  });

  it('the agent reconnects, resumes, never goes back, and its directory converges exactly', async () => {
    console.log(`stream faults: seed ${SEED} (replay: BOSUN_CHAOS_SEED=${SEED})`);
    const rng = seededRandom(SEED);
    const cutRng = seededRandom(SEED ^ 0x5bd1e995);
    const dbFile = join(tmp.path, 'bosun.db');
    const serve = await startServe({
      BOSUN_DATABASE_URL: `sqlite:${dbFile}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
    });
    procs.push(serve);
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await apiCall(serve.url, method, path, body);
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.text.slice(0, 300)}`);
      return res.body;
    };

    // The fleet: relays with a global counter in info.name, secrets the test knows (until rotated).
    const { pubkey } = keypair();
    let counter = 0;
    const name = () => `k${++counter}`;
    const known = new Map<string, Known>();
    const secrets = new Set<string>();
    const create = async (id: string, fleet: 'edge' | 'core') => {
      const secret = generateSecretKey();
      secrets.add(secret);
      await call('POST', '/v1/relays', {
        id,
        fleet,
        secret,
        host: `${id}.example.com`,
        info: { pubkey, name: name() },
      });
      known.set(id, { fleet, exists: true, inactive: false });
    };
    for (let i = 0; i < 12; i++) await create(`s-${String(i).padStart(2, '0')}`, i < 10 ? 'edge' : 'core');
    const { token } = await call('POST', '/v1/tokens', { role: 'agent', fleet: 'edge' });

    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(serve.url).port) });
    const dir = join(tmp.path, 'zooid');
    const agent = spawnBosun(
      [
        '--server',
        `http://127.0.0.1:${proxy.port}`,
        'agent',
        '--dir',
        dir,
        '--state-file',
        join(tmp.path, 'agent-state.json'),
        '--health',
        '127.0.0.1:0',
        '--log-level',
        'debug',
      ],
      { BOSUN_AGENT_TOKEN: token },
    );
    procs.push(agent);
    const healthUrl = JSON.parse(await agent.waitFor(/"msg":"agent health listening"/)).url as string;
    await agent.waitFor(/"msg":"agent in sync"/);

    // Sample the directory: per relay, the name counter never decreases and a replaced secret never
    // comes back.
    const seen = new Map<string, { counter: number; secrets: string[] }>();
    const violations: string[] = [];
    let samples = 0;
    /** Times the sampler saw a relay's file move to a newer name. */
    let advances = 0;
    const sample = () => {
      for (const f of readdirSync(dir)) {
        if (!f.endsWith('.toml')) continue;
        const id = f.slice(0, -5);
        let doc: Record<string, any>;
        try {
          doc = parse(readFileSync(join(dir, f), 'utf8')) as Record<string, any>;
        } catch (err) {
          // Deleted between readdir and read; a torn file would not parse and is a violation.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          violations.push(`${f}: unreadable: ${(err as Error).message}`);
          continue;
        }
        samples++;
        const n = counterOf(doc.info?.name);
        const s = seen.get(id) ?? { counter: 0, secrets: [] };
        seen.set(id, s);
        if (!(n >= s.counter)) violations.push(`${id}: k${n} after k${s.counter} (older config after newer)`);
        if (n > s.counter) advances++;
        s.counter = Math.max(s.counter, n);
        const secret = String(doc.secret);
        secrets.add(secret);
        if (s.secrets.at(-1) !== secret) {
          if (s.secrets.includes(secret)) {
            violations.push(`${id}: secret ${fingerprint(secret)} came back after it was replaced`);
          }
          s.secrets.push(secret);
        }
      }
    };
    const sampler = setInterval(sample, 30);

    // Cut every connection every 1–3 s: half the time at once, half after a blackhole of 100–400 ms
    // (what the server sent meanwhile is lost, frames arrive torn).
    let cutting = true;
    let cuts = 0;
    const cutter = (async () => {
      const end = Date.now() + CUT_MS;
      while (Date.now() < end) {
        await sleep(1000 + cutRng() * 2000);
        if (cutRng() < 0.5) {
          proxy!.cut();
          await sleep(100 + cutRng() * 300);
        }
        proxy!.reset();
        proxy!.heal();
        cuts++;
      }
      cutting = false;
    })();

    // Meanwhile the client keeps changing the fleet (never through the proxy).
    const stats = { changes: 0, rotations: 0, moves: 0, deletes: 0, creates: 0 };
    let next = 12;
    while (cutting) {
      const ids = [...known].filter(([, s]) => s.exists).map(([id]) => id);
      const id = ids[Math.floor(rng() * ids.length)]!;
      const s = known.get(id)!;
      const roll = rng();
      if (roll < 0.45) {
        await call('PATCH', `/v1/relays/${id}`, { info: { name: name() } });
      } else if (roll < 0.55) {
        await call('PATCH', `/v1/relays/${id}`, {
          host: `${id}-${counter + 1}.example.com`,
          info: { name: name() },
        });
      } else if (roll < 0.67) {
        await call('POST', `/v1/relays/${id}/${s.inactive ? 'activate' : 'deactivate'}`);
        s.inactive = !s.inactive;
      } else if (roll < 0.74) {
        await call('POST', `/v1/relays/${id}/rotate-secret`, { grace_seconds: 3600 });
        stats.rotations++;
      } else if (roll < 0.82) {
        const fleet = s.fleet === 'edge' ? 'core' : 'edge';
        await call('PATCH', `/v1/relays/${id}`, { fleet, info: { name: name() } });
        s.fleet = fleet;
        stats.moves++;
      } else if (roll < 0.9 && ids.length > 6) {
        await call('DELETE', `/v1/relays/${id}`);
        s.exists = false;
        stats.deletes++;
      } else {
        // A new relay, or a deleted one again (its version continues), with a new secret.
        const gone = [...known].filter(([, k]) => !k.exists).map(([g]) => g);
        const again = gone.length > 0 && rng() < 0.5 ? gone[Math.floor(rng() * gone.length)]! : undefined;
        await create(again ?? `s-${String(next++).padStart(2, '0')}`, rng() < 0.8 ? 'edge' : 'core');
        stats.creates++;
      }
      stats.changes++;
      await sleep(20 + rng() * 60);
    }
    await cutter;

    const interruptions = () => agent.output().match(/"msg":"autoconfig: stream interrupted"/g)?.length ?? 0;
    const deltaPuts = () => agent.output().match(/"msg":"autoconfig: delta put"/g)?.length ?? 0;

    /** The directory matches the API: the fleet's live relays, each at its latest name, host, state. */
    const converged = async () => {
      const { relays } = await call('GET', '/v1/relays?fleet=edge&limit=1000');
      const files = readdirSync(dir)
        .filter((f) => f.endsWith('.toml'))
        .map((f) => f.slice(0, -5))
        .sort();
      if (JSON.stringify(files) !== JSON.stringify(relays.map((r: { id: string }) => r.id).sort()))
        return false;
      for (const r of relays) {
        const doc = parse(readFileSync(join(dir, `${r.id}.toml`), 'utf8')) as Record<string, any>;
        const expiring = (doc.expiring ?? []).map((c: { value: string }) => fingerprint(c.value)).sort();
        const want = (r.expiring ?? []).map((c: { fingerprint: string }) => c.fingerprint).sort();
        if (
          doc.info.name !== r.config.info.name ||
          doc.host !== r.config.host ||
          doc.inactive !== r.config.inactive ||
          JSON.stringify(expiring) !== JSON.stringify(want)
        )
          return false;
      }
      return (await fetch(healthUrl)).status === 200;
    };
    const deadline = Date.now() + 25_000;
    while (!(await converged())) {
      if (Date.now() > deadline) {
        throw new Error(
          `seed ${SEED}: the agent's directory did not converge; agent log tail: ${agent.output().slice(-1500)}`,
        );
      }
      await sleep(100);
    }
    clearInterval(sampler);
    sample();
    console.log(
      `stream faults: ${cuts} cuts in ${CUT_MS / 1000} s, the agent saw ${interruptions()} interruptions and resumed with ${deltaPuts()} delta puts; ${JSON.stringify(stats)}; ${samples} file samples, ${advances} newer names seen`,
    );

    expect(violations, `seed ${SEED}`).toEqual([]);
    expect(cuts).toBeGreaterThan(2);
    expect(interruptions(), 'the agent never saw a cut').toBeGreaterThanOrEqual(2);
    expect(deltaPuts(), 'the agent never resumed').toBeGreaterThanOrEqual(2);
    expect(agent.output()).toMatch(/"resumed":true,"msg":"autoconfig: connecting"/);
    expect(stats.changes).toBeGreaterThan(50);
    // Not vacuous: the sampler watched many versions of many relays go by.
    expect(seen.size).toBeGreaterThanOrEqual(10);
    expect(advances).toBeGreaterThan(50);

    // Exactly bosun's record, byte for byte: stop the server (the agent keeps its files) and render
    // every stored relay of the fleet the way the agent writes it.
    serve.child.kill('SIGTERM');
    expect((await serve.exited).code).toBe(0);
    const store = new SqliteStore(dbFile);
    try {
      const relays = await store.listRelays({ fleet: 'edge', limit: 1000 });
      expect(readdirSync(dir).sort()).toEqual(relays.map((r) => `${r.id}.toml`).sort());
      for (const relay of relays) {
        expect(readFileSync(join(dir, `${relay.id}.toml`), 'utf8'), relay.id).toBe(
          relayToml(relayRep(relay, null)),
        );
      }
      // Inactive and deleted relays are handled as usual: inactive ones keep a file saying so.
      for (const [id, s] of known) {
        const present = existsSync(join(dir, `${id}.toml`));
        expect(present, id).toBe(s.exists && s.fleet === 'edge');
        if (present) {
          expect(
            (parse(readFileSync(join(dir, `${id}.toml`), 'utf8')) as { inactive: boolean }).inactive,
          ).toBe(s.inactive);
        }
      }
    } finally {
      await store.close();
    }
    // No secret in any process's output.
    const output = procs.map((p) => p.output()).join('\n');
    for (const secret of secrets) expect(output.includes(secret)).toBe(false);
  }, 60_000);
});
