import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/zooid/emulator.js';
import { ADMIN_TOKEN, keypair, tempDir } from '../support/env.js';
import { type Spawned, startServe } from '../support/spawn.js';

/**
 * Crash matrix: a seeded workload (creates, updates, (de)activations, deletes, fleet applies)
 * against a real `bosun serve` on SQLite that is SIGKILLed at a random moment, round after round,
 * with a flaky zooid emulator. After every kill, and at the end, the invariants of the promise:
 *
 * - the database is intact and the activity log is gap-free; every relay's change activities carry
 *   versions exactly 1..version (every committed change has its activity, nothing half-written);
 * - nothing acknowledged is lost: a relay is at least at the version the client saw, and exactly in
 *   the acknowledged state when its last request was acknowledged;
 * - zooid never receives an older config after a newer one (names carry a per-relay counter), never
 *   holds two relays on one host or schema, never sees two requests for a relay at once;
 * - finally every relay converges: zooid holds exactly bosun's record (retries survived the kills).
 *
 * BOSUN_CHAOS_SEED replays a run; BOSUN_CHAOS_ROUNDS sets the number of kill/restart rounds (50).
 */
const SEED = Number(process.env.BOSUN_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROUNDS = Number(process.env.BOSUN_CHAOS_ROUNDS ?? 50);

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Known {
  /** Monotonic per relay: each request that changes the name carries the next value. */
  counter: number;
  /** Requests sent / the last one answered 2xx (equal: the DB must hold exactly `acked`). */
  sent: number;
  ackedSeq: number;
  acked: { version: number; deleted: boolean; name: string; inactive: boolean } | null;
  /** What the client believes, to pick a sensible next request. */
  exists: boolean;
  inactive: boolean;
  busy: boolean;
}

const k = (name: unknown) => Number(String(name).replace(/^k/, ''));

describe('crash matrix (SQLite)', () => {
  const dir = tempDir('bosun-chaos-');
  let zooid: ZooidEmulator | undefined;
  let server: (Spawned & { url: string }) | undefined;
  afterAll(async () => {
    server?.child.kill('SIGKILL');
    await zooid?.close();
    dir.cleanup();
  });

  it(`survives ${ROUNDS} SIGKILL/restart rounds with 0 invariant violations`, async () => {
    console.log(
      `crash matrix: seed ${SEED}, ${ROUNDS} rounds (replay: BOSUN_CHAOS_SEED=${SEED} BOSUN_CHAOS_ROUNDS=${ROUNDS})`,
    );
    const rng = mulberry32(SEED);
    const zooidRng = mulberry32(SEED ^ 0x5bd1e995);
    const key = generateSecretKey();
    zooid = await startZooidEmulator({
      whitelist: [publicKeyOf(key)],
      rng: zooidRng,
      faults: { errorRate: 0.1 },
    });
    const dbFile = join(dir.path, 'bosun.db');
    const env = {
      BOSUN_DATABASE_URL: `sqlite:${dbFile}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_RETRY_BASE_MS: '20',
      BOSUN_RETRY_CAP_MS: '200',
      BOSUN_RETRY_MAX_ATTEMPTS: '1000',
      BOSUN_SYNC_TIMEOUT_MS: '2000',
      BOSUN_SHUTDOWN_GRACE: '1s',
      BOSUN_CHORE_RETRY_SWEEPER_INTERVAL: '1s',
      BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
    };
    const { pubkey } = keypair();
    const ids = Array.from({ length: 12 }, (_, i) => `m-${String(i).padStart(2, '0')}`);
    const fleetIds = ['f-0', 'f-1', 'f-2', 'f-3'];
    const known = new Map<string, Known>(
      [...ids, ...fleetIds].map((id) => [
        id,
        { counter: 0, sent: 0, ackedSeq: 0, acked: null, exists: false, inactive: false, busy: false },
      ]),
    );
    const violations: string[] = [];
    const check = (ok: boolean, what: string) => {
      if (!ok) violations.push(what);
    };
    const stats = { requests: 0, acked: 0, failed: 0, kills: 0, applies: 0 };

    const call = async (url: string, method: string, path: string, body?: unknown) => {
      stats.requests++;
      const res = await fetch(url + path, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
    };

    /** One request on one relay, chosen from what the client believes; records what was acknowledged. */
    const relayOp = async (url: string, id: string) => {
      const s = known.get(id)!;
      const roll = rng();
      const seq = ++s.sent;
      const name = `k${++s.counter}`;
      let req: [string, string, unknown?];
      if (!s.exists) {
        req = [
          'POST',
          '/v1/relays',
          { id, host: `${id}.example.com`, info: { pubkey, name }, inactive: false },
        ];
      } else if (roll < 0.6) {
        req = ['PATCH', `/v1/relays/${id}`, { info: { name }, groups: { enabled: rng() < 0.5 } }];
      } else if (roll < 0.85) {
        req = ['PATCH', `/v1/relays/${id}`, { inactive: !s.inactive, info: { name } }];
      } else {
        req = ['DELETE', `/v1/relays/${id}`];
      }
      const res = await call(url, ...req);
      if (res.status >= 500) violations.push(`${req[0]} ${req[1]} answered ${res.status}`);
      if (res.status === 200 || res.status === 201) {
        stats.acked++;
        const r = res.body;
        s.ackedSeq = seq;
        s.acked = {
          version: r.version,
          deleted: !!r.deleted,
          name: r.config.info.name,
          inactive: r.config.inactive,
        };
        s.exists = !r.deleted;
        s.inactive = r.config.inactive;
      } else if (res.status === 404) {
        s.exists = false;
      } else if (res.status === 409) {
        s.exists = true;
      }
    };

    const fleetApply = async (url: string) => {
      const states = fleetIds.map((id) => known.get(id)!);
      const seq = states.map((s) => ++s.sent);
      const names = states.map((s) => `k${++s.counter}`);
      const inactive = rng() < 0.3;
      const body = {
        defaults: { info: { pubkey } },
        relays: fleetIds.map((id, i) => ({
          name: id,
          config: { host: `${id}.example.com`, inactive, info: { pubkey, name: names[i] } },
        })),
      };
      stats.applies++;
      const res = await call(url, 'POST', '/v1/fleets/chaos/apply', body);
      if (res.status >= 500) violations.push(`fleet apply answered ${res.status}`);
      if (res.status === 200) {
        stats.acked++;
        states.forEach((s, i) => {
          s.ackedSeq = seq[i]!;
          // The version comes from the database at the next check; name and state are exact.
          s.acked = { version: s.acked?.version ?? 0, deleted: false, name: names[i]!, inactive };
          s.exists = true;
          s.inactive = inactive;
        });
      }
    };

    /** Offline checks of the database after a kill. */
    const checkDatabase = async (round: number) => {
      const db = new Database(dbFile, { readonly: true });
      check(
        db.pragma('integrity_check', { simple: true }) === 'ok',
        `round ${round}: integrity_check failed`,
      );
      db.close();
      const store = new SqliteStore(dbFile);
      try {
        const activities = await store.activitiesAfter({ after: 0, limit: 1_000_000 });
        check(
          activities.every((a, i) => a.id === i + 1),
          `round ${round}: activity ids have a gap`,
        );
        const relays = await store.listRelays({ limit: 10_000, includeDeleted: true });
        for (const relay of relays) {
          const versions = activities
            .filter(
              (a) => a.relayId === relay.id && a.type !== 'resync_relay' && !a.type.endsWith('_relay_sync'),
            )
            .map((a) => a.payload.version as number);
          check(
            versions.length === relay.version && versions.every((v, i) => v === i + 1),
            `round ${round}: ${relay.id} at version ${relay.version} has change activities ${versions.join(',')}`,
          );
          const s = known.get(relay.id)!;
          if (s.acked) {
            check(
              relay.version >= s.acked.version,
              `round ${round}: ${relay.id} lost acknowledged v${s.acked.version}`,
            );
            if (s.ackedSeq === s.sent) {
              const name = relay.config.info?.name;
              check(
                (relay.deletedAt !== null) === s.acked.deleted &&
                  (s.acked.deleted ||
                    (name === s.acked.name && relay.config.inactive === s.acked.inactive)) &&
                  (fleetIds.includes(relay.id) || relay.version === s.acked.version),
                `round ${round}: ${relay.id} is not in its acknowledged state ${JSON.stringify(s.acked)}`,
              );
            }
          }
          // Fleet relays: remember the version seen so a later loss shows.
          if (fleetIds.includes(relay.id) && s.acked && s.ackedSeq === s.sent)
            s.acked.version = relay.version;
        }
      } finally {
        await store.close();
      }
    };

    /** zooid's history: per relay, the counter in the name never goes back; one relay per host/schema. */
    const checkZooid = (label: string) => {
      for (const id of known.keys()) {
        let last = 0;
        for (const change of zooid!.accepted(id)) {
          if (!change.config) continue;
          const n = k(change.config.info.name);
          check(
            n >= last,
            `${label}: zooid got ${id} name k${n} after k${last} (an older config after a newer)`,
          );
          last = n;
        }
      }
      const stored = [...zooid!.relays().values()];
      check(
        new Set(stored.map((r) => r.host)).size === stored.length,
        `${label}: two zooid relays on one host`,
      );
      check(
        new Set(stored.map((r) => r.schema)).size === stored.length,
        `${label}: two zooid relays on one schema`,
      );
      check(zooid!.maxConcurrentPerRelay() <= 1, `${label}: two requests for one relay in flight at once`);
    };

    const started = Date.now();
    for (let round = 1; round <= ROUNDS; round++) {
      server = await startServe(env);
      const url = server.url;
      const killAfterMs = 30 + Math.floor(rng() * 300);
      let stop = false;
      const worker = async () => {
        while (!stop) {
          if (rng() < 0.08) {
            const fleetBusy = fleetIds.some((id) => known.get(id)!.busy);
            if (!fleetBusy) {
              for (const id of fleetIds) known.get(id)!.busy = true;
              await fleetApply(url).catch(() => stats.failed++);
              for (const id of fleetIds) known.get(id)!.busy = false;
              continue;
            }
          }
          const free = ids.filter((id) => !known.get(id)!.busy);
          if (free.length === 0) {
            await new Promise((r) => setTimeout(r, 1));
            continue;
          }
          const id = free[Math.floor(rng() * free.length)]!;
          known.get(id)!.busy = true;
          await relayOp(url, id).catch(() => stats.failed++);
          known.get(id)!.busy = false;
        }
      };
      const workers = Promise.all(Array.from({ length: 4 }, worker));
      await new Promise((r) => setTimeout(r, killAfterMs));
      server.child.kill('SIGKILL');
      stats.kills++;
      await server.exited;
      stop = true;
      await workers;
      await checkDatabase(round);
      checkZooid(`round ${round}`);
      if (violations.length > 0) break;
    }
    console.log(
      `crash matrix: ${stats.kills} kills in ${((Date.now() - started) / 1000).toFixed(1)} s, ${stats.requests} requests (${stats.acked} acknowledged, ${stats.applies} fleet applies); zooid accepted ${[...known.keys()].reduce((n, id) => n + zooid!.accepted(id).length, 0)} changes`,
    );
    expect(violations, `seed ${SEED}`).toEqual([]);

    // Final restart: everything converges in zooid, retries included.
    server = await startServe(env);
    const deadline = Date.now() + 30_000;
    let relays: any[] = [];
    for (;;) {
      relays = [];
      for (const id of known.keys()) {
        const res = await call(server.url, 'GET', `/v1/relays/${id}`);
        if (res.status === 200) relays.push(res.body);
      }
      const deleted = [...known.keys()].filter((id) => !relays.some((r) => r.id === id));
      const stored = zooid.relays();
      if (
        relays.every((r) => r.sync.status === 'synced' && r.sync.synced_version === r.version) &&
        deleted.every((id) => !stored.has(id))
      )
        break;
      if (Date.now() > deadline) {
        throw new Error(
          `seed ${SEED}: did not converge in 30 s: ${JSON.stringify(relays.filter((r) => r.sync.status !== 'synced').map((r) => [r.id, r.sync]))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const stored = zooid.relays();
    for (const r of relays) {
      const z = stored.get(r.id);
      expect(z, `${r.id} (seed ${SEED})`).toBeDefined();
      expect({ name: z!.info.name, inactive: z!.inactive, host: z!.host, groups: z!.groups.enabled }).toEqual(
        {
          name: r.config.info.name,
          inactive: r.config.inactive,
          host: r.config.host,
          groups: r.config.groups.enabled,
        },
      );
    }
    expect(stored.size).toBe(relays.length);
    checkZooid('final');
    expect(violations, `seed ${SEED}`).toEqual([]);
    server.child.kill('SIGTERM');
    await server.exited;
  }, 240_000);
});
