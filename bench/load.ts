/**
 * bench/load: a real `bosun serve` holding 10,000 relays and 1,000 agent streams takes sustained
 * relay updates over its HTTP API, beside a floor (a minimal server doing only each update's
 * irreducible work) under the same load, and a bare node:http server answering the same client with
 * JSON of the same size, all measured in the same run.
 *
 *   npm run bench:load [-- --relays 10000 --agents 1000 --fleets 100 --duration 20 --concurrency 8
 *                         --push noop|emulator|off --seed fleet|post --log-level info
 *                         --postgres [postgres://postgres@127.0.0.1:5432/test] --scale --no-floor]
 *
 * Processes (all on loopback): bosun (bin/bosun.js from dist/, rebuilt first when older than src/;
 * SQLite in a temp dir; its log, at bosun's default level info, to a file there); the agents (one
 * process holding every stream: raw HTTP/1.1 SSE, bench/support/sse.ts); the zooid that push sync
 * targets; and this orchestrator, which is also the HTTP client.
 *
 * 1. Seed: `--relays` relays in `--fleets` fleets (relay i in fleet i mod fleets), one
 *    `POST /v1/fleets/:name/apply` per fleet (`--seed post`: one `POST /v1/relays` per relay, 8 in
 *    flight); push sync creates each in zooid, waited for (≤ 60 s; above 10,000 relays
 *    ≤ 20 ms per relay) so the load starts steady.
 * 2. Agents: one agent token per agent (`POST /v1/tokens`), agent j on fleet j mod fleets; every
 *    stream open and its put received.
 * 3. Load: `--concurrency` keep-alive clients send `PATCH /v1/relays/:id` (a random relay, a new
 *    `info.name` each) back to back for `--duration` seconds. Per request: latency and status. Per
 *    commit: when each agent of the relay's fleet got a patch at that version or later (versions
 *    identify changes on the stream, docs/stream-protocol.md §4), and when zooid got the PATCH
 *    carrying it. Bosun's RSS (/proc VmRSS) and CPU are sampled throughout.
 * 4. Settle: every delivery awaited (≤ 15 s), push sync's backlog drained (≤ 30 s), all stopped.
 * 5. Floor (single SQLite runs only: not with --scale, --postgres, --push emulator or --no-floor):
 *    steps 2–4 again, with fresh agents and a fresh zooid of the same kind, against
 *    bench/support/floor-server.ts, seeded from bosun's database (the same relays, fleets and
 *    bytes). Per PATCH it only parses the JSON, commits one SQLite transaction (relay row + activity
 *    row, bosun's pragmas), writes one patch frame to each stream of the fleet, answers JSON of
 *    bosun's response size, then signs one NIP-98 header on bosun's own signer pool (from dist/)
 *    and sends one PATCH to zooid through an undici keep-alive Pool. Its figures sit beside bosun's,
 *    with issue 19's targets checked against it: a target the floor misses is out of reach of any
 *    implementation of these parts on this machine. Its CPU is read from /proc as bosun's is.
 * 6. Baseline: the same client, concurrency and request against a bare node:http server that
 *    parses the JSON body and answers JSON of bosun's response size, for 5 s: raw loopback req/s.
 *
 * Push sync target (`--push`): `noop` (default) answers 2xx at once and checks nothing, as in
 * bench/sync: in production zooid runs on other machines, so its CPU should not be taken from
 * bosun's two cores here. `emulator` is src/push/zooid/emulator.ts (NIP-98 verified, configs stored):
 * faithful, but every write sorts all stored ids to check uniqueness (O(n log n) per request), so
 * at 10,000 relays its own cost weighs on the figures. `off`: pull sync only.
 *
 * Bounded: ≤ 20,000 relays (≤ 100,000 with `--one-off`), ≤ 5,000 agents, ≤ 120 s of load, a hard limit of duration + 240 s (+ the longer
 * catch-up wait above 10,000 relays; + duration + 120 s with the floor leg);
 * loopback only; every process and socket is closed at the end. Exits 1 on any error (non-2xx,
 * transport error, stream refused or dropped, delivery missing, sync failure, error log line; in
 * the floor leg too, there with a failed push to zooid as the sync failure).
 * `--postgres [url]`: the same load on SQLite, then with bosun's database on PostgreSQL (default
 * postgres://postgres@127.0.0.1:5432/test, a scratch schema dropped after), and their ratio; with --scale,
 * both runs on PostgreSQL. `--scale`: the same load (same fleets, agents, duration) at 2,000 and
 * then 20,000 relays in one invocation, with the ratio of the two (does cost grow with the fleet?).
 *
 * BENCH_PROF=bosun (or BENCH_PROF_DIR=<dir>) writes a CPU profile of the bosun process to
 * BENCH_PROF_DIR (default <tmpdir>/bprof); with --scale, one per run. BENCH_PROF=floor writes one
 * of the floor process instead (the same directory). BENCH_NODE_ARGS: more node
 * arguments for bosun (e.g. `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=/tmp/snaps` for a heap
 * snapshot on `kill -USR2`).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import { type BosunServe, cpuOf, ensureDist, scrapeMetrics, startBosunServe } from './support/bosun.js';
import { arg, Child, now, postgresArg, progressWaiter, quantiles, serve, sleep } from './support/child.js';
import { openSse, type SseStream, takeEvent } from './support/sse.js';

const SELF = fileURLToPath(import.meta.url);
const MODE = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 'main';

// ---- HTTP client (the load generator, also used against the baseline) --------------------------

interface HttpResult {
  status: number;
  body: string;
}

function httpRequest(
  agent: Agent,
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          ...headers,
          ...(body !== undefined
            ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface HammerResult {
  ok: number;
  non2xx: number;
  statuses: Record<string, number>;
  transport: number;
  latencies: number[];
  responseBytes: number;
  seconds: number;
}

/**
 * `concurrency` clients send PATCH /v1/relays/r<random> back to back until `seconds` have passed;
 * `onOk(seq, relay, body, t0)` for each 2xx.
 */
