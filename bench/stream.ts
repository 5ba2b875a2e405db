/**
 * bench/stream: the autoconfig stream server with 1,000 and 5,000 concurrent agent streams on
 * loopback, beside a bare node:http SSE server writing the same bytes, measured in the same run.
 *
 *   npm run bench:stream [-- --counts 1000,5000 --commits 15]
 *
 * Three processes: the server under test (bosun's Peer on a temp SQLite file, or the bare node:http
 * baseline), one client process holding every connection (raw HTTP/1.1 over net sockets, so the
 * client costs little), and this orchestrator. Timestamps are `performance.timeOrigin + now()`,
 * comparable across processes on one machine.
 *
 * - RSS per idle stream: server RSS (after GC) with N idle streams minus with N/2, divided by N/2
 *   (the marginal cost; fixed costs cancel out). RSS moves in pages and heap chunks, so the JS heap
 *   per stream is shown too: it is the steadier figure.
 * - commit → patch: the server times a relay update (Command, one transaction) and every client
 *   notes when the patch frame carrying it has fully arrived; p50/p99 over all deliveries and over
 *   the last delivery of each commit ("arrived at every agent").
 * - fan-out rate: deliveries per second of one event to N streams (N / time to the last one).
 * - reconnect storm: every client drops its connection; once the server has seen them go, all
 *   reconnect at once (with resume headers, as agents do) and the time until every one has had its
 *   put is measured.
 * Bounded: at most 5,000 streams per server, a few seconds per phase, a 3-minute hard limit.
 * BENCH_PROF=bosun (or baseline) writes a CPU profile of that server to /tmp/bprof.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { arg, Child, gcMemory, now, pct, progressWaiter, serve } from './support/child.js';
import { openSse, type SseStream } from './support/sse.js';

const SELF = fileURLToPath(import.meta.url);
const MODE = process.argv[2] ?? 'main';
const PUBKEY = '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798';
const RELAYS = 10;

// ---- server under test: bosun ------------------------------------------------------------------

async function bosunServer(): Promise<void> {
  const { loadServeConfig } = await import('../src/config.js');
  const { Peer } = await import('../src/peer.js');
  const { createLogger } = await import('../src/logger.js');
  const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-stream-'));
  const config = loadServeConfig({
    BOSUN_DATABASE_URL: `sqlite:${join(dir, 'bosun.db')}`,
    PORT: '0',
    BOSUN_ADMIN_TOKEN: 'bench-admin-token-0123456789',
    BOSUN_LOG_LEVEL: 'silent',
    BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
  });
  const logger = createLogger({
    level: 'silent',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  const peer = await Peer.create(config, { logger });
  const url = await peer.start();
  const admin = { role: 'admin' as const, actor: 'bench' };
  for (let i = 0; i < RELAYS; i++) {
    await peer.command.createRelay(admin, {
      id: `r${i}`,
      fleet: 'bench',
      host: `r${i}.example.com`,
      info: { pubkey: PUBKEY, name: `relay ${i}`, description: 'x'.repeat(200) },
    });
  }
  serve({
    setup: async (msg) => {
      const tokens: string[] = [];
      for (let i = 0; i < Math.ceil(Number(msg.n) / 4); i++) {
        tokens.push((await peer.tokens.create({ role: 'agent', fleet: 'bench' })).token);
      }
      return { port: Number(new URL(url).port), tokens };
    },
    rss: gcMemory,
    stats: () => ({ ...peer.streams.stats() }),
    commit: async (msg) => {
      const t0 = now();
      const { relay } = await peer.command.updateRelay(admin, 'r0', { info: { name: `bench-${msg.k}` } });
      return { t0, version: relay.version };
    },
    close: async () => {
      await peer.close();
      rmSync(dir, { recursive: true, force: true });
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

// ---- server under test: bare node:http SSE broadcast ---------------------------------------------

async function baselineServer(): Promise<void> {
  const streams = new Set<ServerResponse>();
  let put = Buffer.from('event: put\ndata: {}\n\n');
  const server = createServer((req, res) => {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      Connection: 'close',
    });
    res.flushHeaders();
    res.write(put);
    streams.add(res);
    res.once('close', () => streams.delete(res));
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  serve({
    setup: (msg) => {
      put = Buffer.from(`event: put\ndata: ${'x'.repeat(Math.max(0, Number(msg.putBytes) - 20))}\n\n`);
      return { port, tokens: ['baseline'] };
    },
    rss: gcMemory,
    stats: () => ({ streams: streams.size }),
    commit: (msg) => {
      const frame = Buffer.from(
        `event: patch\ndata: {"marker":"bench-${msg.k}","pad":"${'p'.repeat(Math.max(0, Number(msg.bytes) - 60))}"}\n\n`,
      );
      const t0 = now();
      for (const res of streams) res.write(frame);
      return { t0 };
    },
    close: () => {
      for (const res of streams) res.destroy();
      server.close();
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

// ---- clients -------------------------------------------------------------------------------------

interface Conn {
  sse: SseStream;
  /** marker -> arrival time of the frame's end */
  seen: Map<string, number>;
  frameBytes: number;
  watching: string | undefined;
}

