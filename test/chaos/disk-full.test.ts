import { execFileSync } from 'node:child_process';
import {
  closeSync,
  fstatSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ADMIN_TOKEN, apiCall, keypair } from '../support/env.js';
import { seededRandom } from '../support/random.js';
import { type AckedRelay, ackedRelay } from '../support/relays.js';
import { type Spawned, startServe } from '../support/spawn.js';

/**
 * Disk full under the SQLite file: a real `bosun serve` with push sync on a small tmpfs, which a
 * filler file then fills while a client keeps writing through the API (creates, updates,
 * (de)activations, deletes).
 *
 * - clear error: every refused write is `503 {"error":{"code":"storage_full",…}}` with Retry-After,
 *   never a 500 or a stack trace; reads keep working; the process stays up (`/healthz` 200) and
 *   `/readyz` names the condition; the background workers (push sync recording its outcomes) log
 *   and retry at their pace, they neither crash nor spin;
 * - recovers when space returns: once the filler is deleted the next write succeeds, without a
 *   restart, and every relay converges in zooid;
 * - no corruption: afterwards `integrity_check` is ok, the activity log has no gap, every relay's
 *   change activities carry versions exactly 1..version, and the database holds exactly what was
 *   acknowledged (a refused write changed nothing).
 *
 * Needs root (mount -t tmpfs); skipped with the reason otherwise. BOSUN_CHAOS_SEED replays a run.
 */
