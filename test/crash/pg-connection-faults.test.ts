import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { ADMIN_TOKEN, apiFetch, keypair, relayBody, tempDir } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { type Spawned, startServe } from '../support/spawn.js';

type Replica = Spawned & { url: string };

const alive = (r: Replica) => r.child.exitCode === null && r.child.signalCode === null;

/**
 * A write burst over `replicas` until `stop()` turns true: each of `workers` creates relays one
 * after another and updates each a few times (creates commit in an explicit transaction, updates
 * as one autocommit statement). A 503 `storage_unavailable` is sent again; every 2xx is recorded
 * as acknowledged. Anything else (a 500, a cut connection because a replica died) is a failure.
 */
function writeBurst(replicas: Replica[], prefix: string, workers: number, stop: () => boolean) {
  const { pubkey } = keypair();
  const created = new Set<string>();
  /** Per relay, the highest `n<k>` name acknowledged by an update. */
  const updated = new Map<string, number>();
  const failures: string[] = [];
  let unavailable = 0;
  /** When each acknowledgement arrived. */
  const acks: number[] = [];
  const send = async (w: number, method: string, path: string, body: unknown): Promise<number> => {
    let refused = false;
    for (let attempt = 0; ; attempt++) {
      const target = replicas[(w + attempt) % replicas.length]!;
      let res: Response;
      try {
        res = await apiFetch(target.url, method, path, body);
      } catch (err) {
        failures.push(`${method} ${path} on ${target.url}: ${(err as Error).cause ?? err}`);
        return 0;
      }
      const text = await res.text();
      if (res.status === 503) {
        const { error } = JSON.parse(text) as { error: { code: string } };
        if (error.code !== 'storage_unavailable' || !res.headers.get('retry-after')) {
          failures.push(`${method} ${path}: 503 ${text}`);
          return 0;
        }
        unavailable++;
        refused = true;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      // A create refused while its commit went through finds itself when sent again.
      if (refused && method === 'POST' && res.status === 409 && text.includes('id_conflict')) return 201;
      if (res.status >= 300) failures.push(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return res.status;
    }
  };
  const worker = async (w: number) => {
    for (let i = 0; !stop() && failures.length === 0; i++) {
      const id = `${prefix}-${w}-${i}`;
      if ((await send(w, 'POST', '/v1/relays', relayBody(id, pubkey))) !== 201) return;
      created.add(id);
      acks.push(Date.now());
      for (let k = 1; k <= 3 && failures.length === 0; k++) {
        if ((await send(w + k, 'PATCH', `/v1/relays/${id}`, { info: { name: `n${k}` } })) !== 200) return;
        updated.set(id, k);
        acks.push(Date.now());
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    done,
    created,
    updated,
    failures,
    acks,
    stats: () => ({ acknowledged: acks.length, unavailable }),
  };
}

/** Every acknowledged create and update is in the database (a later update may have replaced one). */
async function expectNothingLost(
  client: pg.Client,
  schema: string,
  burst: { created: Set<string>; updated: Map<string, number> },
) {
  const { rows } = await client.query<{ id: string; config: string }>(
    `SELECT id, config FROM "${schema}".relays WHERE id = ANY($1::text[])`,
    [[...burst.created]],
  );
  const stored = new Map(rows.map((r) => [r.id, JSON.parse(r.config) as { info: { name: string } }]));
  expect([...burst.created].filter((id) => !stored.has(id))).toEqual([]);
  const lost = [...burst.updated].filter(([id, k]) => {
    const name = stored.get(id)!.info.name;
    return !name.startsWith('n') || Number(name.slice(1)) < k;
  });
  expect(lost).toEqual([]);
}

/** One write to each replica, first try: the replica works again without a restart. */
async function expectWritable(replicas: Replica[], prefix: string) {
  const { pubkey } = keypair();
  for (const [i, r] of replicas.entries()) {
    const res = await apiFetch(r.url, 'POST', '/v1/relays', relayBody(`${prefix}-after-${i}`, pubkey));
    expect(res.status, `${r.url}: ${await res.text()}`).toBe(201);
  }
}

async function expectConverged(replica: Replica, zooid: ZooidEmulator, count: number, withinMs: number) {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const page = (await (await apiFetch(replica.url, 'GET', '/v1/relays?limit=1000')).json()) as {
      relays: { id: string; version: number; sync: { status: string; synced_version: number } }[];
    };
    const behind = page.relays.filter(
      (r) => r.sync.status !== 'synced' || r.sync.synced_version !== r.version,
    );
    if (page.relays.length === count && behind.length === 0) break;
    if (Date.now() > deadline) {
      throw new Error(
        `${behind.length} of ${page.relays.length} relays not synced: ${JSON.stringify(behind[0])}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(zooid.relays().size).toBe(count);
}

const serveEnv = (url: string, zooid: ZooidEmulator, key: string) => ({
  BOSUN_DATABASE_URL: url,
  BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
  ZOOID_API_URL: zooid.url,
  BOSUN_SECRET_KEY: key,
  BOSUN_LEASE_TTL_MS: '2000',
  BOSUN_PG_POOL_SIZE: '4',
  BOSUN_RETRY_BASE_MS: '20',
  BOSUN_RETRY_CAP_MS: '200',
  BOSUN_LOG_LEVEL: 'info',
});

/**
 * Two `bosun serve` replicas on one schema, under a write burst; every 150 ms all of their
 * PostgreSQL backends (pool, change listener, lease) are terminated — 20 times. Only this test's
 * backends: its URL gives them an application_name of their own (other tests share the server).
 * Both processes stay up, requests caught by a termination answer 503 storage_unavailable with
 * Retry-After, no acknowledged write is lost, and afterwards each replica takes writes at once.
 */
describe.skipIf(!postgresUrl)('PostgreSQL connections dying under bosun', () => {
  const dir = tempDir();
  const schema = postgresUrl ? freshSchema('bosun_pgterm') : null;
  const replicas: Replica[] = [];
  afterAll(async () => {
    for (const r of replicas) if (alive(r)) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await schema?.drop();
    dir.cleanup();
  });

  it('all backends terminated 20 times during a write burst on two replicas: no exit, no lost write', async () => {
    const appName = schema!.schema;
    const url = new URL(schema!.url);
    url.searchParams.set('application_name', appName);
    const key = generateSecretKey();
    const zooid = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
    const env = serveEnv(url.toString(), zooid, key);
    // Together: the migration's advisory lock lets one migrate while the other waits.
    replicas.push(
      ...(await Promise.all(
        ['t0', 't1'].map((id) => startServe({ ...env, BOSUN_REPLICA_ID: id }, dir.path)),
      )),
    );

    let storming = true;
    const burst = writeBurst(replicas, 'term', 6, () => !storming);
    const killer = new pg.Client({ connectionString: postgresUrl! });
    await killer.connect();
    const terminated: number[] = [];
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (let round = 0; round < 20 && burst.failures.length === 0; round++) {
        const { rows } = await killer.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM (
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()) t`,
          [appName],
        );
        terminated.push(rows[0]!.n);
        await new Promise((r) => setTimeout(r, 150));
      }
    } finally {
      storming = false;
      await burst.done;
    }
    expect(replicas.filter((r) => !alive(r)).map((r) => r.output().slice(-1500))).toEqual([]);
    expect(burst.failures.slice(0, 5)).toEqual([]);
    expect(terminated).toHaveLength(20);
    expect(terminated.filter((n) => n > 0).length, `backends per round: ${terminated}`).toBeGreaterThan(15);
    const { acknowledged, unavailable } = burst.stats();
    // Writes went through between terminations, and terminations caught some in flight.
    expect(acknowledged).toBeGreaterThanOrEqual(20);
    expect(unavailable).toBeGreaterThan(0);

    await new Promise((r) => setTimeout(r, 300));
    await expectWritable(replicas, 'term');
    await expectNothingLost(killer, schema!.schema, burst);
    await killer.end();
    // The dedicated connections came back by themselves: one replica holds the lease again and
    // syncs everything; each replica's change listener reconnected.
    await expectConverged(replicas[0]!, zooid, burst.created.size + replicas.length, 20_000);
    for (const r of replicas) expect(r.output()).toMatch(/change listener reconnected/);
    console.log(
      `terminations: ${terminated.reduce((a, b) => a + b, 0)} backends in 20 rounds; ${acknowledged} writes acknowledged, ${unavailable} answers 503`,
    );
    for (const r of replicas) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
    await zooid.close();
  }, 60_000);
});