async function clients(): Promise<void> {
  let conns: Conn[] = [];
  let port = 0;
  // Counters, so that progress checks are O(1) per frame (not a scan of every connection).
  let puts = 0;
  let seenCount = 0;
  const { progress, until } = progressWaiter('clients');

  const open = (token: string, resume?: { epoch: string; held: string }): Conn => {
    const c: Conn = { sse: undefined!, seen: new Map(), watching: undefined, frameBytes: 0 };
    c.sse = openSse({
      port,
      token,
      resume,
      onPut: () => {
        puts++;
        progress();
      },
      onData: (s) => {
        if (c.watching) {
          const at = s.buf.indexOf(c.watching);
          const end = at < 0 ? -1 : s.buf.indexOf('\n\n', at);
          if (end >= 0) {
            c.seen.set(c.watching, now());
            c.frameBytes = end + 2 - s.buf.lastIndexOf('event: ', at);
            c.watching = undefined;
            s.buf = '';
            seenCount++;
            progress();
          }
        }
        if (s.buf.length > 65_536 && !c.watching) s.buf = s.buf.slice(-1024);
      },
    });
    return c;
  };

  serve({
    /** Opens `n` more streams (tokens continue round-robin) and waits for all their puts. */
    connect: async (msg) => {
      port = Number(msg.port);
      const tokens = msg.tokens as string[];
      const n = Number(msg.n);
      const t0 = now();
      const base = conns.length;
      conns = [...conns, ...Array.from({ length: n }, (_, i) => open(tokens[(base + i) % tokens.length]!))];
      await until(() => puts === conns.length, 60_000, 'every put');
      return { ms: now() - t0, putBytes: conns[0]!.sse.putBytes };
    },
    watch: (msg) => {
      seenCount = 0;
      for (const c of conns) c.watching = String(msg.marker);
      return {};
    },
    arrivals: async (msg) => {
      const marker = String(msg.marker);
      await until(() => seenCount === conns.length, 30_000, `marker ${marker}`);
      return { at: conns.map((c) => c.seen.get(marker)!), frameBytes: conns[0]!.frameBytes };
    },
    drop: async () => {
      const closed = conns.map(
        (c) => new Promise<void>((resolve) => c.sse.socket.once('close', () => resolve())),
      );
      for (const c of conns) c.sse.socket.destroy();
      await Promise.all(closed);
      return {};
    },
    storm: async (msg) => {
      const old = conns;
      puts = 0;
      const t0 = now();
      conns = old.map(({ sse: c }) =>
        open(c.token, msg.resume && c.epoch && c.held ? { epoch: c.epoch, held: c.held } : undefined),
      );
      await until(() => puts === conns.length, 60_000, 'every put after the storm');
      return { ms: now() - t0 };
    },
    close: () => {
      for (const c of conns) c.sse.socket.destroy();
      setImmediate(() => process.exit(0));
      return {};
    },
  });
}

// ---- orchestrator --------------------------------------------------------------------------------

/** Forks this script as a server or the clients; BENCH_PROF=<mode> profiles that child. */
const spawnChild = (mode: string): Child =>
  Child.fork(
    SELF,
    [mode],
    [
      '--expose-gc',
      '--max-old-space-size=2048',
      ...(process.env.BENCH_PROF && mode === process.env.BENCH_PROF
        ? ['--cpu-prof', '--cpu-prof-dir=/tmp/bprof']
        : []),
    ],
  );

interface Result {
  kibPerStream: number;
  heapKibPerStream: number;
  p50: number;
  p99: number;
  lastP50: number;
  lastP99: number;
  rate: number;
  stormMs: number;
  putBytes: number;
  patchBytes: number;
}

