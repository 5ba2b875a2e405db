import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { expect } from 'vitest';
import type { Activity } from '../../src/domain/activity.js';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import type { Relay } from '../../src/domain/relay.js';
import {
  defaultWorkDir,
  readState,
  relayToml,
  STATE_FILE,
  TEMP_PREFIX,
} from '../../src/pull/agent/agent-files.js';
import { relayRep } from '../../src/pull/server/rep.js';
import { blossomS3FromEnv } from '../../src/push/zooid/body.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/port.js';
import { ADMIN_TOKEN, apiFetch, keypair } from '../support/env.js';
import { seededRandom } from '../support/random.js';
import { type AckedRelay, ackedRelay } from '../support/relays.js';
import { type Spawned, spawnBosun, startServe } from '../support/spawn.js';
import { type CrashFront, startCrashFront } from './crash-front.js';

/**
 * The crash matrix, for any store (crash-matrix.test.ts: SQLite, crash-matrix-postgres.test.ts:
 * PostgreSQL). A seeded workload — creates, updates, (de)activations, deletes of plain relays
 * (`m-*`, fleet `default`), applies of fleet `chaos` (`f-*`) and deletes of its relays (the next
 * apply creates them again) — runs against a real `bosun serve` that is SIGKILLed at a random
 * moment, round after round, with a flaky zooid emulator and two real `bosun agent` processes (one
 * per fleet) that live through every kill and reconnect by themselves. Only bosun is killed.
 *
 * After every kill, through the store port (and the backend's own offline checks):
 * - activity ids: SQLite promises them gap-free; PostgreSQL only increasing, with gaps where a
 *   transaction that drew ids rolled back (a kill mid-commit does that), and visible in increasing
 *   order (pg-store.ts, APPEND_ACTIVITIES). A reader in this process tails the log by cursor like
 *   the observer does: no id may show up below one it already read (it would be skipped for good);
 * - every relay's change activities, in id order, carry versions exactly 1..version (every
 *   committed change has its activity, nothing half-written, per-relay order = log order);
 * - nothing acknowledged is lost: a relay is at least at the version the client saw, and exactly in
 *   the acknowledged state when its last request was acknowledged;
 * - zooid never receives an older config after a newer one (names carry a per-relay counter),
 *   never holds two relays on one host or schema, never sees two requests for a relay at once;
 * - agents (their files sampled all through each round and at each check): per relay the counter
 *   in the file never goes back, a file holds only committed configs of the agent's own fleet.
 * Finally everything converges: zooid holds exactly bosun's record (retries survived the kills),
 * and each agent's directory is exactly its fleet — one file per live relay (inactive ones too,
 * with `inactive = true`; deleted ones removed), byte for byte what the stream's rep makes of the
 * record, and the agent's state file lists exactly the relays' versions.
 *
 * The agents reach bosun through crash-front.ts (one stable URL while bosun gets a new port every
 * round); bosun's `retry:` (BOSUN_STREAM_RETRY, short here) resets their backoff at every stream,
 * so they reconnect after every restart instead of backing off to 30 s. The run checks that they
 * did, or the agent checks would cover little.
 */

export interface CrashBackend {
  /** For messages: 'SQLite', 'PostgreSQL'. */
  name: string;
  /** BOSUN_DATABASE_URL of bosun, and of the store this process checks through. */
  databaseUrl: string;
  /** Added to bosun's environment. */
  env?: Record<string, string>;
  /** Whether the backend promises gap-free activity ids (see above). */
  gapFreeActivityIds: boolean;
  /** Checks only this backend can make while bosun is dead (SQLite: integrity_check); violations. */
  offlineCheck?: () => string[] | Promise<string[]>;
  /** bosun is killed this long after it listens, uniformly in [min, max) ms. Default [30, 330). */
  killWindowMs?: [number, number];
}

export interface CrashOptions {
  seed: number;
  rounds: number;
  /** Scratch directory for the agents' config directories. */
  dir: string;
  /** The test file, for the replay line. */
  file: string;
}