const PG_BIN = '/usr/local/bin';
const haveBinaries = ['initdb', 'pg_ctl'].every((b) => existsSync(join(PG_BIN, b)));
const required = process.env.CI === 'true' || process.env.BOSUN_REQUIRE_POSTGRES === '1';
if (!haveBinaries && !required) {
  console.warn(`PostgreSQL restart test SKIPPED: no initdb/pg_ctl in ${PG_BIN}`);
}

/**
 * Runs a PostgreSQL binary as the `postgres` OS user when we are root (the server refuses root),
 * without blocking this process: the write burst goes on meanwhile.
 */
async function pgBin(bin: string, args: string[], timeoutMs = 30_000): Promise<void> {
  const cmd = join(PG_BIN, bin);
  const [file, argv] =
    process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  await promisify(execFile)(file, argv, { encoding: 'utf8', timeout: timeoutMs });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A throwaway PostgreSQL cluster of this test's own (the machine's server is shared), restarted
 * with `pg_ctl restart -m fast` under a write burst on two replicas: every connection dies and new
 * ones are refused for a moment. bosun stays up and works again by itself.
 */
describe.skipIf(!haveBinaries && !required)('PostgreSQL restarting under bosun', () => {
  const dir = tempDir();
  const data = mkdtempSync(join(tmpdir(), 'bosun-pgrestart-'));
  const replicas: Replica[] = [];
  let started = false;
  afterAll(async () => {
    for (const r of replicas) if (alive(r)) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    if (started) {
      try {
        await pgBin('pg_ctl', ['stop', '-D', join(data, 'db'), '-m', 'immediate', '-w', '-t', '10'], 15_000);
      } catch {
        // already stopped; the directory goes anyway
      }
    }
    rmSync(data, { recursive: true, force: true });
    dir.cleanup();
  }, 20_000);

  it('pg_ctl restart -m fast during a write burst: bosun recovers by itself', async () => {
    const db = join(data, 'db');
    if (process.getuid?.() === 0) {
      chownSync(data, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), 0);
    }
    chmodSync(data, 0o700);
    await pgBin('initdb', ['-D', db, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    const port = await freePort();
    const start = (action: string, extra: string[] = []) =>
      pgBin('pg_ctl', [
        action,
        '-D',
        db,
        '-w',
        '-t',
        '20',
        '-l',
        join(data, 'log'),
        '-o',
        `-p ${port} -k ${data} -c listen_addresses=127.0.0.1 -c fsync=off`,
        ...extra,
      ]);
    await start('start');
    started = true;

    const key = generateSecretKey();
    const zooid = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
    const env = serveEnv(`postgres://postgres@127.0.0.1:${port}/postgres`, zooid, key);
    replicas.push(
      ...(await Promise.all(
        ['p0', 'p1'].map((id) => startServe({ ...env, BOSUN_REPLICA_ID: id }, dir.path)),
      )),
    );

    let storming = true;
    const burst = writeBurst(replicas, 'rst', 4, () => !storming);
    let restartedAt = 0;
    try {
      await new Promise((r) => setTimeout(r, 500));
      await start('restart', ['-m', 'fast']);
      restartedAt = Date.now();
      // The burst goes on until 10 more writes were acknowledged after the restart.
      const before = burst.stats().acknowledged;
      const deadline = Date.now() + 15_000;
      while (burst.stats().acknowledged < before + 10 && burst.failures.length === 0) {
        if (Date.now() > deadline) throw new Error('no writes acknowledged within 15 s of the restart');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      storming = false;
      await burst.done;
    }
    const recoveredMs = burst.acks.find((t) => t >= restartedAt)! - restartedAt;
    expect(burst.stats().unavailable).toBeGreaterThan(0);
    expect(replicas.filter((r) => !alive(r)).map((r) => r.output().slice(-1500))).toEqual([]);
    expect(burst.failures.slice(0, 5)).toEqual([]);
    await expectWritable(replicas, 'rst');
    const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await client.connect();
    try {
      await expectNothingLost(client, 'public', burst);
    } finally {
      await client.end();
    }
    await expectConverged(replicas[0]!, zooid, burst.created.size + replicas.length, 20_000);
    console.log(
      `restart: ${burst.stats().acknowledged} writes acknowledged, ${burst.stats().unavailable} answers 503; first write acknowledged ${recoveredMs} ms after pg_ctl restart returned`,
    );
    for (const r of replicas) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
    await zooid.close();
  }, 60_000);
});