async function hammer(o: {
  port: number;
  auth: string;
  seconds: number;
  concurrency: number;
  relays: number;
  onOk?: (seq: number, relay: number, body: string, t0: number) => void;
}): Promise<HammerResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency });
  const r: HammerResult = {
    ok: 0,
    non2xx: 0,
    statuses: {},
    transport: 0,
    latencies: [],
    responseBytes: 0,
    seconds: 0,
  };
  let seq = 0;
  const started = now();
  const end = started + o.seconds * 1000;
  const worker = async () => {
    while (now() < end) {
      const k = seq++;
      const relay = Math.floor(Math.random() * o.relays);
      const body = `{"info":{"name":"load-${k}"}}`;
      const t0 = now();
      try {
        const res = await httpRequest(
          agent,
          o.port,
          'PATCH',
          `/v1/relays/r${relay}`,
          { authorization: o.auth },
          body,
        );
        r.latencies.push(now() - t0);
        if (res.status >= 200 && res.status < 300) {
          r.ok++;
          r.responseBytes += res.body.length;
          o.onOk?.(k, relay, res.body, t0);
        } else {
          r.non2xx++;
          r.statuses[res.status] = (r.statuses[res.status] ?? 0) + 1;
        }
      } catch {
        r.transport++;
        await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  r.seconds = (now() - started) / 1000;
  agent.destroy();
  return r;
}

/**
 * The load of step 3 (bosun's, and the floor's): each answer's committed version appended to
 * `commits` as (relay, version, t0), and each request's t0 by its sequence number.
 */
async function hammerCommits(
  o: Omit<Parameters<typeof hammer>[0], 'onOk'>,
  commits: number[],
): Promise<{ load: HammerResult; t0BySeq: Array<number | null>; unparsed: number }> {
  const t0BySeq: Array<number | null> = [];
  let unparsed = 0;
  const load = await hammer({
    ...o,
    onOk: (seq, relay, body, t0) => {
      const m = /"version":(\d+)/.exec(body);
      if (!m) {
        unparsed++;
        return;
      }
      commits.push(relay, Number(m[1]), t0);
      t0BySeq[seq] = t0;
    },
  });
  return { load, t0BySeq, unparsed };
}

// ---- child: the agents (every stream in one process) --------------------------------------------

const PATCH_RE = /^\{"path":"relays\/([^"]+)","data":\{"id":"[^"]*","version":(\d+)/;

interface AgentConn {
  sse: SseStream;
  fleet: number;
  /** relay id -> [version, arrival, version, arrival, …] in arrival (= version) order */
  arrivals: Map<string, number[]>;
}

async function agentsChild(): Promise<void> {
  const conns: AgentConn[] = [];
  let puts = 0;
  let ended = 0; // closed, or answered other than 200, before the end
  let recording = false;
  let closing = false;
  let patches = 0;
  let otherEvents = 0;
  const { progress, until } = progressWaiter('agents');

  serve({
    /** Opens one stream per token and waits for every put. */
    connect: async (msg) => {
      const port = Number(msg.port);
      const tokens = msg.tokens as string[];
      const fleets = msg.fleets as number[];
      const t0 = now();
      for (let j = 0; j < tokens.length; j++) {
        const c: AgentConn = { sse: undefined!, fleet: fleets[j]!, arrivals: new Map() };
        c.sse = openSse({
          port,
          token: tokens[j]!,
          onPut: () => {
            puts++;
            progress();
          },
          onData: (s) => {
            const at = now();
            for (let ev = takeEvent(s); ev; ev = takeEvent(s)) {
              const m = ev.event === 'patch' ? PATCH_RE.exec(ev.data) : null;
              if (!m) {
                otherEvents++;
                continue;
              }
              patches++;
              if (!recording) continue;
              const list = c.arrivals.get(m[1]!);
              if (list) list.push(Number(m[2]), at);
              else c.arrivals.set(m[1]!, [Number(m[2]), at]);
            }
          },
          onClose: () => {
            if (!closing) ended++;
            progress();
          },
        });
        conns.push(c);
      }
      await until(() => puts + ended >= conns.length, 90_000, 'every put');
      const putBytes = conns.reduce((n, c) => n + c.sse.putBytes, 0);
      const refused = conns.filter((c) => c.sse.status !== 200).map((c) => c.sse.status);
      return { ms: now() - t0, puts, ended, putBytes, refused: refused.slice(0, 5) };
    },
    record: () => {
      recording = true;
      for (const c of conns) c.arrivals.clear();
      return { cpu: process.cpuUsage() };
    },
    /**
     * Waits (≤ timeoutMs) until every agent has each relay at its last committed version, then
     * matches every commit [relay, version, t0] to the first arrival at that version or later.
     */
    settle: async (msg) => {
      const commits = msg.commits as number[];
      const fleetCount = Number(msg.fleets);
      const byFleet: AgentConn[][] = Array.from({ length: fleetCount }, () => []);
      for (const c of conns) byFleet[c.fleet]!.push(c);
      const last = new Map<number, number>();
      for (let i = 0; i < commits.length; i += 3) {
        last.set(commits[i]!, Math.max(last.get(commits[i]!) ?? 0, commits[i + 1]!));
      }
      const pending = () => {
        let n = 0;
        for (const [relay, version] of last) {
          for (const c of byFleet[relay % fleetCount]!) {
            const list = c.arrivals.get(`r${relay}`);
            if (!list || list[list.length - 2]! < version) n++;
          }
        }
        return n;
      };
      const waitStart = now();
      while (pending() > 0 && now() - waitStart < Number(msg.timeoutMs)) await sleep(100);
      const cpu = process.cpuUsage();
      const each: number[] = [];
      const lastOfCommit: number[] = [];
      let missing = 0;
      let expected = 0;
      for (let i = 0; i < commits.length; i += 3) {
        const relay = commits[i]!;
        const version = commits[i + 1]!;
        const t0 = commits[i + 2]!;
        let worst = 0;
        let complete = true;
        for (const c of byFleet[relay % fleetCount]!) {
          expected++;
          const list = c.arrivals.get(`r${relay}`) ?? [];
          let at: number | undefined;
          for (let k = 0; k < list.length; k += 2) {
            if (list[k]! >= version) {
              at = list[k + 1]!;
              break;
            }
          }
          if (at === undefined) {
            missing++;
            complete = false;
            continue;
          }
          each.push(at - t0);
          worst = Math.max(worst, at - t0);
        }
        if (complete && byFleet[relay % fleetCount]!.length > 0) lastOfCommit.push(worst);
      }
      recording = false;
      return {
        cpu,
        expected,
        missing,
        patches,
        otherEvents,
        ended,
        open: conns.filter((c) => !c.sse.closed).length,
        each: quantiles(each, [50, 95, 99, 100]),
        every: quantiles(lastOfCommit, [50, 99]),
      };
    },
    close: () => {
      closing = true;
      for (const c of conns) c.sse.socket.destroy();
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

// ---- child: the zooid that push sync targets ----------------------------------------------------

async function zooidChild(): Promise<void> {
  let server: Server | undefined;
  let close: () => Promise<void> = async () => {};
  let recording = false;
  const counts: Record<string, number> = {};
  /** [seq, arrival, …] of PATCHes carrying a `load-<seq>` name, while recording */
  const arrivals: number[] = [];

  serve({
    start: async (msg) => {
      if (msg.kind === 'emulator') {
        const { startZooidEmulator } = await import('../src/push/zooid/emulator.js');
        const emulator = await startZooidEmulator({ whitelist: [String(msg.pubkey)], record: false });
        close = () => emulator.close();
        return { url: emulator.url };
      }
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const method = req.method ?? '?';
          counts[method] = (counts[method] ?? 0) + 1;
          if (recording && method === 'PATCH') {
            const m = /"name":"load-(\d+)"/.exec(Buffer.concat(chunks).toString());
            if (m) arrivals.push(Number(m[1]), now());
          }
          res.writeHead(method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
          res.end('{"message":"ok"}\n');
        });
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
      close = () => new Promise((r) => server!.close(() => r()));
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    },
    record: () => {
      recording = true;
      arrivals.length = 0;
      return { cpu: process.cpuUsage() };
    },
    /** Commit → PATCH at zooid, for each commit whose own change zooid received (by its seq). */
    report: (msg) => {
      recording = false;
      const t0 = msg.t0 as Array<number | null>;
      const seen = new Set<number>();
      const lat: number[] = [];
      for (let i = 0; i < arrivals.length; i += 2) {
        const seq = arrivals[i]!;
        const sent = t0[seq];
        if (seen.has(seq) || sent === null || sent === undefined) continue;
        seen.add(seq);
        lat.push(arrivals[i + 1]! - sent);
      }
      return {
        cpu: process.cpuUsage(),
        counts,
        received: seen.size,
        lat: quantiles(lat, [50, 99, 100]),
      };
    },
    close: async () => {
      server?.closeAllConnections();
      await close();
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

// ---- child: the baseline (bare node:http, JSON in and out) --------------------------------------

async function baselineChild(): Promise<void> {
  let size = 700;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const input = JSON.parse(Buffer.concat(chunks).toString()) as { info?: { name?: string } };
      const head = `{"id":${JSON.stringify(req.url)},"version":2,"name":${JSON.stringify(input.info?.name ?? '')},"pad":"`;
      const body = `${head}${'x'.repeat(Math.max(0, size - head.length - 2))}"}`;
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  serve({
    setup: (msg) => {
      size = Number(msg.bytes);
      return { port: (server.address() as AddressInfo).port };
    },
    close: () => {
      server.closeAllConnections();
      server.close();
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

// ---- the floor leg: the same load against bench/support/floor-server.ts ------------------------

const FLOOR_SCRIPT = fileURLToPath(new URL('./support/floor-server.ts', import.meta.url));

/**
 * Issue 19's targets (bench/RESULTS.md, "bench:load on an idle machine"), checked against the
 * floor: what the floor misses, no implementation of the same parts reaches on this machine.
 */
const ISSUE_19_TARGETS = {
  vsNodeHttp: 0.15,
  cpuMsPerUpdate: 0.5,
  httpP99Ms: 15,
  everyAgentP99Ms: 25,
  zooidP99Ms: 30,
} as const;

interface FloorResult {
  ok: number;
  seconds: number;
  rate: number;
  cpuMsPerUpdate: number;
  cpuS: number;
  /** HTTP latency p50, p95, p99, max */
  lat: number[];
  deliveries: number;
  /** commit → every agent of the fleet p50, p99 */
  every: number[];
  putBytes: number;
  /** commit → PATCH at zooid p50, p99, max; undefined without push */
  zooid: { lat: number[]; received: number } | undefined;
  pushed: number;
  drainS: number | null;
  seeded: number;
  errors: string[];
}

/**
 * Step 5: the load of step 3 (same relays, fleets, agents, clients, duration, push target kind)
 * against the floor server, seeded from bosun's database, with fresh agents and zooid children.
 * Its errors are returned (prefixed), not thrown, unless a child fails outright.
 */
async function floorLeg(o: {
  track: (c: Child) => Child;
  dir: string;
  bosunDb: string;
  relays: number;
  fleets: number;
  agents: number;
  concurrency: number;
  duration: number;
  push: boolean;
  responseBytes: number;
  auth: string;
  secretKey: string;
}): Promise<FloorResult> {
  const errors: string[] = [];
  const profDir =
    process.env.BENCH_PROF === 'floor' ? (process.env.BENCH_PROF_DIR ?? join(tmpdir(), 'bprof')) : undefined;
  const floorProc = o.track(
    Child.fork(
      FLOOR_SCRIPT,
      [],
      ['--max-old-space-size=2048', ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])],
    ),
  );
  const agentsProc = o.track(Child.fork(SELF, ['agents'], ['--max-old-space-size=2048']));
  const zooidProc = o.push ? o.track(Child.fork(SELF, ['zooid'], ['--max-old-space-size=2048'])) : undefined;
  await Promise.all([floorProc.ready, agentsProc.ready, zooidProc?.ready]);
  const zooidUrl = zooidProc
    ? (await zooidProc.call<{ url: string }>('start', { kind: 'noop' })).url
    : undefined;
  const setup = await floorProc.call<{ port: number; relays: number }>('setup', {
    db: join(o.dir, 'floor.db'),
    from: o.bosunDb,
    bytes: o.responseBytes,
    auth: o.auth,
    zooidUrl,
    secretKey: o.secretKey,
  });
  if (setup.relays !== o.relays)
    errors.push(`seeded ${setup.relays} relays from bosun's database, not ${o.relays}`);

  // Agents: the token names the fleet (the floor looks nothing up).
  const fleetOfAgent = Array.from({ length: o.agents }, (_, j) => j % o.fleets);
  const tokens = fleetOfAgent.map((fl, j) => `floor.f${fl}.${j}`);
  const connected = await agentsProc.call<{ puts: number; putBytes: number; refused: unknown[] }>('connect', {
    port: setup.port,
    tokens,
    fleets: fleetOfAgent,
  });
  if (connected.puts < o.agents) {
    errors.push(
      `${o.agents - connected.puts} streams got no put (statuses ${JSON.stringify(connected.refused)})`,
    );
  }

  // Load, with the floor's CPU (all its threads) read from /proc as bosun's is.
  const pid = floorProc.proc.pid!;
  await agentsProc.call('record');
  if (zooidProc) await zooidProc.call('record');
  const cpu0 = cpuOf(pid);
  const commits: number[] = [];
  const { load, t0BySeq, unparsed } = await hammerCommits(
    { port: setup.port, auth: o.auth, seconds: o.duration, concurrency: o.concurrency, relays: o.relays },
    commits,
  );
  const cpu1 = cpuOf(pid);

  // Settle: deliveries and pushes in flight, at the same time.
  const [delivery, drained] = await Promise.all([
    agentsProc.call<{ missing: number; expected: number; ended: number; every: number[] }>('settle', {
      commits,
      fleets: o.fleets,
      timeoutMs: 15_000,
    }),
    floorProc.call<{ seconds: number | null }>('drain', { timeoutMs: 30_000 }),
  ]);
  const zooid = zooidProc
    ? await zooidProc.call<{ received: number; lat: number[] }>('report', { t0: t0BySeq })
    : undefined;
  const pushes = await floorProc.call<{ pushed: number; pushFailed: number; firstError: string }>('report');
  await agentsProc.stop();
  await floorProc.stop();
  if (zooidProc) await zooidProc.stop();

  if (load.non2xx > 0) errors.push(`${load.non2xx} non-2xx responses ${JSON.stringify(load.statuses)}`);
  if (load.transport > 0) errors.push(`${load.transport} transport errors`);
  if (unparsed > 0) errors.push(`${unparsed} responses without a version`);
  if (o.agents > 0 && delivery.missing > 0) errors.push(`${delivery.missing} deliveries missing after 15 s`);
  if (delivery.ended > 0) errors.push(`${delivery.ended} agent streams dropped`);
  if (pushes.pushFailed > 0)
    errors.push(`${pushes.pushFailed} failed pushes to zooid (first: ${pushes.firstError})`);
  if (zooidProc && drained.seconds === null) errors.push('pushes still in flight 30 s after the load');
  const cpuS = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : Number.NaN;
  return {
    ok: load.ok,
    seconds: load.seconds,
    rate: load.ok / load.seconds,
    cpuMsPerUpdate: (cpuS * 1000) / Math.max(1, load.ok),
    cpuS,
    lat: quantiles(load.latencies, [50, 95, 99, 100]),
    deliveries: delivery.expected - delivery.missing,
    every: delivery.every,
    putBytes: o.agents ? connected.putBytes / o.agents : 0,
    zooid: zooid && { lat: zooid.lat, received: zooid.received },
    pushed: pushes.pushed,
    drainS: drained.seconds,
    seeded: setup.relays,
    errors: errors.map((e) => `floor: ${e}`),
  };
}

// ---- orchestrator -------------------------------------------------------------------------------

const int = (name: string, fallback: number, min: number, max: number): number => {
  const v = arg(name);
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name}: a whole number from ${min} to ${max}`);
  return n;
};

/** What one run measured, for the --scale comparison. */
interface RunSummary {
  relays: number;
  rate: number;
  baseRate: number;
  cpuMsPerUpdate: number;
  rssKiBPerRelay: number;
  ok: boolean;
}

const POSTGRES = postgresArg();
const PROF_DIR =
  process.env.BENCH_PROF === 'floor'
    ? undefined
    : (process.env.BENCH_PROF_DIR ??
      (process.env.BENCH_PROF === 'bosun' ? join(tmpdir(), 'bprof') : undefined));

async function main(): Promise<number> {
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  if (!process.argv.includes('--scale')) {
    // --one-off: one run at up to 100,000 relays (issue 19's memory check), not a routine size.
    const relays = int('--relays', 10_000, 1, process.argv.includes('--one-off') ? 100_000 : 20_000);
    // The floor leg only in a single SQLite run: it is seeded from bosun's SQLite database.
    if (!POSTGRES) return (await runOnce(relays, undefined, true)).ok ? 0 : 1;
    // PostgreSQL is judged against SQLite on the same machine, back to back.
    const sqlite = await runOnce(relays, undefined);
    console.log('');
    const postgres = await runOnce(relays, POSTGRES);
    console.log(`\npostgres vs sqlite: the same load at ${relays.toLocaleString('en-US')} relays`);
    console.log(
      `  updates/s ${f(postgres.rate, 0)} vs ${f(sqlite.rate, 0)}: ${f(postgres.rate / sqlite.rate)}×; CPU per update ${f(postgres.cpuMsPerUpdate, 3)} vs ${f(sqlite.cpuMsPerUpdate, 3)} ms`,
    );
    return sqlite.ok && postgres.ok ? 0 : 1;
  }
  const small = await runOnce(2_000, POSTGRES);
  console.log('');
  const big = await runOnce(20_000, POSTGRES);
  console.log(
    `\nscale: the same load at ${big.relays.toLocaleString('en-US')} vs ${small.relays.toLocaleString('en-US')} relays`,
  );
  console.log(
    `  updates/s ${f(big.rate, 0)} vs ${f(small.rate, 0)}: ${f(big.rate / small.rate)}× (each against its own node:http: ${f(big.rate / big.baseRate)} vs ${f(small.rate / small.baseRate)})`,
  );
  console.log(
    `  CPU per update ${f(big.cpuMsPerUpdate, 3)} vs ${f(small.cpuMsPerUpdate, 3)} ms: ${f(big.cpuMsPerUpdate / small.cpuMsPerUpdate)}×`,
  );
  console.log(`  RSS per seeded relay ${f(big.rssKiBPerRelay, 1)} vs ${f(small.rssKiBPerRelay, 1)} KiB`);
  return small.ok && big.ok ? 0 : 1;
}

/** One bench run at `RELAYS` relays on SQLite, or on PostgreSQL at `postgres`. */
async function runOnce(
  RELAYS: number,
  postgres: string | undefined,
  floorAllowed = false,
): Promise<RunSummary> {
  const summary: RunSummary = {
    relays: RELAYS,
    rate: Number.NaN,
    baseRate: Number.NaN,
    cpuMsPerUpdate: Number.NaN,
    rssKiBPerRelay: Number.NaN,
    ok: false,
  };
  const AGENTS = int('--agents', 1_000, 0, 5_000);
  const FLEETS = int('--fleets', Math.min(100, RELAYS), 1, RELAYS);
  const DURATION = int('--duration', 20, 1, 120);
  const CONCURRENCY = int('--concurrency', 8, 1, 64);
  const PUSH = arg('--push') ?? 'noop';
  const LOG_LEVEL = arg('--log-level') ?? 'info';
  const SEED = arg('--seed') ?? 'fleet';
  if (!['post', 'fleet'].includes(SEED)) throw new Error('--seed: post or fleet');
  if (!['noop', 'emulator', 'off'].includes(PUSH)) throw new Error('--push: noop, emulator or off');
  if (!['info', 'debug', 'trace'].includes(LOG_LEVEL)) {
    throw new Error('--log-level: info, debug or trace (bosun must log "bosun listening")');
  }
  if (Math.ceil(RELAYS / FLEETS) > 10_000) throw new Error('--fleets: at most 10,000 relays per fleet');
  const BASELINE_S = Math.min(5, DURATION);
  // The floor leg needs the seed in bosun's SQLite file, and a zooid that takes PATCHes of relays it
  // never saw created (the emulator answers those 404).
  const FLOOR = floorAllowed && !process.argv.includes('--no-floor') && PUSH !== 'emulator';
  const FLOOR_S = FLOOR ? DURATION + 120 : 0;
  // Push sync creates every seeded relay in zooid before the load; beyond the default size (--scale)
  // the wait grows with the fleet, so the load starts steady there too.
  const CATCH_UP_S = RELAYS > 10_000 ? Math.ceil((RELAYS * 20) / 1000) : 60;

  const children: Child[] = [];
  let bosun: BosunServe | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-load-'));
  const pgSchema = `bench_load_${randomBytes(4).toString('hex')}`;
  const databaseUrl = (() => {
    if (!postgres) return `sqlite:${join(dir, 'bosun.db')}`;
    const u = new URL(postgres);
    u.searchParams.set('schema', pgSchema);
    return u.toString();
  })();
  const dropSchema = async () => {
    if (!postgres) return;
    const client = new pg.Client({ connectionString: postgres });
    try {
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${pgSchema}" CASCADE`);
    } finally {
      await client.end().catch(() => {});
    }
  };
  const cleanup = () => {
    bosun?.kill();
    for (const c of children) c.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const hardLimit = setTimeout(
    () => {
      console.error(`bench/load: over its ${DURATION + 180 + CATCH_UP_S + FLOOR_S} s limit; stopping`);
      cleanup();
      process.exit(2);
    },
    (DURATION + 180 + CATCH_UP_S + FLOOR_S) * 1000,
  );
  hardLimit.unref();
  const onInt = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onInt);

  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
  const mib = (kib: number | undefined) => (kib === undefined ? 'n/a' : `${f(kib / 1024)} MiB`);
  const started = now();
  const built = ensureDist();
  const agentsPerFleet = AGENTS / FLEETS;
  console.log(
    `bench/load — ${n0(RELAYS)} relays in ${n0(FLEETS)} fleets, ${n0(AGENTS)} agent streams (${f(agentsPerFleet, agentsPerFleet % 1 ? 1 : 0)} per fleet), ` +
      `${CONCURRENCY} HTTP clients × ${DURATION} s of PATCH /v1/relays/:id, loopback`,
  );
  console.log(
    `  node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()
      .map((l) => f(l, 2))
      .join(' ')} at start (other processes share these cores)`,
  );
  console.log(
    `  bosun: bin/bosun.js serve (${built}), ${postgres ? `PostgreSQL (scratch schema ${pgSchema})` : 'SQLite in a temp dir'}, log level ${LOG_LEVEL} to a file; push sync → ${
      PUSH === 'noop'
        ? 'a no-op zooid (2xx at once; real zooid runs elsewhere, so its CPU is left out)'
        : PUSH === 'emulator'
          ? 'the zooid emulator (verifies NIP-98, stores configs; its CPU shares these cores)'
          : 'off (pull sync only)'
    }`,
  );
  console.log(
    FLOOR
      ? '  floor: then the same load against a minimal node:http server doing only the irreducible work (bench/support/floor-server.ts)'
      : `  floor: skipped (${
          process.argv.includes('--no-floor')
            ? '--no-floor'
            : PUSH === 'emulator'
              ? 'not with --push emulator'
              : 'single SQLite runs only: not with --scale or --postgres'
        })`,
  );

  const errors: string[] = [];
  try {
    // -- processes
    const spawnChild = (mode: string) => {
      const c = Child.fork(SELF, [mode], ['--max-old-space-size=2048']);
      children.push(c);
      return c;
    };
    const agentsProc = spawnChild('agents');
    const zooidProc = PUSH === 'off' ? undefined : spawnChild('zooid');
    await Promise.all([agentsProc.ready, zooidProc?.ready]);
    const secretKey = generateSecretKey();
    const adminToken = `bench-${randomBytes(24).toString('hex')}`;
    const zooidUrl = zooidProc
      ? (await zooidProc.call<{ url: string }>('start', { kind: PUSH, pubkey: publicKeyOf(secretKey) })).url
      : undefined;
    bosun = await startBosunServe(
      {
        BOSUN_DATABASE_URL: databaseUrl,
        BOSUN_ADMIN_TOKEN: adminToken,
        BOSUN_LOG_LEVEL: LOG_LEVEL,
        ...(zooidUrl ? { ZOOID_API_URL: zooidUrl, BOSUN_SECRET_KEY: secretKey } : {}),
      },
      join(dir, 'bosun.log'),
      {
        nodeArgs: [
          ...(PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROF_DIR}`] : []),
          ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        ],
      },
    );
    const b = bosun;
    const auth = `Bearer ${adminToken}`;
    const setupAgent = new Agent({ keepAlive: true, maxSockets: 8 });
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await httpRequest(
        setupAgent,
        b.port,
        method,
        path,
        { authorization: auth },
        body === undefined ? undefined : JSON.stringify(body),
      );
      if (res.status < 200 || res.status >= 300) {
        throw new Error(`${method} ${path}: ${res.status} ${res.body.slice(0, 300)}`);
      }
      return JSON.parse(res.body) as Record<string, unknown>;
    };
    const rss: Record<string, number | undefined> = { start: b.rssKiB() };
    let peak = rss.start ?? 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, b.rssKiB() ?? 0);
    }, 100);
    sampler.unref();
    const relaysByStatus = async () => {
      const m = await scrapeMetrics(b.url);
      const get = (s: string) => m.get(`bosun_relays{status="${s}"}`) ?? 0;
      return { pending: get('pending'), retrying: get('retrying'), failed: get('failed'), metrics: m };
    };
    /**
     * Whether a live relay is pending or retrying: one indexed read of at most one relay per status
     * (`GET /v1/relays?status=…&limit=1`). Polled from /metrics instead, every poll cost bosun a
     * count over every relay (~100 ms at 20,000 relays on an idle machine, 200–300 ms loaded):
     * polled every 200 ms, the wait took much of the main thread from the catch-up it waited for.
     */
    const pollAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const pushBusy = async () => {
      for (const status of ['pending', 'retrying']) {
        const path = `/v1/relays?status=${status}&limit=1`;
        const res = await httpRequest(pollAgent, b.port, 'GET', path, { authorization: auth });
        if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body.slice(0, 300)}`);
        if ((JSON.parse(res.body) as { relays: unknown[] }).relays.length > 0) return true;
      }
      return false;
    };
    /** Waits until no relay is pending or retrying (push sync caught up); seconds, or NaN on timeout. */
    const pushIdle = async (timeoutMs: number) => {
      const t0 = now();
      while (now() - t0 < timeoutMs) {
        if (!(await pushBusy())) return (now() - t0) / 1000;
        await sleep(200);
      }
      return Number.NaN;
    };

    // -- 1. seed, over the API: one POST /v1/relays per relay (8 in flight), or one fleet apply per fleet
    const owners = Array.from({ length: 100 }, () => publicKeyOf(generateSecretKey()));
    const relayFields = (i: number) => ({
      host: `r${i}.load.example.com`,
      info: {
        name: `Relay ${i}`,
        description: `Relay number ${i} of the load benchmark`,
        pubkey: owners[i % owners.length],
      },
      policy: { public_join: i % 3 === 0 },
      groups: { enabled: i % 2 === 0 },
    });
    let t = now();
    if (SEED === 'fleet') {
      for (let fl = 0; fl < FLEETS; fl++) {
        const relays = [];
        for (let i = fl; i < RELAYS; i += FLEETS) relays.push({ name: `r${i}`, config: relayFields(i) });
        await api('POST', `/v1/fleets/f${fl}/apply`, { defaults: {}, relays });
      }
    } else {
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < RELAYS) {
            const i = next++;
            await api('POST', '/v1/relays', { id: `r${i}`, fleet: `f${i % FLEETS}`, ...relayFields(i) });
          }
        }),
      );
    }
    const seedS = (now() - t) / 1000;
    console.log(`\nsetup`);
    console.log(
      `  seed: ${n0(RELAYS)} relays, ${SEED === 'fleet' ? `${n0(FLEETS)} fleet applies` : 'POST /v1/relays × 8 in flight'}: ${f(seedS, 2)} s (${n0(RELAYS / seedS)} relays/s)`,
    );
    if (zooidProc) {
      const catchUp = await pushIdle(CATCH_UP_S * 1000);
      const st = await relaysByStatus();
      if (Number.isNaN(catchUp)) {
        console.log(
          `  push catch-up: NOT done in ${CATCH_UP_S} s (${n0(st.pending)} pending, ${n0(st.retrying)} retrying)`,
        );
      } else {
        const total = seedS + catchUp;
        console.log(
          `  push catch-up: every relay created in zooid ${f(catchUp, 2)} s after the seed (${n0(RELAYS / total)} relays/s from its start)`,
        );
      }
      if (st.failed > 0) errors.push(`${st.failed} relays failed to sync during the seed`);
    }
    rss.seeded = b.rssKiB();
    {
      // Where the seeded RSS is: V8's heap (committed, and in use by objects live or not yet
      // collected), buffers outside it; the rest is native (SQLite, threads, code, allocator).
      const m = await scrapeMetrics(b.url);
      const mb = (k: string) => f((m.get(k) ?? Number.NaN) / 1048576);
      console.log(
        `  bosun memory seeded: RSS ${mib(rss.seeded)}; V8 heap ${mb('bosun_nodejs_heap_size_total_bytes')} MiB committed, ` +
          `${mb('bosun_nodejs_heap_size_used_bytes')} MiB used; external ${mb('bosun_nodejs_external_memory_bytes')} MiB`,
      );
    }

    // -- 2. agents: a token each, every stream open with its put
    const tokens: string[] = [];
    const fleetOfAgent = Array.from({ length: AGENTS }, (_, j) => j % FLEETS);
    t = now();
    let nextAgent = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (nextAgent < AGENTS) {
          const j = nextAgent++;
          const r = await api('POST', '/v1/tokens', {
            role: 'agent',
            fleet: `f${fleetOfAgent[j]}`,
            name: `load-agent-${j}`,
          });
          tokens[j] = String(r.token);
        }
      }),
    );
    const tokensS = (now() - t) / 1000;
    setupAgent.destroy();
    const before = b.rssKiB();
    const connected = await agentsProc.call<{
      ms: number;
      puts: number;
      ended: number;
      putBytes: number;
      refused: unknown[];
    }>('connect', { port: b.port, tokens, fleets: fleetOfAgent });
    if (connected.puts < AGENTS) {
      errors.push(
        `${AGENTS - connected.puts} streams got no put (statuses ${JSON.stringify(connected.refused)})`,
      );
    }
    await sleep(300);
    rss.streams = b.rssKiB();
    const agentsMetric = (await scrapeMetrics(b.url)).get('bosun_agents_connected') ?? 0;
    console.log(
      `  agents: ${n0(AGENTS)} tokens ${f(tokens.length ? tokensS : 0, 2)} s; ${n0(connected.puts)} streams open with their put ${f(connected.ms / 1000, 2)} s ` +
        `(put ${AGENTS ? n0(connected.putBytes / AGENTS / 1024) : 0} KiB each; bosun counts ${n0(agentsMetric)} agents)`,
    );

    // -- 3. load
    const m0 = await scrapeMetrics(b.url);
    const cpu0 = b.cpuSeconds();
    const agentsCpu0 = (await agentsProc.call<{ cpu: NodeJS.CpuUsage }>('record')).cpu;
    const zooidCpu0 = zooidProc ? (await zooidProc.call<{ cpu: NodeJS.CpuUsage }>('record')).cpu : undefined;
    const selfCpu0 = process.cpuUsage();
    peak = b.rssKiB() ?? 0;
    const commits: number[] = []; // relay, version, t0
    const { load, t0BySeq, unparsed } = await hammerCommits(
      { port: b.port, auth, seconds: DURATION, concurrency: CONCURRENCY, relays: RELAYS },
      commits,
    );
    const cpu1 = b.cpuSeconds();
    const selfCpu = process.cpuUsage(selfCpu0);
    rss.end = b.rssKiB();
    rss.peak = Math.max(peak, rss.end ?? 0);
    const m1 = await scrapeMetrics(b.url);

    // -- 4. settle: deliveries and push backlog, at the same time
    const [delivery, drainS] = await Promise.all([
      agentsProc.call<{
        cpu: NodeJS.CpuUsage;
        expected: number;
        missing: number;
        patches: number;
        otherEvents: number;
        ended: number;
        open: number;
        each: number[];
        every: number[];
      }>('settle', { commits, fleets: FLEETS, timeoutMs: 15_000 }),
      zooidProc ? pushIdle(30_000) : Promise.resolve(Number.NaN),
    ]);
    const m2 = await scrapeMetrics(b.url);
    const zooid = zooidProc
      ? await zooidProc.call<{
          cpu: NodeJS.CpuUsage;
          counts: Record<string, number>;
          received: number;
          lat: number[];
        }>('report', { t0: t0BySeq })
      : undefined;
    clearInterval(sampler);

    // -- stop: agents first (no reconnects), then bosun, then zooid
    await agentsProc.stop();
    pollAgent.destroy();
    const stopped = await b.stop();
    if (zooidProc) await zooidProc.stop();
    const logs = b.logCounts();
    const responseBytes = load.ok ? load.responseBytes / load.ok : 700;

    // -- 5. floor: the same load against a server doing only each update's irreducible work
    const floor = FLOOR
      ? await floorLeg({
          track: (c) => {
            children.push(c);
            return c;
          },
          dir,
          bosunDb: join(dir, 'bosun.db'),
          relays: RELAYS,
          fleets: FLEETS,
          agents: AGENTS,
          concurrency: CONCURRENCY,
          duration: DURATION,
          push: zooidProc !== undefined,
          responseBytes,
          auth,
          secretKey,
        })
      : undefined;

    // -- 6. baseline: the same client against bare node:http, JSON of bosun's response size
    const baseProc = spawnChild('baseline');
    await baseProc.ready;
    const { port: basePort } = await baseProc.call<{ port: number }>('setup', { bytes: responseBytes });
    const base = await hammer({
      port: basePort,
      auth,
      seconds: BASELINE_S,
      concurrency: CONCURRENCY,
      relays: RELAYS,
    });
    await baseProc.stop();

    // -- report
    const rate = load.ok / load.seconds;
    const baseRate = base.ok / base.seconds;
    const syncs = (m: Map<string, number>, outcome: string) => {
      let n = 0;
      for (const [k, v] of m)
        if (k.startsWith('bosun_syncs_total{') && k.includes(`outcome="${outcome}"`)) n += v;
      return n;
    };
    const cpuS = (u: NodeJS.CpuUsage | undefined, u0: NodeJS.CpuUsage | undefined) =>
      u && u0 ? (u.user - u0.user + u.system - u0.system) / 1e6 : Number.NaN;
    const lat = quantiles(load.latencies, [50, 95, 99, 100]);
    const baseLat = quantiles(base.latencies, [50, 95, 99, 100]);
    const row = (name: string, a: string, b2: string, r: string) =>
      console.log(`  ${name.padEnd(40)}${a.padStart(12)}  ${b2.padStart(12)}  ${r.padStart(10)}`);
    console.log(
      `\nload: ${f(load.seconds, 1)} s (baseline ${f(base.seconds, 1)} s)`.padEnd(42) +
        'bosun'.padStart(12) +
        'node:http'.padStart(14) +
        'bosun/base'.padStart(12),
    );
    row('PATCH /v1/relays/:id committed', `${n0(rate)}/s`, `${n0(baseRate)}/s`, `${f(rate / baseRate, 2)}×`);
    row('HTTP latency p50', `${f(lat[0]!, 2)} ms`, `${f(baseLat[0]!, 2)} ms`, '');
    row('HTTP latency p95', `${f(lat[1]!, 2)} ms`, `${f(baseLat[1]!, 2)} ms`, '');
    row('HTTP latency p99', `${f(lat[2]!, 2)} ms`, `${f(baseLat[2]!, 2)} ms`, '');
    row('HTTP latency max', `${f(lat[3]!, 1)} ms`, `${f(baseLat[3]!, 1)} ms`, '');
    console.log(
      `  (${n0(load.ok)} updates, ${n0(responseBytes)} B responses; baseline: bare node:http parsing the JSON body and answering as many bytes)`,
    );
    if (AGENTS > 0) {
      console.log(
        `\nagents: commit → patch received, from the PATCH being sent (an upper bound; ${n0(delivery.expected - delivery.missing)} deliveries)`,
      );
      console.log(
        `  each delivery        p50 ${f(delivery.each[0]!, 1)} ms  p95 ${f(delivery.each[1]!, 1)} ms  p99 ${f(delivery.each[2]!, 1)} ms  max ${f(delivery.each[3]!, 1)} ms`,
      );
      console.log(
        `  every agent of the relay's fleet   p50 ${f(delivery.every[0]!, 1)} ms  p99 ${f(delivery.every[1]!, 1)} ms`,
      );
      console.log(
        `  patches received ${n0(delivery.patches)} (${n0(delivery.patches / load.seconds)}/s over ${n0(AGENTS)} streams); other events ${n0(delivery.otherEvents)}`,
      );
    }
    if (zooid) {
      const synced = syncs(m1, 'synced') - syncs(m0, 'synced');
      const pushedAfter = syncs(m2, 'synced') - syncs(m0, 'synced');
      console.log(
        `\npush sync (${PUSH === 'noop' ? 'no-op zooid' : 'zooid emulator'}): ${n0(synced / load.seconds)} syncs/s during the load (${f(synced / Math.max(1, load.ok), 2)} per update)`,
      );
      if (PUSH === 'noop') {
        console.log(
          `  commit → PATCH at zooid   p50 ${f(zooid.lat[0]!, 1)} ms  p99 ${f(zooid.lat[1]!, 1)} ms  max ${f(zooid.lat[2]!, 1)} ms  ` +
            `(${n0(zooid.received)} updates sent as their own PATCH, ${n0(load.ok - zooid.received)} coalesced into a later one)`,
        );
      }
      console.log(
        Number.isNaN(drainS)
          ? `  backlog NOT drained 30 s after the load (${n0(pushedAfter)} syncs in all)`
          : `  backlog drained ${f(drainS, 2)} s after the load (${n0(pushedAfter)} syncs in all)`,
      );
    }
    const perStream =
      AGENTS > 0 && rss.streams !== undefined && before !== undefined
        ? (rss.streams - before) / AGENTS
        : Number.NaN;
    console.log(
      `\nbosun RSS: start ${mib(rss.start)}, seeded ${mib(rss.seeded)}, with streams ${mib(rss.streams)}, ` +
        `peak under load ${mib(rss.peak)}, end of load ${mib(rss.end)}`,
    );
    if (AGENTS > 0)
      console.log(`  ≈ ${f(perStream, 1)} KiB RSS per open stream (with streams − before, ÷ agents)`);
    const window = load.seconds;
    const cores = (s: number) => `${f(s, 1)} s (${f((s / window) * 100, 0)} % of a core)`;
    const rssPerRelay =
      rss.seeded !== undefined && rss.start !== undefined ? (rss.seeded - rss.start) / RELAYS : Number.NaN;
    console.log(
      `  ≈ ${f(rssPerRelay, 1)} KiB RSS per seeded relay (seeded − start, ÷ relays; ${f(rss.seeded === undefined ? Number.NaN : rss.seeded / RELAYS, 1)} KiB of all RSS ÷ relays)`,
    );
    const bosunCpu = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : Number.NaN;
    const cpuMsPerUpdate = (bosunCpu * 1000) / Math.max(1, load.ok);
    console.log(
      `bosun CPU per committed update: ${f(cpuMsPerUpdate, 3)} ms (bosun CPU during the load ÷ ${n0(load.ok)} updates; load average ${loadavg()
        .map((l) => f(l, 2))
        .join(' ')} at the end)`,
    );
    summary.rate = rate;
    summary.baseRate = baseRate;
    summary.cpuMsPerUpdate = cpuMsPerUpdate;
    summary.rssKiBPerRelay = rssPerRelay;
    console.log(
      `CPU during the load: bosun ${cpu0 !== undefined && cpu1 !== undefined ? cores(cpu1 - cpu0) : 'n/a'}, ` +
        `agents ${cores(cpuS(delivery.cpu, agentsCpu0))}, ${zooidProc ? `zooid ${cores(cpuS(zooid?.cpu, zooidCpu0))}, ` : ''}` +
        `HTTP clients ${cores(cpuS(selfCpu, { user: 0, system: 0 }))}`,
    );
    console.log(
      `bosun log: ${n0(logs.lines)} lines (${n0(logs.warn)} warn, ${n0(logs.error)} error); stopped on SIGTERM in ${f(stopped.ms / 1000, 2)} s (exit ${stopped.signal ?? stopped.code})`,
    );
    if (floor) {
      const fr = floor;
      const everyP99 = AGENTS > 0 ? delivery.every[1]! : Number.NaN;
      const zooidP = (i: number) => (zooid && PUSH === 'noop' ? zooid.lat[i]! : Number.NaN);
      const frow = (name: string, a: string, b2: string, r: string) =>
        console.log(`  ${name.padEnd(40)}${a.padStart(12)}  ${b2.padStart(12)}  ${r.padStart(12)}`);
      const ms = (x: number, d = 1) => `${f(x, d)} ms`;
      console.log(
        `\nfloor: ${f(fr.seconds, 1)} s of the same load`.padEnd(42) +
          'bosun'.padStart(12) +
          'floor'.padStart(14) +
          'bosun/floor'.padStart(14),
      );
      frow('PATCH /v1/relays/:id committed', `${n0(rate)}/s`, `${n0(fr.rate)}/s`, `${f(rate / fr.rate, 2)}×`);
      frow('÷ node:http of this run', `${f(rate / baseRate, 3)}×`, `${f(fr.rate / baseRate, 3)}×`, '');
      frow(
        'CPU per committed update',
        ms(cpuMsPerUpdate, 3),
        ms(fr.cpuMsPerUpdate, 3),
        `${f(cpuMsPerUpdate / fr.cpuMsPerUpdate, 2)}×`,
      );
      frow('HTTP latency p99', ms(lat[2]!, 2), ms(fr.lat[2]!, 2), '');
      if (AGENTS > 0) frow('commit → every agent p99', ms(everyP99), ms(fr.every[1]!), '');
      if (fr.zooid) {
        frow('commit → PATCH at zooid p50', ms(zooidP(0)), ms(fr.zooid.lat[0]!), '');
        frow('commit → PATCH at zooid p99', ms(zooidP(1)), ms(fr.zooid.lat[1]!), '');
      }
      console.log(
        `  (floor: ${n0(fr.ok)} updates, CPU ${cores(fr.cpuS)}; seeded ${n0(fr.seeded)} relays from bosun's database; ` +
          `${AGENTS > 0 ? `${n0(fr.deliveries)} deliveries, put ${n0(fr.putBytes / 1024)} KiB each; ` : ''}` +
          `${fr.zooid ? `${n0(fr.pushed)} signed PATCHes to zooid (${n0(fr.zooid.received)} matched to their commit there), drained ${f(fr.drainS ?? Number.NaN, 2)} s after the load; ` : 'push off: nothing signed; '}` +
          `errors: ${fr.errors.length === 0 ? 'none' : fr.errors.length})`,
      );
      const T = ISSUE_19_TARGETS;
      const verdict = (name: string, floorValue: number, meets: boolean, shown: string, bosunShown: string) =>
        console.log(
          `  ${name.padEnd(40)}floor ${shown.padEnd(12)}${Number.isNaN(floorValue) ? 'n/a' : meets ? 'met' : 'NOT met'} (bosun ${bosunShown})`,
        );
      console.log(
        `issue 19's targets, met by the floor? (one the floor misses, no implementation of these parts meets on this machine, as loaded)`,
      );
      const vs = fr.rate / baseRate;
      verdict(
        `committed updates/s ≥ ${T.vsNodeHttp}× node:http`,
        vs,
        vs >= T.vsNodeHttp,
        `${f(vs, 3)}×`,
        `${f(rate / baseRate, 3)}×`,
      );
      verdict(
        `CPU per committed update ≤ ${T.cpuMsPerUpdate} ms`,
        fr.cpuMsPerUpdate,
        fr.cpuMsPerUpdate <= T.cpuMsPerUpdate,
        ms(fr.cpuMsPerUpdate, 3),
        ms(cpuMsPerUpdate, 3),
      );
      verdict(
        `HTTP latency p99 ≤ ${T.httpP99Ms} ms`,
        fr.lat[2]!,
        fr.lat[2]! <= T.httpP99Ms,
        ms(fr.lat[2]!, 2),
        ms(lat[2]!, 2),
      );
      if (AGENTS > 0)
        verdict(
          `commit → every agent p99 ≤ ${T.everyAgentP99Ms} ms`,
          fr.every[1]!,
          fr.every[1]! <= T.everyAgentP99Ms,
          ms(fr.every[1]!),
          ms(everyP99),
        );
      if (fr.zooid)
        verdict(
          `commit → PATCH at zooid p99 ≤ ${T.zooidP99Ms} ms`,
          fr.zooid.lat[1]!,
          fr.zooid.lat[1]! <= T.zooidP99Ms,
          ms(fr.zooid.lat[1]!),
          ms(zooidP(1)),
        );
    }

    // -- errors
    if (load.non2xx > 0) errors.push(`${load.non2xx} non-2xx responses ${JSON.stringify(load.statuses)}`);
    if (load.transport > 0) errors.push(`${load.transport} transport errors`);
    if (base.non2xx + base.transport > 0)
      errors.push(`baseline: ${base.non2xx + base.transport} failed requests`);
    if (unparsed > 0) errors.push(`${unparsed} responses without a version`);
    if (AGENTS > 0 && delivery.missing > 0) errors.push(`${delivery.missing} deliveries missing after 15 s`);
    if (delivery.ended > 0) errors.push(`${delivery.ended} agent streams dropped`);
    const failedSyncs = syncs(m2, 'failed') + syncs(m2, 'retry');
    if (failedSyncs > 0) errors.push(`${failedSyncs} failed or retried syncs`);
    if (logs.error > 0) errors.push(`${logs.error} error lines in bosun's log:\n${b.tail(2000)}`);
    if (stopped.code !== 0) errors.push(`bosun exited ${stopped.signal ?? stopped.code} on SIGTERM`);
    if (floor) errors.push(...floor.errors);
  } catch (err) {
    errors.push(String((err as Error).stack ?? err));
    if (bosun) errors.push(`bosun log tail:\n${bosun.tail(2000)}`);
  } finally {
    cleanup();
    clearTimeout(hardLimit);
    process.off('SIGINT', onInt);
    await dropSchema().catch((err) => errors.push(`dropping the scratch schema: ${String(err)}`));
  }
  console.log(
    errors.length === 0
      ? `\nerrors: none (0 non-2xx, 0 transport, 0 dropped streams, 0 missing deliveries, 0 sync failures); ${f((now() - started) / 1000, 1)} s in all`
      : `\nerrors:\n${errors.map((e) => `  - ${e}`).join('\n')}`,
  );
  summary.ok = errors.length === 0;
  return summary;
}

switch (MODE) {
  case 'agents':
    await agentsChild();
    break;
  case 'zooid':
    await zooidChild();
    break;
  case 'baseline':
    await baselineChild();
    break;
  default:
    process.exit(await main());
}