export const chaosSeed = (): number =>
  Number(process.env.BOSUN_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
export const chaosRounds = (): number => Number(process.env.BOSUN_CHAOS_ROUNDS ?? 50);

interface Known {
  /** Monotonic per relay: each request that changes the name carries the next value. */
  counter: number;
  /** Requests sent / the last one answered 2xx (equal: the DB must hold exactly `acked`). */
  sent: number;
  ackedSeq: number;
  acked: AckedRelay | null;
  /** What the client believes, to pick a sensible next request. */
  exists: boolean;
  inactive: boolean;
  busy: boolean;
}

interface AgentRun {
  fleet: string;
  ids: readonly string[];
  dir: string;
  front: CrashFront;
  proc: Spawned;
  /** Per relay, the highest counter seen in its file. */
  seen: Map<string, number>;
}

interface AgentFile {
  text: string;
  counter: number;
  inactive: boolean;
}

const k = (name: unknown) => Number(String(name).replace(/^k/, ''));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (p: Spawned | undefined) => !!p && p.child.exitCode === null && p.child.signalCode === null;

/** The `<id>.toml` files of an agent directory (a file deleted while listing is skipped). */
function readAgentDir(dir: string): Map<string, AgentFile> {
  const out = new Map<string, AgentFile>();
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.toml')) continue;
    let text: string;
    try {
      text = readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const doc = parse(text) as { info?: { name?: unknown }; inactive?: unknown };
    out.set(name.slice(0, -'.toml'.length), {
      text,
      counter: k(doc.info?.name),
      inactive: doc.inactive === true,
    });
  }
  return out;
}

export async function runCrashMatrix(backend: CrashBackend, opts: CrashOptions): Promise<void> {
  const { seed: SEED, rounds: ROUNDS } = opts;
  const tag = `crash matrix (${backend.name})`;
  console.log(
    `${tag}: seed ${SEED}, ${ROUNDS} rounds (replay: BOSUN_CHAOS_SEED=${SEED} BOSUN_CHAOS_ROUNDS=${ROUNDS} npx vitest run ${opts.file})`,
  );
  const rng = seededRandom(SEED);
  const zooidRng = seededRandom(SEED ^ 0x5bd1e995);
  const key = generateSecretKey();
  const env = {
    BOSUN_DATABASE_URL: backend.databaseUrl,
    BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
    BOSUN_SECRET_KEY: key,
    BOSUN_RETRY_BASE_MS: '20',
    BOSUN_RETRY_CAP_MS: '200',
    BOSUN_RETRY_MAX_ATTEMPTS: '1000',
    BOSUN_SYNC_TIMEOUT_MS: '2000',
    BOSUN_SHUTDOWN_GRACE: '1s',
    BOSUN_STREAM_RETRY: '200ms',
    BOSUN_CHORE_RETRY_SWEEPER_INTERVAL: '1s',
    BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
    ...backend.env,
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
  const stats = { requests: 0, acked: 0, failed: 0, kills: 0, applies: 0, samples: 0, idGaps: 0 };
  const statuses: Record<number, number> = {};

  let zooid: ZooidEmulator | undefined;
  let server: (Spawned & { url: string }) | undefined;
  let store: Store | undefined;
  const agents: AgentRun[] = [];
  const fronts: CrashFront[] = [];
  let tailing: Promise<void> | undefined;
  let stopTail = false;
  try {
    zooid = await startZooidEmulator({
      whitelist: [publicKeyOf(key)],
      rng: zooidRng,
      faults: { errorRate: 0.1 },
    });
    Object.assign(env, { ZOOID_API_URL: zooid.url });

    const call = async (url: string, method: string, path: string, body?: unknown) => {
      stats.requests++;
      const res = await apiFetch(url, method, path, body);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
    };

    /** One request on one relay, chosen from what the client believes; records what was acknowledged. */
    const relayOp = async (url: string, id: string, only?: 'DELETE') => {
      const s = known.get(id)!;
      const roll = rng();
      const seq = ++s.sent;
      const name = `k${++s.counter}`;
      let req: [string, string, unknown?];
      if (only === 'DELETE') {
        req = ['DELETE', `/v1/relays/${id}`];
      } else if (!s.exists) {
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
        s.ackedSeq = seq;
        s.acked = ackedRelay(res.body);
        s.exists = !s.acked.deleted;
        s.inactive = s.acked.inactive;
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

    // ---- the activity log, tailed by cursor as the observer reads it ----------------------------
    const tail = { cursor: 0, seen: new Set<number>() };
    const tailLog = async () => {
      while (!stopTail) {
        try {
          const batch = await store!.activitiesAfter({ after: tail.cursor, limit: 1000 });
          for (const a of batch) tail.seen.add(a.id);
          if (batch.length > 0) tail.cursor = batch[batch.length - 1]!.id;
          if (batch.length === 1000) continue;
        } catch (err) {
          violations.push(`tailing the activity log failed: ${(err as Error).message}`);
          return;
        }
        await sleep(10);
      }
    };

    /** The database after a kill, through the store port; returns the relays for the agent checks. */
    const checkDatabase = async (label: string): Promise<Map<string, Relay>> => {
      for (const v of (await backend.offlineCheck?.()) ?? []) violations.push(`${label}: ${v}`);
      // The log and the relays are two reads. On PostgreSQL a statement the killed bosun sent just
      // before it died still runs to its commit (a single-statement write has no COMMIT to lose),
      // and could land between them: read until the log stands still across the relays' read. A
      // change commits its row and its activity together, so an unchanged log means both reads
      // saw the same commits.
      let activities: Activity[] = [];
      let relays: Relay[] = [];
      for (let attempt = 1; ; attempt++) {
        activities = await store!.activitiesAfter({ after: 0, limit: 1_000_000 });
        relays = await store!.listRelays({ limit: 10_000, includeDeleted: true });
        if ((await store!.lastActivityId()) === (activities.at(-1)?.id ?? 0)) break;
        check(attempt < 20, `${label}: the activity log kept growing after bosun was killed`);
        if (attempt >= 20) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      stats.idGaps = activities.filter((a, i) => a.id !== (i === 0 ? 1 : activities[i - 1]!.id + 1)).length;
      if (backend.gapFreeActivityIds) {
        check(
          activities.every((a, i) => a.id === i + 1),
          `${label}: activity ids have a gap`,
        );
      }
      check(
        activities.every((a, i) => i === 0 || a.id > activities[i - 1]!.id),
        `${label}: activity ids do not increase`,
      );
      const skipped = activities.filter((a) => a.id <= tail.cursor && !tail.seen.has(a.id));
      check(
        skipped.length === 0,
        `${label}: activities ${skipped.map((a) => a.id).join(',')} became visible after a reader had passed them (cursor ${tail.cursor}): a cursor reader skips them`,
      );
      for (const relay of relays) {
        const versions = activities
          .filter(
            (a) => a.relayId === relay.id && a.type !== 'resync_relay' && !a.type.endsWith('_relay_sync'),
          )
          .map((a) => a.payload.version as number);
        check(
          versions.length === relay.version && versions.every((v, i) => v === i + 1),
          `${label}: ${relay.id} at version ${relay.version} has change activities ${versions.join(',')}`,
        );
        const s = known.get(relay.id)!;
        if (s.acked) {
          check(
            relay.version >= s.acked.version,
            `${label}: ${relay.id} lost acknowledged v${s.acked.version}`,
          );
          if (s.ackedSeq === s.sent) {
            const name = relay.config.info?.name;
            check(
              (relay.deletedAt !== null) === s.acked.deleted &&
                (s.acked.deleted || (name === s.acked.name && relay.config.inactive === s.acked.inactive)) &&
                (fleetIds.includes(relay.id) || relay.version === s.acked.version),
              `${label}: ${relay.id} is not in its acknowledged state ${JSON.stringify(s.acked)}`,
            );
          }
        }
        // Fleet relays: remember the version seen so a later loss shows.
        if (fleetIds.includes(relay.id) && s.acked && s.ackedSeq === s.sent) s.acked.version = relay.version;
      }
      return new Map(relays.map((r) => [r.id, r]));
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

    /**
     * The agents' files: per relay the counter never goes back (no older config lands after a
     * newer one) and only the agent's fleet shows up; with `committed` (bosun dead), every file
     * holds a config the database has: a counter no higher than the relay's row.
     */
    const sampleAgents = (label: string, committed?: Map<string, Relay>) => {
      stats.samples++;
      for (const a of agents) {
        for (const [id, f] of readAgentDir(a.dir)) {
          check(a.ids.includes(id), `${label}: the ${a.fleet} agent has ${id}.toml, not of its fleet`);
          const last = a.seen.get(id) ?? 0;
          check(
            f.counter >= last,
            `${label}: the ${a.fleet} agent's ${id}.toml went from k${last} to k${f.counter} (an older config after a newer)`,
          );
          a.seen.set(id, Math.max(last, f.counter));
          if (committed) {
            const row = committed.get(id);
            check(
              row !== undefined && f.counter <= k(row.config.info?.name),
              `${label}: the ${a.fleet} agent's ${id}.toml holds k${f.counter}, which the database never committed (row: ${row ? row.config.info?.name : 'none'})`,
            );
          }
        }
      }
    };

    /** For a failure message: what the database and zooid hold for these relays. */
    const explain = async (which: string[]): Promise<string> => {
      const lines = [
        `observer cursor ${await store!.getCursor('observer')}, last activity ${await store!.lastActivityId()}`,
      ];
      for (const id of which) {
        const row = await store!.getRelay(id);
        const { ackedConfig: _, ...sync } = row?.sync ?? ({} as Partial<Relay['sync']>);
        const log = await store!.activitiesAfter({ after: 0, relayId: id, limit: 100_000 });
        lines.push(
          `${id}: v${row?.version} ${row?.config.info?.name} deleted=${row?.deletedAt !== null} sync ${JSON.stringify(sync)}`,
          `  activities …${log
            .slice(-8)
            .map((a) => `${a.id}:${a.type}@${a.payload.version}`)
            .join(' ')}`,
          `  zooid …${zooid!
            .accepted(id)
            .slice(-4)
            .map((c) => `${c.method}:${c.config?.info.name ?? '-'}`)
            .join(' ')}`,
        );
      }
      return lines.join('\n');
    };

    // ---- start: bosun, the store this process checks through, the agents ------------------------
    server = await startServe(env);
    ({ store } = await openStore(backend.databaseUrl, { poolSize: 2 }));
    tailing = tailLog();
    for (const [fleet, fleetMembers] of [
      ['default', ids],
      ['chaos', fleetIds],
    ] as const) {
      const res = await call(server.url, 'POST', '/v1/tokens', {
        role: 'agent',
        fleet,
        name: `chaos-${fleet}`,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const front = await startCrashFront();
      fronts.push(front);
      front.setTarget(server.url);
      const dir = join(opts.dir, `agent-${fleet}`);
      const proc = spawnBosun(['--server', front.url, 'agent', '--dir', dir, '--health', 'off'], {
        BOSUN_AGENT_TOKEN: res.body.token,
      });
      agents.push({ fleet, ids: fleetMembers, dir, front, proc, seen: new Map() });
    }
    await Promise.all(agents.map((a) => a.proc.waitFor(/"msg":"agent in sync"/)));

    const started = Date.now();
    for (let round = 1; round <= ROUNDS; round++) {
      if (round > 1) server = await startServe(env);
      const url = server.url;
      for (const f of fronts) f.setTarget(url);
      const [minKill, maxKill] = backend.killWindowMs ?? [30, 330];
      const killAfterMs = minKill + Math.floor(rng() * (maxKill - minKill));
      let stop = false;
      const worker = async () => {
        while (!stop) {
          const roll = rng();
          if (roll < 0.08) {
            const fleetBusy = fleetIds.some((id) => known.get(id)!.busy);
            if (!fleetBusy) {
              for (const id of fleetIds) known.get(id)!.busy = true;
              await fleetApply(url).catch(() => stats.failed++);
              for (const id of fleetIds) known.get(id)!.busy = false;
              continue;
            }
          } else if (roll < 0.1) {
            // A fleet relay deleted by hand: the next apply creates it again.
            const free = fleetIds.filter((id) => !known.get(id)!.busy && known.get(id)!.exists);
            if (free.length > 0) {
              const id = free[Math.floor(rng() * free.length)]!;
              known.get(id)!.busy = true;
              await relayOp(url, id, 'DELETE').catch(() => stats.failed++);
              known.get(id)!.busy = false;
              continue;
            }
          }
          const free = ids.filter((id) => !known.get(id)!.busy);
          if (free.length === 0) {
            await sleep(1);
            continue;
          }
          const id = free[Math.floor(rng() * free.length)]!;
          known.get(id)!.busy = true;
          await relayOp(url, id).catch(() => stats.failed++);
          known.get(id)!.busy = false;
        }
      };
      const workers = Promise.all(Array.from({ length: 4 }, worker));
      const sampler = (async () => {
        while (!stop) {
          sampleAgents(`round ${round} (live)`);
          await sleep(20);
        }
      })();
      await sleep(killAfterMs);
      // No new request after this; the ones in flight are cut wherever they are.
      stop = true;
      for (const f of fronts) f.setTarget(null);
      server.child.kill('SIGKILL');
      stats.kills++;
      await server.exited;
      await Promise.all([workers, sampler]);
      const committed = await checkDatabase(`round ${round}`);
      checkZooid(`round ${round}`);
      sampleAgents(`round ${round}`, committed);
      if (violations.length > 0) break;
    }
    const agentChanges = agents.map(
      (a) =>
        `${a.fleet}: ${a.front.stats.streams} streams, ${(a.proc.output().match(/"msg":"relay (written|removed)"/g) ?? []).length} file changes`,
    );
    console.log(
      `${tag}: ${stats.kills} kills in ${((Date.now() - started) / 1000).toFixed(1)} s, ${stats.requests} requests (${stats.acked} acknowledged, ${stats.failed} cut by a kill, answers ${JSON.stringify(statuses)}, ${stats.applies} fleet applies); zooid accepted ${[...known.keys()].reduce((n, id) => n + zooid!.accepted(id).length, 0)} changes; agents ${agentChanges.join(', ')}; ${stats.samples} agent samples; ${tail.seen.size} activities tailed, ${stats.idGaps} gaps in their ids`,
    );
    expect(violations, `seed ${SEED}`).toEqual([]);
    for (const a of agents) {
      expect(
        a.front.stats.streams,
        `the ${a.fleet} agent got a stream after only ${a.front.stats.streams} of ${ROUNDS} restarts`,
      ).toBeGreaterThanOrEqual(Math.ceil(ROUNDS / 2));
    }

    // ---- final restart: zooid and the agent directories converge --------------------------------
    server = await startServe(env);
    for (const f of fronts) f.setTarget(server.url);
    const finalUrl = server.url;
    /** Each agent directory holds exactly its fleet's relays as the API shows them, and its state file their versions. */
    const agentsBehind = async (): Promise<string | null> => {
      for (const a of agents) {
        const res = await call(finalUrl, 'GET', `/v1/relays?fleet=${a.fleet}&limit=1000`);
        if (res.status !== 200) return `${a.fleet}: listing answered ${res.status}`;
        const want = new Map<string, any>(res.body.relays.map((r: any) => [r.id, r]));
        const files = readAgentDir(a.dir);
        const have = [...files.keys()].sort().join(',');
        if (have !== [...want.keys()].sort().join(','))
          return `${a.fleet}: files ${have}, relays ${[...want.keys()].sort().join(',')}`;
        for (const [id, f] of files) {
          const r = want.get(id);
          if (f.counter !== k(r.config.info.name) || f.inactive !== r.config.inactive)
            return `${a.fleet}: ${id}.toml holds k${f.counter} inactive=${f.inactive}, bosun ${r.config.info.name} inactive=${r.config.inactive}`;
        }
        const state = await readState(join(defaultWorkDir(a.dir), STATE_FILE));
        const sorted = (o: Record<string, number>) => JSON.stringify(Object.entries(o).sort());
        const versions = Object.fromEntries([...want.values()].map((r) => [r.id, r.version]));
        if (!state || sorted(state.relays) !== sorted(versions))
          return `${a.fleet}: state file ${JSON.stringify(state?.relays)}, versions ${JSON.stringify(versions)}`;
        if (state.managed.join(',') !== [...want.keys()].sort().join(','))
          return `${a.fleet}: state file manages ${state.managed.join(',')}`;
      }
      return null;
    };
    const deadline = Date.now() + 30_000;
    let relays: any[] = [];
    for (;;) {
      relays = [];
      const answers: string[] = [];
      for (const id of known.keys()) {
        const res = await call(finalUrl, 'GET', `/v1/relays/${id}`);
        if (res.status === 200) relays.push(res.body);
        else if (res.status !== 404) answers.push(`GET ${id}: ${res.status}`);
      }
      if (answers.length > 0) throw new Error(`seed ${SEED}: bosun answered ${answers.join(', ')}`);
      const deleted = [...known.keys()].filter((id) => !relays.some((r) => r.id === id));
      const stored = zooid.relays();
      const zooidDone =
        relays.every((r) => r.sync.status === 'synced' && r.sync.synced_version === r.version) &&
        deleted.every((id) => !stored.has(id));
      const behind = zooidDone ? await agentsBehind() : 'zooid first';
      if (zooidDone && behind === null) break;
      if (Date.now() > deadline) {
        const pending = relays
          .filter((r) => r.sync.status !== 'synced' || r.sync.synced_version !== r.version)
          .map((r) => r.id);
        const lingering = deleted.filter((id) => stored.has(id));
        throw new Error(
          `seed ${SEED}: did not converge in 30 s: zooid behind on ${JSON.stringify(pending)}, still holds deleted ${JSON.stringify(lingering)}; agents: ${behind}\n${await explain([...pending, ...lingering])}\nbosun's warnings:\n${server
            .output()
            .split('\n')
            .filter((l) => /"level":(4|5)0/.test(l))
            .slice(-20)
            .join('\n')}`,
        );
      }
      await sleep(100);
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
    sampleAgents('final');
    expect(violations, `seed ${SEED}`).toEqual([]);
    server.child.kill('SIGTERM');
    await server.exited;
    for (const f of fronts) f.setTarget(null);

    // bosun stopped: the files are byte for byte what the stream makes of the record.
    const blossom = blossomS3FromEnv(process.env);
    for (const a of agents) {
      const live = await store.listRelays({ fleet: a.fleet, limit: 10_000 });
      const files = readAgentDir(a.dir);
      expect([...files.keys()].sort(), `${a.fleet} agent (seed ${SEED})`).toEqual(
        live.map((r) => r.id).sort(),
      );
      for (const r of live) {
        expect(files.get(r.id)!.text, `${a.fleet} agent: ${r.id}.toml (seed ${SEED})`).toBe(
          relayToml(relayRep(r, blossom)),
        );
        expect(statSync(join(a.dir, `${r.id}.toml`)).mode & 0o777).toBe(0o600);
      }
      // zooid loads every file in its directory: only relay files there, and no temp file left anywhere.
      expect(readdirSync(a.dir).filter((f) => !f.endsWith('.toml'))).toEqual([]);
      expect(readdirSync(defaultWorkDir(a.dir)).filter((f) => f.startsWith(TEMP_PREFIX))).toEqual([]);
      // The agent lived through every kill: one process, stopped cleanly now.
      expect(alive(a.proc), `${a.fleet} agent exited during the run`).toBe(true);
      a.proc.child.kill('SIGTERM');
      expect((await a.proc.exited).code, a.proc.output().slice(-2000)).toBe(0);
    }
  } finally {
    if (alive(server)) server!.child.kill('SIGKILL');
    for (const a of agents) if (alive(a.proc)) a.proc.child.kill('SIGKILL');
    await Promise.all([server?.exited, ...agents.map((a) => a.proc.exited)]);
    stopTail = true;
    await tailing;
    await Promise.all(fronts.map((f) => f.close()));
    await zooid?.close();
    await store?.close();
  }
}