const SEED = Number(process.env.BOSUN_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FS_SIZE = '4m';
/** Space given back after filling, so that some writes succeed before the disk is full. */
const HEADROOM = 320 * 1024;

const mount = (dir: string) => execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${FS_SIZE}`, 'tmpfs', dir]);
const umount = (dir: string) => {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
};

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
function cannotMount(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux tmpfs (this is ${process.platform})`;
  const dir = mkdtempSync(join(tmpdir(), 'bosun-mount-probe-'));
  try {
    mount(dir);
    umount(dir);
    return undefined;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return `cannot mount a tmpfs (needs root): ${(e.stderr?.toString() || e.message).trim().split('\n')[0]}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const skipReason = cannotMount();
if (skipReason) console.log(`disk-full test skipped: ${skipReason}`);

/** bosun's JSON log lines. */
const logLines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string; [field: string]: unknown });

interface Known {
  counter: number;
  exists: boolean;
  inactive: boolean;
  /** The last acknowledged state; every request after it was refused, so the database holds this. */
  acked: AckedRelay | null;
}

describe('disk full under the SQLite file', () => {
  let dir: string | undefined;
  let mounted = false;
  let serve: (Spawned & { url: string }) | undefined;
  let zooid: ZooidEmulator | undefined;
  afterAll(async () => {
    if (serve && serve.child.exitCode === null && serve.child.signalCode === null) {
      serve.child.kill('SIGKILL');
      await serve.exited;
    }
    await zooid?.close();
    if (dir) {
      if (mounted) umount(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(skipReason !== undefined)(
    'writes get 503 storage_full, nothing is corrupted, and bosun recovers when space returns',
    async () => {
      console.log(`disk-full: seed ${SEED} (replay: BOSUN_CHAOS_SEED=${SEED})`);
      const rng = seededRandom(SEED);
      dir = mkdtempSync(join(tmpdir(), 'bosun-disk-full-'));
      mount(dir);
      mounted = true;
      const dbFile = join(dir, 'bosun.db');
      const key = generateSecretKey();
      zooid = await startZooidEmulator({ whitelist: [publicKeyOf(key)] });
      serve = await startServe({
        BOSUN_DATABASE_URL: `sqlite:${dbFile}`,
        BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
        ZOOID_API_URL: zooid.url,
        BOSUN_SECRET_KEY: key,
        BOSUN_RETRY_BASE_MS: '50',
        BOSUN_RETRY_CAP_MS: '500',
        BOSUN_RETRY_MAX_ATTEMPTS: '1000',
        BOSUN_CHORE_RETRY_SWEEPER_INTERVAL: '1s',
        BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
        BOSUN_SHUTDOWN_GRACE: '1s',
      });
      const url = serve.url;
      const call = (method: string, path: string, body?: unknown) => apiCall(url, method, path, body);

      const { pubkey } = keypair();
      const known = new Map<string, Known>();
      let created = 0;
      const stats = { acked: 0, refused: 0 };
      const problems: string[] = [];
      // Large enough that a few writes fill the headroom quickly.
      const description = 'd'.repeat(2000);

      /** One request chosen from what the client knows; records it if acknowledged. */
      const step = async (): Promise<'acked' | 'refused'> => {
        const live = [...known].filter(([, s]) => s.exists);
        const roll = rng();
        let id: string;
        let req: [string, string, unknown?];
        if (live.length < 4 || roll < 0.15) {
          id = `r-${String(created++).padStart(3, '0')}`;
          known.set(id, { counter: 0, exists: false, inactive: false, acked: null });
          const name = `k${++known.get(id)!.counter}`;
          req = [
            'POST',
            '/v1/relays',
            { id, host: `${id}.example.com`, info: { pubkey, name, description } },
          ];
        } else {
          [id] = live[Math.floor(rng() * live.length)]!;
          const s = known.get(id)!;
          const name = `k${++s.counter}`;
          if (roll < 0.7) {
            req = ['PATCH', `/v1/relays/${id}`, { info: { name, description: `${description}${name}` } }];
          } else if (roll < 0.88) {
            req = ['PATCH', `/v1/relays/${id}`, { inactive: !s.inactive, info: { name } }];
          } else {
            req = ['DELETE', `/v1/relays/${id}`];
          }
        }
        const res = await call(...req);
        const s = known.get(id)!;
        if (res.status === 200 || res.status === 201) {
          stats.acked++;
          s.acked = ackedRelay(res.body);
          s.exists = !s.acked.deleted;
          s.inactive = s.acked.inactive;
          return 'acked';
        }
        // The only acceptable refusal: a clear storage_full error, no internals.
        stats.refused++;
        const error = res.body?.error;
        if (
          res.status !== 503 ||
          error?.code !== 'storage_full' ||
          !/disk is full/.test(error?.message) ||
          Object.keys(res.body).join() !== 'error' ||
          Object.keys(error).sort().join() !== 'code,message' ||
          /SqliteError|\bat .*\(|\.js:\d+/.test(res.text) ||
          res.headers.get('retry-after') === null
        ) {
          problems.push(`${req[0]} ${req[1]} answered ${res.status} ${res.text.slice(0, 300)}`);
        }
        // A create refused: the relay does not exist.
        return 'refused';
      };

      const relaysIn = async () =>
        ((await call('GET', '/v1/relays?limit=1000')).body.relays as any[]).filter((r) => known.has(r.id));
      /** Every live relay synced at its version with its name in zooid; deleted relays gone from zooid. */
      const converged = async () => {
        const relays = await relaysIn();
        const stored = zooid!.relays();
        return (
          relays.every(
            (r) =>
              r.sync.status === 'synced' &&
              r.sync.synced_version === r.version &&
              stored.get(r.id)?.info.name === r.config.info.name &&
              stored.get(r.id)?.inactive === r.config.inactive,
          ) && [...known].every(([id, s]) => s.exists || !stored.has(id))
        );
      };
      const until = async (cond: () => Promise<boolean>, what: string, timeoutMs = 15_000) => {
        const deadline = Date.now() + timeoutMs;
        while (!(await cond())) {
          if (Date.now() > deadline) throw new Error(`seed ${SEED}: timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };

      // A fleet of relays, synced to zooid.
      while (created < 8) expect(await step()).toBe('acked');
      await until(converged, 'the initial sync');

      // Fill the filesystem, then give a little back: the first writes succeed, then the disk is full.
      const filler = join(dir, 'filler');
      const fd = openSync(filler, 'w');
      for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
        const chunk = Buffer.alloc(size, 0x5a);
        try {
          for (;;) writeSync(fd, chunk);
        } catch (err) {
          expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
        }
      }
      ftruncateSync(fd, Math.max(0, fstatSync(fd).size - HEADROOM));
      closeSync(fd);

      const before = { ...stats };
      let refusedInARow = 0;
      for (let i = 0; i < 400 && refusedInARow < 12; i++) {
        refusedInARow = (await step()) === 'refused' ? refusedInARow + 1 : 0;
      }
      console.log(
        `disk-full: with the disk filling, ${stats.acked - before.acked} writes acknowledged, then ${stats.refused - before.refused} refused`,
      );
      expect(problems, `seed ${SEED}`).toEqual([]);
      expect(refusedInARow, 'the disk never got full').toBe(12);
      expect(stats.acked - before.acked, 'the headroom took no write').toBeGreaterThan(0);

      // Up, readable, and saying what is wrong.
      expect(serve.child.exitCode).toBeNull();
      expect((await call('GET', '/healthz')).status).toBe(200);
      const ready = await call('GET', '/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body.checks.database).toMatch(/^disk full since \S+ \(SQLITE_FULL\)/);
      const listed = await relaysIn();
      expect(listed.map((r) => r.id).sort()).toEqual(
        [...known]
          .filter(([, s]) => s.exists)
          .map(([id]) => id)
          .sort(),
      );
      for (const r of listed) expect(r.config.info.name).toBe(known.get(r.id)!.acked!.name);

      // The workers meanwhile: push sync cannot record its outcomes. They retry at their pace.
      const mark = serve.output().length;
      await new Promise((r) => setTimeout(r, 2000));
      expect(serve.child.exitCode).toBeNull();
      const lines = logLines(serve.output().slice(mark));
      const counts = new Map<string, number>();
      for (const l of lines) counts.set(l.msg, (counts.get(l.msg) ?? 0) + 1);
      console.log(`disk-full: log lines in 2 s while full: ${JSON.stringify(Object.fromEntries(counts))}`);
      // Internal retries back off per relay from 1 s (≤ 20 relays here), plus chores: a trickle, not a spin.
      expect(lines.length).toBeLessThan(150);
      expect(lines.filter((l) => l.level >= 60)).toEqual([]);

      // Space returns: the next writes succeed, no restart.
      unlinkSync(filler);
      for (let i = 0; i < 15; i++)
        expect(await step(), `seed ${SEED}: write ${i} after freeing`).toBe('acked');
      expect((await call('GET', '/readyz')).body.checks.database).toBe('ok');
      await until(converged, 'push sync to catch up after the disk was freed');

      // A line when storage failed and one when it came back (near full, small writes may still fit
      // between refused ones: the condition can flap, every episode ends); no internal errors.
      const log = logLines(serve.output());
      const transitions = log
        .map((l) => (l.msg.startsWith('database disk full:') ? 'full' : l.msg))
        .filter((msg) => msg === 'full' || msg === 'database storage writable again');
      expect(transitions.length).toBeGreaterThanOrEqual(2);
      expect(transitions).toEqual(
        Array.from({ length: transitions.length }, (_, i) =>
          i % 2 === 0 ? 'full' : 'database storage writable again',
        ),
      );
      expect(log.filter((l) => l.msg === 'request failed')).toEqual([]);
      const refusals = log.filter((l) => l.msg === 'request refused');
      expect(refusals.length).toBe(stats.refused);
      expect(refusals.every((l) => l.code === 'storage_full' && l.driverCode === 'SQLITE_FULL')).toBe(true);

      serve.child.kill('SIGTERM');
      expect(await serve.exited).toEqual({ code: 0, signal: null });

      // No corruption; exactly what was acknowledged.
      const db = new Database(dbFile, { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
      db.close();
      const store = new SqliteStore(dbFile);
      try {
        const activities = await store.activitiesAfter({ after: 0, limit: 1_000_000 });
        expect(activities.length).toBeGreaterThan(0);
        expect(activities.every((a, i) => a.id === i + 1)).toBe(true);
        const relays = await store.listRelays({ limit: 10_000, includeDeleted: true });
        expect(relays.map((r) => r.id).sort()).toEqual(
          [...known.keys()].filter((id) => known.get(id)!.acked).sort(),
        );
        for (const relay of relays) {
          const versions = activities
            .filter(
              (a) => a.relayId === relay.id && a.type !== 'resync_relay' && !a.type.endsWith('_relay_sync'),
            )
            .map((a) => a.payload.version as number);
          expect(versions, relay.id).toEqual(Array.from({ length: relay.version }, (_, i) => i + 1));
          const acked = known.get(relay.id)!.acked!;
          expect(
            {
              version: relay.version,
              deleted: relay.deletedAt !== null,
              name: relay.config.info.name,
              inactive: relay.config.inactive,
            },
            `${relay.id} (seed ${SEED})`,
          ).toEqual(acked);
        }
      } finally {
        await store.close();
      }
    },
    60_000,
  );
});