async function measure(
  kind: 'bosun' | 'baseline',
  n: number,
  commits: number,
  putBytes: number,
  patchBytes: number,
): Promise<Result> {
  const server = spawnChild(kind);
  const client = spawnChild('clients');
  await Promise.all([server.ready, client.ready]);
  try {
    const { port, tokens } = await server.call<{ port: number; tokens: string[] }>('setup', { n, putBytes });
    // Marginal memory: RSS with N idle streams minus RSS with N/2, per stream. Fixed costs (a
    // young generation grown by the first connections, JIT code, the fleet's hub) cancel out.
    const half = Math.floor(n / 2);
    const connected = await client.call('connect', { port, tokens, n: half });
    await new Promise((r) => setTimeout(r, 300));
    const halfMem = await server.call('rss');
    await client.call('connect', { port, tokens, n: n - half });
    await new Promise((r) => setTimeout(r, 300));
    const fullMem = await server.call('rss');
    const perStream = (key: string) =>
      ((fullMem[key] as number) - (halfMem[key] as number)) / (n - half) / 1024;

    const all: number[] = [];
    const last: number[] = [];
    let frameBytes = 0;
    for (let k = 0; k < commits; k++) {
      const marker = kind === 'bosun' ? `"name":"bench-${k}"` : `"marker":"bench-${k}"`;
      await client.call('watch', { marker });
      const { t0 } = await server.call('commit', { k, bytes: patchBytes });
      const { at, frameBytes: size } = await client.call<{ at: number[]; frameBytes: number }>('arrivals', {
        marker,
      });
      frameBytes = size;
      const lat = at.map((t) => t - (t0 ?? 0));
      all.push(...lat);
      last.push(Math.max(...lat));
      await new Promise((r) => setTimeout(r, 150));
    }

    await client.call('drop');
    for (let i = 0; i < 200 && ((await server.call('stats')).streams ?? 0) > 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const storm = await client.call('storm', { resume: kind === 'bosun' });
    const lastP50 = pct(last, 50);
    return {
      kibPerStream: perStream('rss'),
      heapKibPerStream: perStream('heap'),
      p50: pct(all, 50),
      p99: pct(all, 99),
      lastP50,
      lastP99: pct(last, 99),
      rate: n / (lastP50 / 1000),
      stormMs: storm.ms as number,
      putBytes: connected.putBytes as number,
      patchBytes: frameBytes,
    };
  } finally {
    await Promise.allSettled([client.call('close'), server.call('close')]);
  }
}

async function main(): Promise<void> {
  const counts = (arg('--counts') ?? '1000,5000').split(',').map(Number);
  const commits = Number(arg('--commits') ?? 15);
  if (counts.some((c) => !(c >= 1 && c <= 5000))) throw new Error('--counts: 1 to 5000 streams each');
  const hardLimit = setTimeout(() => {
    console.error('bench/stream: over its 3-minute limit; stopping');
    process.exit(2);
  }, 180_000);
  hardLimit.unref();
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`bench/stream — ${RELAYS} relays in one fleet, every stream on that fleet, loopback`);
  let ok = true;
  for (const n of counts) {
    const bosun = await measure('bosun', n, commits, 0, 0);
    // The baseline writes frames of bosun's sizes: same bytes on the wire.
    const base = await measure('baseline', n, commits, bosun.putBytes, bosun.patchBytes);
    const ratio = bosun.rate / base.rate;
    console.log(
      `\n${n.toLocaleString('en')} agent streams          bosun     node:http   bosun/base   target`,
    );
    const row = (name: string, b: string, a: string, r: string, t: string) =>
      console.log(`  ${name.padEnd(26)}${b.padStart(9)}  ${a.padStart(10)}  ${r.padStart(10)}   ${t}`);
    row(
      'RSS per idle stream',
      `${f(bosun.kibPerStream)} KiB`,
      `${f(base.kibPerStream)} KiB`,
      `${f(bosun.kibPerStream / base.kibPerStream, 2)}×`,
      '≤ 10 KB (≤ 1.2× baseline)',
    );
    row(
      'JS heap per idle stream',
      `${f(bosun.heapKibPerStream)} KiB`,
      `${f(base.heapKibPerStream)} KiB`,
      `${f(bosun.heapKibPerStream / base.heapKibPerStream, 2)}×`,
      '',
    );
    row('commit→patch p50 (each)', `${f(bosun.p50)} ms`, `${f(base.p50)} ms`, '', '');
    row('commit→patch p99 (each)', `${f(bosun.p99)} ms`, `${f(base.p99)} ms`, '', '');
    row('commit→every agent p50', `${f(bosun.lastP50)} ms`, `${f(base.lastP50)} ms`, '', '');
    row(
      'commit→every agent p99',
      `${f(bosun.lastP99)} ms`,
      `${f(base.lastP99)} ms`,
      '',
      n <= 1000 ? '≤ 100 ms' : '',
    );
    row('fan-out rate', `${f(bosun.rate / 1000)}k/s`, `${f(base.rate / 1000)}k/s`, f(ratio, 2), '≥ 0.5');
    row(
      'reconnect storm → resynced',
      `${f(bosun.stormMs / 1000, 2)} s`,
      `${f(base.stormMs / 1000, 2)} s`,
      '',
      '≤ 5 s',
    );
    console.log(
      `  (put ${bosun.putBytes} B, patch ${bosun.patchBytes} B; baseline frames: ${base.putBytes} B, ${base.patchBytes} B)`,
    );
    if (n <= 1000 && bosun.lastP99 > 100) ok = false;
    if (ratio < 0.5 || bosun.stormMs > 5000) ok = false;
  }
  console.log(ok ? '\ntargets met' : '\nsome targets missed (see above)');
}

switch (MODE) {
  case 'bosun':
    await bosunServer();
    break;
  case 'baseline':
    await baselineServer();
    break;
  case 'clients':
    await clients();
    break;
  default:
    await main();
    process.exit(0);
}
