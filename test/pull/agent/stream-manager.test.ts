/**
 * StreamManager against a scripted SSE server over real loopback HTTP, on a FakeClock with pinned
 * randomness. Test names start with the conformance case numbers of docs/stream-protocol.md §12.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep } from '../../../src/domain/clock.js';
import {
  StreamAuthError,
  StreamClosedError,
  StreamConfigError,
  StreamManager,
} from '../../../src/pull/agent/stream-manager.js';
import { fingerprint, type RelayRep } from '../../../src/pull/protocol.js';
import { FakeClock } from '../../support/clock.js';
import {
  type Ctx,
  OTHER_SECRET,
  Recorder,
  realPause,
  rep,
  type ScriptedConnection,
  SECRET,
  setup,
  waitFor,
} from '../harness.js';

let ctx: Ctx | undefined;
afterEach(async () => {
  await ctx?.close();
  ctx = undefined;
});

/** start(), answer the first request with a put, wait for start() to resolve. */
async function connected(
  c: Ctx,
  relays: RelayRep[],
  opts: { epoch?: string } = {},
): Promise<ScriptedConnection> {
  const started = c.manager.start();
  const conn = await c.server.next();
  conn.open().put(relays, opts);
  await started;
  return conn;
}

/** Advances fake time by `ms` while the server keeps the stream alive (bytes every 30 s). */
async function elapse(c: Ctx, conn: ScriptedConnection, ms: number): Promise<void> {
  for (let left = ms; left > 0; ) {
    const step = Math.min(30_000, left);
    await c.clock.advance(step);
    left -= step;
    await c.sync(conn);
  }
}

function heldHeader(conn: ScriptedConnection): string | undefined {
  return conn.headers['bosun-held-versions'] as string | undefined;
}

/** start(), and two attempts answered 500 (waits of 1 s, then 2 s): the third request. */
async function afterTwoFailures(c: Ctx): Promise<ScriptedConnection> {
  void c.manager.start();
  let conn = await c.server.next();
  for (const attempt of [1, 2]) {
    conn.respond(500);
    conn = await c.nextRequestAfter(await c.waitAfterEnd(attempt));
  }
  return conn;
}

/** Statuses as `state` or `state:kind:status`. */
function statusLine(c: Ctx): string[] {
  return c.rec.statuses.map((s) =>
    [s.state, s.error?.kind, s.error?.status].filter((x) => x !== undefined).join(':'),
  );
}

/** A sequence of callbacks on one line: `calls('add A@10; all')` is `['add A@10', 'all']`. */
const calls = (list: string): string[] => list.split('; ');

describe('transport and auth', () => {
  it('12: put {A10, B20} on empty state -> add A, add B, receivedAllRelays, then start() resolves', async () => {
    ctx = await setup();
    const c = ctx;
    const startPromise = c.manager.start();
    expect(c.manager.start()).toBe(startPromise);
    const started = startPromise.then(() => c.rec.calls.push('started'));
    const conn = await c.server.next();
    expect(conn.url).toBe('/v1/stream');
    expect(conn.headers.authorization).toBe('Bearer agent-token');
    expect(conn.headers.accept).toBe('text/event-stream');
    expect(conn.headers['cache-control']).toBe('no-cache');
    expect(conn.headers['bosun-epoch']).toBeUndefined();
    expect(heldHeader(conn)).toBeUndefined();
    conn.open().put([rep('B', 20), rep('A', 10)]);
    await started;
    expect(c.rec.calls).toEqual(['add A@10', 'add B@20', 'all', 'started']);
    expect(c.rec.reps.get('A')).toEqual(rep('A', 10));
    expect(statusLine(c)).toEqual(['initializing', 'valid']);
  });

  it.each([
    [401, StreamAuthError],
    [403, StreamAuthError],
    [404, StreamConfigError],
    [410, StreamConfigError],
    [302, StreamConfigError],
    [307, StreamConfigError],
  ])('2: first attempt %i -> start() rejects, the manager stops, no request in 1 h', async (status, type) => {
    ctx = await setup();
    const started = ctx.manager.start();
    const conn = await ctx.server.next();
    conn.respond(status, status < 400 ? { location: `${ctx.server.url}?followed` } : {});
    await expect(started).rejects.toBeInstanceOf(type);
    await expect(started).rejects.toMatchObject({ status });
    expect(ctx.clock.pending()).toBe(0);
    await ctx.clock.advance(3_600_000);
    await realPause(50);
    expect(ctx.server.count).toBe(1);
    expect(ctx.rec.calls).toEqual([]);
    await waitFor(() => ctx!.rec.statuses.at(-1)?.state === 'closed', 'closed status');
    expect(statusLine(ctx)).toEqual(['initializing', `closed:http:${status}`]);
  });

  it('2: a TLS certificate error before the first put -> StreamConfigError; after it -> extended curve', async () => {
    const certError = () =>
      Object.assign(new TypeError('fetch failed'), {
        cause: Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }),
      });
    const early = new StreamManager({
      url: 'https://127.0.0.1:1/v1/stream',
      token: 't',
      handler: new Recorder().handler,
      clock: new FakeClock(),
      random: () => 0,
      fetch: async () => {
        throw certError();
      },
    });
    await expect(early.start()).rejects.toBeInstanceOf(StreamConfigError);

    let attempt = 0;
    ctx = await setup({
      fetch: (input, init) => {
        if (++attempt > 1) return Promise.reject(certError());
        return fetch(input, init);
      },
    });
    const conn = await connected(ctx, [rep('A', 1)]);
    conn.end();
    expect(await ctx.waitAfterEnd(1)).toBe(1_000);
    await ctx.clock.advance(1_000);
    expect(await ctx.waitAfterEnd(2)).toBe(300_000);
    expect(statusLine(ctx).at(-1)).toBe('interrupted:tls');
    expect(ctx.rec.calls).toEqual(['add A@1', 'all']);
  });

  it('3: 500, 503 without Retry-After, 400, 408, non-SSE 200, dropped and refused connections are retried; start() resolves after a later put', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    let attempt = 0;
    ctx = await setup({
      fetch: (input, init) => {
        attempt++;
        return fetch(attempt === 7 ? `http://127.0.0.1:${closedPort}/v1/stream` : input, init);
      },
    });
    const c = ctx;
    let resolved = false;
    const started = c.manager.start().then(() => {
      resolved = true;
    });
    // attempt: answer -> expected failure kind, then the wait after it (r = 0)
    const answers: [(conn: ScriptedConnection) => void, string, number][] = [
      [(conn) => conn.respond(500), 'http:500', 1_000],
      [(conn) => conn.respond(503), 'http:503', 2_000],
      [(conn) => conn.respond(400), 'http:400', 4_000],
      [(conn) => conn.respond(408), 'http:408', 8_000],
      [(conn) => conn.respond(200, { 'content-type': 'application/json' }, '{}'), 'not_sse:200', 16_000],
      [(conn) => conn.destroy(), 'network', 30_000],
    ];
    let conn = await c.server.next();
    for (const [i, [answer, kind, wait]] of answers.entries()) {
      answer(conn);
      expect(await c.waitAfterEnd(i + 1)).toBe(wait);
      expect(statusLine(c).at(-1)).toBe(`initializing:${kind}`);
      if (i < answers.length - 1) conn = await c.nextRequestAfter(wait);
    }
    // attempt 7 goes to a closed port: connection refused
    await c.clock.advance(30_000);
    expect(await c.waitAfterEnd(7)).toBe(30_000);
    expect(statusLine(c).at(-1)).toBe('initializing:network');
    expect(c.server.count).toBe(6);
    conn = await c.nextRequestAfter(30_000);
    expect(resolved).toBe(false);
    conn
      .open()
      .write(': first comes a comment\n\n')
      .put([rep('A', 1)]);
    await started;
    expect(c.rec.calls).toEqual(['add A@1', 'all']);
    expect(attempt).toBe(8);
  });

  it('4: after a put, 401 -> unauthorized, relays kept, extended curve (300, 600, …, 3600 s at r=0); a put restores the normal curve', async () => {
    ctx = await setup();
    const c = ctx;
    const first = await connected(c, [rep('A', 10)]);
    first.end();
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    let conn = await c.nextRequestAfter(1_000);
    const waits = [300_000, 600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000];
    for (const [i, wait] of waits.entries()) {
      conn.respond(401);
      expect(await c.waitAfterEnd(i + 2)).toBe(wait);
      expect(statusLine(c).at(-1)).toBe('unauthorized:http:401');
      conn = await c.nextRequestAfter(wait);
    }
    expect(conn.headers['bosun-held-versions']).toBe('A=10');
    conn.open().put([rep('A', 10)]);
    await c.sync(conn);
    expect(c.rec.calls).toEqual(['add A@10', 'all', 'all']);
    expect(statusLine(c).at(-1)).toBe('valid');
    conn.end();
    // normal curve again; its counter (1 after the first drop) keeps growing: < 60 s healthy
    expect(await c.waitAfterEnd(8)).toBe(2_000);
  });

  it('4: extended waits with r→1 lie in (150, 300] s, (300, 600] s, …, never above 1 h; 403 and 404 too', async () => {
    ctx = await setup({ r: 0.999 });
    const c = ctx;
    const first = await connected(c, [rep('A', 10)]);
    first.end();
    let conn = await c.nextRequestAfter(await c.waitAfterEnd(1));
    const ranges = [
      [150_000, 300_000],
      [300_000, 600_000],
      [600_000, 1_200_000],
      [1_200_000, 2_400_000],
      [1_800_000, 3_600_000],
      [1_800_000, 3_600_000],
    ];
    for (const [i, [lo, hi]] of ranges.entries()) {
      conn.respond([401, 403, 404][i % 3]!);
      const wait = await c.waitAfterEnd(i + 2);
      expect(wait).toBeGreaterThan(lo!);
      expect(wait).toBeLessThanOrEqual(hi!);
      conn = await c.nextRequestAfter(wait);
    }
    expect(statusLine(c).slice(-3)).toEqual([
      'unauthorized:http:401',
      'unauthorized:http:403',
      'interrupted:http:404',
    ]);
    expect(c.rec.calls).toEqual(['add A@10', 'all']);
  });

  it('5: 503 + Retry-After: 120 -> no request before 120 s; 429 with an HTTP date; capped at 1 h', async () => {
    ctx = await setup();
    const c = ctx;
    void c.manager.start();
    let conn = await c.server.next();
    conn.respond(503, { 'retry-after': '120' });
    expect(await c.waitAfterEnd(1)).toBe(120_000);
    conn = await c.nextRequestAfter(120_000);
    c.r = 0.5;
    conn.respond(429, { 'retry-after': new Date(c.clock.now() + 90_000).toUTCString() });
    expect(await c.waitAfterEnd(2)).toBe(99_000); // 90 s · (1 + 0.2·0.5)
    conn = await c.nextRequestAfter(99_000);
    c.r = 0;
    conn.respond(503, { 'retry-after': '86400' });
    expect(await c.waitAfterEnd(3)).toBe(3_600_000);
    conn = await c.nextRequestAfter(3_600_000);
    // Retry-After shorter than the backoff: the backoff wins (4th failure: 8 s)
    conn.respond(503, { 'retry-after': '1' });
    expect(await c.waitAfterEnd(4)).toBe(8_000);
  });

  it('6: r=0 -> waits 1, 2, 4, 8, 16, 30, 30 s', async () => {
    ctx = await setup();
    void ctx.manager.start();
    let conn = await ctx.server.next();
    for (const [i, wait] of [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000].entries()) {
      conn.respond(500);
      expect(await ctx.waitAfterEnd(i + 1)).toBe(wait);
      conn = await ctx.nextRequestAfter(wait);
    }
    expect(ctx.server.count).toBe(8);
  });

  it('6: r→1 halves the waits', async () => {
    ctx = await setup({ r: 1 - 1e-6 });
    void ctx.manager.start();
    let conn = await ctx.server.next();
    for (const [i, d] of [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000].entries()) {
      conn.respond(500);
      const wait = await ctx.waitAfterEnd(i + 1);
      expect(wait).toBeGreaterThan(d / 2);
      expect(wait).toBeLessThan(d / 2 + d / 1000);
      conn = await ctx.nextRequestAfter(wait);
    }
  });

  it('6: after ≥ 60 s healthy the next wait is 1 s; after < 60 s it keeps growing', async () => {
    ctx = await setup();
    const c = ctx;
    let conn = await afterTwoFailures(c);
    /** The current stream healthy (a put, then keep-alives) for `ms`, then cut: the wait after attempt `n`. */
    const cutAfter = async (ms: number, cut: 'end' | 'destroy', n: number) => {
      conn.open().put([rep('A', 1)]);
      await c.sync(conn);
      await elapse(c, conn, ms);
      conn[cut]();
      return c.waitAfterEnd(n);
    };
    expect(await cutAfter(59_999, 'end', 3)).toBe(4_000);
    conn = await c.nextRequestAfter(4_000);
    expect(await cutAfter(60_000, 'destroy', 4)).toBe(1_000);
    conn = await c.nextRequestAfter(1_000);
    conn.respond(500);
    expect(await c.waitAfterEnd(5)).toBe(2_000);
  });

  it('7: `retry: 5000` -> next wait 5 s at r=0 and resets the counter; in (2.5, 5] s at r→1; clamped to 100 ms', async () => {
    ctx = await setup();
    const c = ctx;
    let conn = await afterTwoFailures(c);
    conn.open().write('retry: 5000\n\n');
    await c.sync(conn);
    conn.end();
    expect(await c.waitAfterEnd(3)).toBe(5_000);
    conn = await c.nextRequestAfter(5_000);
    c.r = 0.999;
    conn.respond(500);
    const wait = await c.waitAfterEnd(4);
    expect(wait).toBeGreaterThan(5_000);
    expect(wait).toBeLessThanOrEqual(10_000);
    conn = await c.nextRequestAfter(wait);
    conn.open().write('retry: 5000\n\n');
    await c.sync(conn);
    conn.end();
    const halved = await c.waitAfterEnd(5);
    expect(halved).toBeGreaterThan(2_500);
    expect(halved).toBeLessThanOrEqual(5_000);
    conn = await c.nextRequestAfter(halved);
    c.r = 0;
    conn.open().write('retry: 10\n\n');
    await c.sync(conn);
    conn.end();
    expect(await c.waitAfterEnd(6)).toBe(100);
    conn = await c.nextRequestAfter(100);
    conn.open().write('retry: 600000\n\n');
    await c.sync(conn);
    conn.end();
    expect(await c.waitAfterEnd(7)).toBe(30_000); // base clamped to 60 s, capped at 30 s
  });

  it('7: `retry: 10` during the extended curve changes nothing', async () => {
    ctx = await setup();
    const c = ctx;
    const first = await connected(c, [rep('A', 1)]);
    first.end();
    let conn = await c.nextRequestAfter(await c.waitAfterEnd(1));
    conn.respond(401);
    expect(await c.waitAfterEnd(2)).toBe(300_000);
    conn = await c.nextRequestAfter(300_000);
    conn.open().write('retry: 10\n\n');
    await c.sync(conn);
    conn.end();
    expect(await c.waitAfterEnd(3)).toBe(600_000);
  });
});

describe('framing', () => {
  /** A fetch whose body yields exactly the given chunks, then stays open. */
  function chunkedFetch(chunks: Uint8Array[]): typeof fetch {
    return async () => {
      let i = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (i < chunks.length) {
            controller.enqueue(chunks[i++]!);
            return;
          }
          return new Promise<void>(() => {});
        },
      });
      return new Response(body, {
        status: 200,
        headers: { 'content-type': 'text/event-stream; charset=utf-8' },
      });
    };
  }

  const unicode = (id: string, version: number, name: string) =>
    rep(id, version, { config: { ...rep(id, version).config, info: { name } } });
  const A10 = unicode('A', 10, 'Zoë — 東京 🚀');
  const B1 = unicode('B', 1, 'ünï\u2028cödé');
  const A11 = unicode('A', 11, '𝄞 clef');
  const script = [
    '\uFEFFretry: 2000\r\n',
    ': a comment\r\n',
    'id: ignored\r\n',
    '\r\n',
    'event: put\r\n',
    'data: {"path":"/","epoch":"e1",\r\n',
    `data: "data":{"relays":${JSON.stringify({ A: A10 })}}}\r\n`,
    '\r\n',
    'event: patch\r',
    `data: ${JSON.stringify({ path: 'relays/B', data: B1 })}\r`,
    '\r',
    'event: patch\n',
    'data: {"path":"relays/A",\n',
    `data: "data":${JSON.stringify(A11)}}\n`,
    '\n',
    'event: delete\r\n',
    'data: {"path":"relays/B","version":2}\r\n',
    '\r\n',
  ].join('');
  const bytes = new TextEncoder().encode(script);
  const expected = ['add A@10', 'all', 'add B@1', 'update A@11<10', 'delete B@2'];

  async function run(chunks: Uint8Array[]): Promise<{ calls: string[]; reps: Map<string, RelayRep> }> {
    const rec = new Recorder();
    let done!: () => void;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    rec.hooks.delete = () => done();
    const manager = new StreamManager({
      url: 'http://127.0.0.1:1/v1/stream',
      token: 't',
      handler: rec.handler,
      clock: new FakeClock(),
      random: () => 0,
      fetch: chunkedFetch(chunks),
    });
    await manager.start();
    await finished;
    await manager.close();
    return { calls: rec.calls, reps: rec.reps };
  }

  it('8: events split at every byte (inside UTF-8, between CR and LF), CRLF/CR/LF endings, multi-line data -> same callbacks', async () => {
    expect(bytes.length).toBeGreaterThan(script.length); // there are multi-byte characters to split
    const whole = await run([bytes]);
    expect(whole.calls).toEqual(expected);
    expect(whole.reps.get('A')).toEqual(A11);
    expect(whole.reps.get('B')).toEqual(B1);
    for (let i = 1; i < bytes.length; i++) {
      const split = await run([bytes.slice(0, i), bytes.slice(i)]);
      expect(split.calls, `split at byte ${i}`).toEqual(expected);
      expect(split.reps.get('A'), `split at byte ${i}`).toEqual(A11);
      expect(split.reps.get('B'), `split at byte ${i}`).toEqual(B1);
    }
    const single = await run([...bytes].map((b) => Uint8Array.of(b)));
    expect(single.calls).toEqual(expected);
    expect(single.reps.get('A')).toEqual(A11);
  });

  it('8: the same script over real loopback in three writes', async () => {
    ctx = await setup();
    const started = ctx.manager.start();
    const conn = await ctx.server.next();
    conn.open();
    const cut1 = script.indexOf('東') + 1; // a JS string index; written as UTF-8 by the server
    const cut2 = script.indexOf('\r', script.indexOf('event: delete'));
    conn.write(script.slice(0, cut1));
    await realPause(10);
    conn.write(script.slice(cut1, cut2 + 1));
    await realPause(10);
    conn.write(script.slice(cut2 + 1));
    await started;
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(expected);
    expect(ctx.rec.reps.get('A')).toEqual(A11);
  });

  it('9: 40 s of comments only -> no timeout; 45 s of silence -> abort, reconnect with backoff', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 1)]);
    for (let t = 0; t < 4; t++) {
      await c.clock.advance(10_000);
      conn.write(': hb\n');
      await waitFor(() => c.clock.nextDue() === c.clock.now() + 45_000, 'the read timer to restart');
    }
    expect(c.rec.ends()).toEqual([]);
    await c.clock.advance(44_999);
    await realPause();
    expect(c.rec.ends()).toEqual([]);
    expect(conn.isClosed).toBe(false);
    await c.clock.advance(1);
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(c).at(-1)).toBe('interrupted:timeout');
    await conn.closed; // the request was aborted
    const next = await c.nextRequestAfter(1_000);
    expect(next.headers['bosun-held-versions']).toBe('A=1');
    expect(c.rec.calls).toEqual(['add A@1', 'all']);
  });

  it('9: no response headers for 45 s -> timeout, normal backoff', async () => {
    ctx = await setup();
    void ctx.manager.start();
    const conn = await ctx.server.next();
    await ctx.clock.advance(45_000);
    expect(await ctx.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(ctx).at(-1)).toBe('initializing:timeout');
    await conn.closed;
  });

  it('10: unknown events, paths and fields are ignored; a put with path != / is ignored without receivedAllRelays', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 10)]);
    conn.event('hello', { path: 'relays/A', data: rep('A', 99) });
    conn.write(`data: ${JSON.stringify({ path: 'relays/A', data: rep('A', 98) })}\n\n`); // no event name
    conn.patch(rep('x', 1), 'filters/x');
    conn.event('delete', { path: 'filters/A', version: 50 });
    conn.put([rep('B', 1)], { path: '/filters' });
    conn.write('foo: bar\nid: 7\n\n');
    conn.event('patch', { path: 'relays/A', data: { ...rep('A', 11), extra: { deep: true } }, unknown: 1 });
    conn.event('put', {
      path: '/',
      epoch: 'e1',
      data: { relays: { A: rep('A', 11) }, future: [1] },
      more: 'x',
    });
    await c.sync(conn);
    expect(c.rec.calls).toEqual(['add A@10', 'all', 'update A@11<10', 'all']);
    expect(c.rec.reps.get('A')).toEqual(rep('A', 11)); // unknown fields dropped
    expect(c.server.count).toBe(1);
  });

  const A11json = JSON.stringify(rep('A', 11));
  it.each([
    ['put', 'not JSON', '{"path":"/",'],
    ['put', '"data":999', `{"path":"/","epoch":"e1","data":999}`],
    ['put', '"path":999', `{"path":999,"epoch":"e1","data":{"relays":{"A":${A11json}}}}`],
    ['put', '"relays":[]', `{"path":"/","epoch":"e1","data":{"relays":[${A11json}]}}`],
    ['patch', 'not JSON', `{"path":"relays/A","data":${A11json}`],
    ['patch', '"data":999', '{"path":"relays/A","data":999}'],
    ['patch', '"path":999', `{"path":999,"data":${A11json}}`],
    ['delete', 'not JSON', 'relays/A 11'],
    ['delete', '"version":"11"', '{"path":"relays/A","version":"11"}'],
    ['delete', '"path":999', '{"path":999,"version":11}'],
  ])('11: malformed %s (%s) -> no callback, restart, no version recorded', async (event, _what, data) => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 10)]);
    conn.write(`event: ${event}\ndata: ${data}\n\n`);
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(c).at(-1)).toBe('interrupted:malformed');
    await conn.closed;
    const next = await c.nextRequestAfter(1_000);
    expect(next.headers['bosun-epoch']).toBe('e1');
    expect(heldHeader(next)).toBe('A=10');
    expect(c.rec.calls).toEqual(['add A@10', 'all']);
    expect(JSON.stringify(c.logs)).not.toContain(SECRET);
  });

  it('11: patch or delete before the connection’s put is malformed', async () => {
    ctx = await setup();
    void ctx.manager.start();
    const conn = await ctx.server.next();
    conn.open().patch(rep('A', 1));
    expect(await ctx.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(ctx).at(-1)).toBe('initializing:malformed');
    expect(ctx.rec.calls).toEqual([]);
  });
});

describe('versions', () => {
  it('13: put {A10, B20, C1} -> only add C; then put {A11, B20} -> delete(C, null) before update A', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('A', 10), rep('B', 20)]);
    conn.put([rep('A', 10), rep('B', 20), rep('C', 1)]);
    conn.put([rep('A', 11), rep('B', 20)]);
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(
      calls('add A@10; add B@20; all; add C@1; all; delete C@null; update A@11<10; all'),
    );
  });

  it('14: put with A still v10 but changed content -> no callback, a warning without the content', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('A', 10)]);
    conn.put([rep('A', 10, { secret: OTHER_SECRET })]);
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['add A@10', 'all', 'all']);
    const warnings = ctx.logs.filter((l) => l.level === 'warn');
    expect(warnings).toEqual([expect.objectContaining({ obj: { id: 'A', version: 10 } })]);
    expect(JSON.stringify(ctx.logs)).not.toContain(OTHER_SECRET);
    // the same content again: no warning
    conn.put([rep('A', 10)]);
    await ctx.sync(conn);
    expect(ctx.logs.filter((l) => l.level === 'warn')).toHaveLength(1);
  });

  it('15: put {B} -> delete(A, null); patch A10 ignored; patch A11 -> add; empty put -> delete all, receivedAllRelays', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('A', 10)]);
    conn.put([rep('B', 1)]);
    conn.patch(rep('A', 10));
    conn.patch(rep('A', 11));
    conn.put([]);
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(
      calls('add A@10; all; delete A@null; add B@1; all; add A@11; delete A@null; delete B@null; all'),
    );
  });

  it('16: unknown id patched -> add; v ≤ h ignored; v > h -> update', async () => {
    ctx = await setup();
    const conn = await connected(ctx, []);
    conn.patch(rep('X', 5));
    conn.patch(rep('X', 5));
    conn.patch(rep('X', 4));
    conn.patch(rep('X', 6));
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['all', 'add X@5', 'update X@6<5']);
  });

  it('17: A@10: delete v11 -> delete; patch v10, delete v11, delete v12, patch v12 -> nothing; patch v13 -> add', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('A', 10)]);
    conn.del('A', 11);
    conn.patch(rep('A', 10));
    conn.del('A', 11);
    conn.del('A', 12);
    conn.patch(rep('A', 12));
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['add A@10', 'all', 'delete A@11']);
    conn.patch(rep('A', 13));
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['add A@10', 'all', 'delete A@11', 'add A@13']);
  });

  it('18: delete of unknown id v5, then patch v4 -> nothing; patch v6 -> add; delete v ≤ h of a live relay -> ignored', async () => {
    ctx = await setup();
    const conn = await connected(ctx, []);
    conn.del('U', 5);
    conn.patch(rep('U', 4));
    conn.patch(rep('U', 6));
    conn.del('U', 6);
    conn.del('U', 2);
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['all', 'add U@6']);
    conn.del('U', 7);
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['all', 'add U@6', 'delete U@7']);
  });

  it('19: put entry whose key differs from its id -> refused, the others apply, no restart', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('k1', 1)]);
    conn.put({ k1: rep('k2', 2), A: rep('A', 1) });
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['add k1@1', 'all', 'add A@1', 'invalid k1', 'all']);
    expect(ctx.rec.reasons).toEqual(['id: k2 differs from k1']);
    expect(ctx.server.count).toBe(1);
  });

  it('19: patch relays/x with data.id y -> not applied (refused per §3), restart', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('x', 1)]);
    conn.patch(rep('y', 2), 'relays/x');
    expect(await ctx.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(ctx).at(-1)).toBe('interrupted:refused');
    expect(ctx.rec.calls).toEqual(['add x@1', 'all', 'invalid x']);
    const next = await ctx.nextRequestAfter(1_000);
    expect(heldHeader(next)).toBe('x=1');
  });

  it('20: refused entries (id ../x, version 0, config not an object) -> onInvalidRelay only; a valid rep at the same version later applies', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 10), rep('B', 20)]);
    conn.put({
      '../x': rep('../x', 1),
      A: { ...rep('A', 11), version: 0 },
      B: { ...rep('B', 21), config: 'not an object' },
      C: rep('C', 1, { secret: 'not hex' }),
    });
    await c.sync(conn);
    expect(c.rec.calls).toEqual(
      calls('add A@10; add B@20; all; invalid ../x; invalid A; invalid B; invalid C; all'),
    );
    expect(c.rec.reasons).toEqual([
      expect.stringMatching(/^id: /),
      expect.stringMatching(/^version: /),
      expect.stringMatching(/^config: /),
      expect.stringMatching(/^secret: /),
    ]);
    expect(JSON.stringify(c.rec.reasons)).not.toContain('not an object');
    expect(c.server.count).toBe(1); // a put with refusals does not restart
    conn.put([rep('A', 11), rep('B', 21), rep('C', 1)]);
    await c.sync(conn);
    expect(c.rec.calls.slice(8)).toEqual(['update A@11<10', 'update B@21<20', 'add C@1', 'all']);
    // a refused patch restarts; the same version, valid, applies later
    conn.patch({ ...rep('B', 22), config: [] });
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(c).at(-1)).toBe('interrupted:refused');
    const next = await c.nextRequestAfter(1_000);
    expect(heldHeader(next)).toBe('A=11,B=21,C=1');
    next
      .open()
      .put([rep('A', 11), rep('B', 21), rep('C', 1)])
      .patch(rep('B', 22));
    await c.sync(next);
    expect(c.rec.calls.slice(12)).toEqual(['invalid B', 'all', 'update B@22<21']);
  });

  it('21: updateRelay rejects -> version not recorded, onError, no receivedAllRelays, restart; the next put calls updateRelay again', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 10), rep('B', 1)]);
    let fail = true;
    c.rec.hooks.update = async () => {
      if (fail) {
        fail = false;
        throw new Error('disk full');
      }
    };
    conn.put([rep('A', 11), rep('B', 1), rep('C', 1)]);
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    expect(statusLine(c).at(-1)).toBe('interrupted:callback');
    expect(c.rec.calls).toEqual(['add A@10', 'add B@1', 'all', 'update A@11<10', 'error']);
    expect(c.rec.errors[0]?.message).toBe('disk full');
    const next = await c.nextRequestAfter(1_000);
    expect(heldHeader(next)).toBe('A=10,B=1');
    next.open().put([rep('A', 11), rep('B', 1), rep('C', 1)]);
    await c.sync(next);
    expect(c.rec.calls.slice(5)).toEqual(['update A@11<10', 'add C@1', 'all']);
  });

  it('21: a throwing deleteRelay keeps the relay live', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 10)]);
    c.rec.hooks.delete = () => {
      throw new Error('busy');
    };
    conn.del('A', 11);
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    const next = await c.nextRequestAfter(1_000);
    expect(heldHeader(next)).toBe('A=10');
  });

  it('22: an async addRelay taking 100 ms while two events arrive -> they run after it, in order; nothing is read meanwhile', async () => {
    ctx = await setup();
    const c = ctx;
    const started = c.manager.start();
    const conn = await c.server.next();
    c.rec.hooks.add = async (r) => {
      if (r.id !== 'A') return;
      await sleep(c.clock, 100);
      c.rec.calls.push('add A done');
    };
    conn
      .open()
      .put([rep('A', 1)])
      .patch(rep('B', 1))
      .patch(rep('A', 2));
    await waitFor(() => c.rec.calls.length === 1, 'addRelay to start');
    await realPause(30);
    expect(c.rec.calls).toEqual(['add A@1']);
    expect(c.clock.pending()).toBe(1); // only the 100 ms: no read timer while the handler runs
    await c.clock.advance(100);
    await started;
    await c.sync(conn);
    expect(c.rec.calls).toEqual(['add A@1', 'add A done', 'all', 'add B@1', 'update A@2<1']);
  });
});

describe('resume and epoch', () => {
  it('23: held {A10, B20}, server {A11, B20, C1} -> delta put relays {A, C}, unchanged [B] -> update A, add C, receivedAllRelays', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { B: 20, A: 10 } } });
    const started = ctx.manager.start();
    const conn = await ctx.server.next();
    expect(conn.headers['bosun-epoch']).toBe('e1');
    expect(heldHeader(conn)).toBe('A=10,B=20');
    conn.open().put([rep('A', 11), rep('C', 1)], { delta: true, unchanged: ['B'] });
    await started;
    expect(ctx.rec.calls).toEqual(['update A@11<10', 'add C@1', 'all']);
  });

  it('24: a delta put omitting a held relay -> delete', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { A: 10, B: 20 } } });
    const started = ctx.manager.start();
    const conn = await ctx.server.next();
    conn.open().put([rep('C', 1)], { delta: true, unchanged: ['B'] });
    await started;
    expect(ctx.rec.calls).toEqual(['delete A@null', 'add C@1', 'all']);
  });

  it('24: `unchanged` naming an unheld id -> no callbacks; reconnect at once without resume headers', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { A: 10 } } });
    const c = ctx;
    const started = c.manager.start();
    const conn = await c.server.next();
    expect(heldHeader(conn)).toBe('A=10');
    conn.open().put([rep('C', 1)], { delta: true, unchanged: ['A', 'Z'] });
    const next = await c.server.next(); // no fake time passes
    expect(statusLine(c).at(-1)).toBe('initializing:resync');
    expect(next.headers['bosun-epoch']).toBeUndefined();
    expect(heldHeader(next)).toBeUndefined();
    expect(c.rec.calls).toEqual([]);
    next.open().put([rep('A', 10), rep('C', 1)]);
    await started;
    expect(c.rec.calls).toEqual(['add C@1', 'all']);
    // the resync was no failure: the next failure waits 1 s
    next.end();
    expect(await c.waitAfterEnd(2)).toBe(1_000);
  });

  it('24: a delta put from another epoch is not trusted either', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { A: 10 } } });
    void ctx.manager.start();
    const conn = await ctx.server.next();
    conn.open().put([], { delta: true, unchanged: ['A'], epoch: 'e2' });
    const next = await ctx.server.next();
    expect(heldHeader(next)).toBeUndefined();
    expect(ctx.rec.calls).toEqual([]);
  });

  /** The first request of a manager holding `n` relays of epoch e1 (relay-0000=1000, …). */
  async function firstRequestHolding(n: number): Promise<ScriptedConnection> {
    const relays: Record<string, number> = {};
    for (let i = 0; i < n; i++) relays[`relay-${String(i).padStart(4, '0')}`] = 1000 + i;
    ctx = await setup({ initialState: { epoch: 'e1', relays } });
    void ctx.manager.start();
    return ctx.server.next();
  }

  it('25: a resume header over 8 KiB is not sent', async () => {
    const conn = await firstRequestHolding(513);
    expect(conn.headers['bosun-epoch']).toBeUndefined();
    expect(heldHeader(conn)).toBeUndefined();
  });

  it('25: up to 8 KiB is sent', async () => {
    const conn = await firstRequestHolding(512);
    expect(conn.headers['bosun-epoch']).toBe('e1');
    expect(heldHeader(conn)?.length).toBe(8191);
    expect(heldHeader(conn)?.startsWith('relay-0000=1000,relay-0001=1001,')).toBe(true);
  });

  it('26: new epoch with A v5 while holding A v9 -> update A (v5); tombstones cleared', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 9), rep('B', 3), rep('T', 3)]);
    conn.del('T', 4);
    conn.put([rep('A', 5), rep('B', 3)], { epoch: 'e2' });
    conn.patch(rep('T', 1)); // the tombstone T@4 belonged to e1
    await c.sync(conn);
    expect(c.rec.calls).toEqual(
      calls('add A@9; add B@3; add T@3; all; delete T@4; update A@5<9; all; add T@1'),
    );
    conn.end();
    const next = await c.nextRequestAfter(await c.waitAfterEnd(1));
    expect(next.headers['bosun-epoch']).toBe('e2');
    expect(heldHeader(next)).toBe('A=5,B=3,T=1');
  });

  it('26: the new epoch is recorded only once its put is fully applied', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [rep('A', 9), rep('B', 3)]);
    c.rec.hooks.update = (r) => {
      if (r.id === 'B') throw new Error('no');
    };
    conn.put([rep('A', 5), rep('B', 1)], { epoch: 'e2' });
    const next = await c.nextRequestAfter(await c.waitAfterEnd(1));
    expect(next.headers['bosun-epoch']).toBe('e1');
    expect(heldHeader(next)).toBe('A=5,B=3');
    c.rec.hooks.update = undefined;
    next.open().put([rep('A', 5), rep('B', 1)], { epoch: 'e2' });
    await c.sync(next);
    expect(c.rec.calls.slice(3)).toEqual(['update A@5<9', 'update B@1<3', 'error', 'update B@1<3', 'all']);
  });

  it('27: agent restarts holding {A10} (file present); put {B1} -> delete A, add B, no add A', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { A: 10 } } });
    const conn = await connected(ctx, [rep('B', 1)]);
    expect(ctx.rec.calls).toEqual(['delete A@null', 'add B@1', 'all']);
    // A is now tomb@10: the same version cannot bring it back, a later one can
    conn.put([rep('A', 10), rep('B', 1)]);
    conn.put([rep('A', 11), rep('B', 1)]);
    await ctx.sync(conn);
    expect(ctx.rec.calls.slice(3)).toEqual(['all', 'add A@11', 'all']);
  });

  it('27: held A whose file went missing (dropped from the saved state) -> add A', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: {} } });
    await connected(ctx, [rep('A', 10)]);
    expect(ctx.rec.calls).toEqual(['add A@10', 'all']);
  });

  it('snapshot() shows the recorded epoch and live versions, changes only after their callback', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { A: 10 } } });
    const c = ctx;
    expect(c.manager.snapshot()).toEqual({ epoch: 'e1', relays: { A: 10 } });
    const seen: unknown[] = [];
    c.rec.hooks.add = () => {
      seen.push(c.manager.snapshot());
    };
    c.rec.hooks.all = () => {
      seen.push(c.manager.snapshot());
    };
    const conn = await connected(c, [rep('A', 10), rep('B', 2)], { epoch: 'e2' });
    expect(seen).toEqual([
      { epoch: 'e1', relays: { A: 10 } },
      { epoch: 'e1', relays: { A: 10, B: 2 } },
    ]);
    expect(c.manager.snapshot()).toEqual({ epoch: 'e2', relays: { A: 10, B: 2 } });
    conn.del('A', 11);
    await c.sync(conn);
    expect(c.manager.snapshot()).toEqual({ epoch: 'e2', relays: { B: 2 } });
  });

  it('27: saved relays at their version cause no callback', async () => {
    ctx = await setup({ initialState: { epoch: 'e1', relays: { A: 10, B: 2 } } });
    const conn = await connected(ctx, [rep('A', 10), rep('B', 3)]);
    expect(ctx.rec.calls).toEqual(['update B@3<2', 'all']);
    conn.put([rep('A', 10), rep('B', 3)]);
    await ctx.sync(conn);
    expect(ctx.rec.calls).toEqual(['update B@3<2', 'all', 'all']);
  });
});

describe('expiry', () => {
  const cred = (value: string, expiresAt: number) => ({ name: 'secret', value, expiresAt });

  it('28: a credential expiring in 300 ms -> keyExpired exactly once at expiry, not before', async () => {
    ctx = await setup();
    const c = ctx;
    const at = c.clock.now() + 300;
    const conn = await connected(c, [rep('A', 10, { expiring: [cred(OTHER_SECRET, at)] })]);
    expect(c.rec.reps.get('A')?.expiring).toEqual([cred(OTHER_SECRET, at)]);
    await c.clock.advance(299);
    await realPause();
    expect(c.rec.calls).toEqual(['add A@10', 'all']);
    await c.clock.advance(1);
    await waitFor(() => c.rec.calls.length === 3, 'keyExpired');
    expect(c.rec.calls[2]).toBe(`expired A secret:${fingerprint(OTHER_SECRET)}`);
    // the held rep dropped it: a repeat of the same rep changes nothing; a newer rep no longer lists it
    conn.put([rep('A', 10, { expiring: [cred(OTHER_SECRET, at)] })]);
    conn.patch(rep('A', 11, { expiring: [cred(OTHER_SECRET, at)] }));
    await c.sync(conn);
    await c.clock.advance(10_000);
    await c.sync(conn);
    expect(c.rec.calls).toEqual(
      calls(`add A@10; all; expired A secret:${fingerprint(OTHER_SECRET)}; all; update A@11<10`),
    );
    expect(c.rec.reps.get('A')?.expiring).toEqual([]);
    expect(JSON.stringify(c.logs)).not.toContain(OTHER_SECRET);
  });

  it('29: an already-expired credential is stripped, no keyExpired; a repeat with another expiresAt keeps the first', async () => {
    ctx = await setup();
    const c = ctx;
    const now = c.clock.now();
    const k1 = '11'.repeat(32);
    const k2 = '22'.repeat(32);
    const conn = await connected(c, [
      rep('A', 10, { expiring: [cred(k1, now - 1), cred(k2, now), cred(OTHER_SECRET, now + 1_000)] }),
    ]);
    expect(c.rec.reps.get('A')?.expiring).toEqual([cred(OTHER_SECRET, now + 1_000)]);
    conn.patch(
      rep('A', 11, { expiring: [cred(OTHER_SECRET, now + 5_000), cred(OTHER_SECRET, now + 7_000)] }),
    );
    await c.sync(conn);
    expect(c.rec.reps.get('A')?.expiring).toEqual([cred(OTHER_SECRET, now + 1_000)]);
    expect(c.logs.filter((l) => l.level === 'warn').map((l) => l.obj)).toEqual([{ id: 'A', name: 'secret' }]);
    await c.clock.advance(1_000);
    await waitFor(() => c.rec.calls.length === 4, 'keyExpired');
    await c.clock.advance(10_000);
    await c.sync(conn);
    expect(c.rec.calls).toEqual(
      calls(`add A@10; all; update A@11<10; expired A secret:${fingerprint(OTHER_SECRET)}`),
    );
  });

  it('30: no keyExpired after a newer rep drops it, after delete, or after close()', async () => {
    ctx = await setup();
    const c = ctx;
    const now = c.clock.now();
    const conn = await connected(c, [
      rep('A', 1, { expiring: [cred(OTHER_SECRET, now + 1_000)] }),
      rep('B', 1, { expiring: [cred(OTHER_SECRET, now + 1_000)] }),
      rep('C', 1, { expiring: [cred(OTHER_SECRET, now + 1_000)] }),
    ]);
    conn.patch(rep('A', 2));
    conn.del('B', 2);
    await c.sync(conn);
    expect(c.clock.pending()).toBe(2); // read timer + C's credential
    await c.manager.close();
    expect(c.clock.pending()).toBe(0);
    await c.clock.advance(5_000);
    await realPause();
    expect(c.rec.calls).toEqual(['add A@1', 'add B@1', 'add C@1', 'all', 'update A@2<1', 'delete B@2']);
  });

  it('30: expiresAt 40 days ahead does not fire early (timers re-armed in ≤ 2^31−1 ms steps)', async () => {
    const day = 86_400_000;
    let calls = 0;
    const clock = new FakeClock();
    const at = clock.now() + 40 * day;
    const rec = new Recorder();
    // first a put with the credential, then 503s with Retry-After 1 h: the stream stays quiet
    const fetchFn: typeof fetch = async () => {
      calls++;
      if (calls > 1) return new Response('{}', { status: 503, headers: { 'retry-after': '3600' } });
      const body = `event: put\ndata: ${JSON.stringify({
        path: '/',
        epoch: 'e1',
        data: { relays: { A: rep('A', 1, { expiring: [cred(OTHER_SECRET, at)] }) } },
      })}\n\n`;
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    };
    const manager = new StreamManager({
      url: 'http://127.0.0.1:1/v1/stream',
      token: 't',
      handler: rec.handler,
      clock,
      random: () => 0,
      fetch: fetchFn,
    });
    await manager.start();
    try {
      for (let t = 0; t < 40; t++) {
        await clock.advance(t === 39 ? day - 1 : day);
        expect(rec.calls.filter((x) => x.startsWith('expired'))).toEqual([]);
      }
      expect(clock.now()).toBe(at - 1);
      await clock.advance(1);
      expect(rec.calls.filter((x) => x.startsWith('expired'))).toEqual([
        `expired A secret:${fingerprint(OTHER_SECRET)}`,
      ]);
      expect(calls).toBeGreaterThan(900); // it kept reconnecting meanwhile
    } finally {
      await manager.close();
    }
  });
});

describe('lifecycle', () => {
  it('31: `reconnect` delayMs 1000 -> new request within 1 s, no callbacks, no failure; a 4th within 60 s grows the backoff', async () => {
    ctx = await setup({ r: 0.5 });
    const c = ctx;
    let conn = await connected(c, [rep('A', 10)]);
    conn.event('reconnect', { reason: 'draining', delayMs: 1000 });
    expect(await c.waitAfterEnd(1)).toBe(500);
    expect(statusLine(c).at(-1)).toBe('interrupted:reconnect');
    await conn.closed;
    conn = await c.nextRequestAfter(500);
    expect(heldHeader(conn)).toBe('A=10');
    conn
      .open()
      .put([rep('A', 10)])
      .event('reconnect', {});
    expect(await c.waitAfterEnd(2)).toBe(500); // r · b
    conn = await c.nextRequestAfter(500);
    conn
      .open()
      .put([rep('A', 10)])
      .event('reconnect', { delayMs: 2000 });
    expect(await c.waitAfterEnd(3)).toBe(1_000);
    conn = await c.nextRequestAfter(1_000);
    conn
      .open()
      .put([rep('A', 10)])
      .event('reconnect', { delayMs: 1000 });
    expect(await c.waitAfterEnd(4)).toBe(750); // a failure: the 1st of the normal curve, 1 s − 0.5·0.5 s
    expect(statusLine(c).at(-1)).toBe('interrupted:reconnects');
    conn = await c.nextRequestAfter(750);
    conn.respond(500);
    expect(await c.waitAfterEnd(5)).toBe(1_500); // grown
    expect(c.rec.calls).toEqual(['add A@10', 'all', 'all', 'all', 'all']);
  });

  it('31: reconnects more than 60 s apart are never failures; r=0 reconnects at once', async () => {
    ctx = await setup();
    const c = ctx;
    let conn = await connected(c, [rep('A', 10)]);
    for (let i = 1; i <= 5; i++) {
      await elapse(c, conn, 60_000);
      conn.event('reconnect', { delayMs: 10_000 });
      conn = await c.server.next(); // r = 0: no fake time passes
      expect(c.rec.ends().map((s) => s.error?.kind)).toEqual(Array(i).fill('reconnect'));
      conn.open().put([rep('A', 10)]);
      await c.sync(conn);
    }
    conn.end();
    expect(await c.waitAfterEnd(6)).toBe(1_000);
  });

  it('32: close() mid-backoff returns at once, no more requests; pending start() rejects StreamClosedError; both twice are safe', async () => {
    ctx = await setup();
    const c = ctx;
    const started = c.manager.start();
    const conn = await c.server.next();
    conn.respond(500);
    expect(await c.waitAfterEnd(1)).toBe(1_000);
    const t0 = Date.now();
    await c.manager.close();
    expect(Date.now() - t0).toBeLessThan(200);
    await expect(started).rejects.toBeInstanceOf(StreamClosedError);
    expect(c.manager.start()).toBe(started);
    await c.manager.close();
    expect(c.clock.pending()).toBe(0);
    await c.clock.advance(3_600_000);
    await realPause(50);
    expect(c.server.count).toBe(1);
    expect(statusLine(c)).toEqual(['initializing', 'initializing:http:500', 'closed']);
  });

  it('32: close() aborts an open stream at once; close() before start() makes start() reject', async () => {
    ctx = await setup();
    const conn = await connected(ctx, [rep('A', 1)]);
    await ctx.manager.close();
    await conn.closed;
    expect(ctx.clock.pending()).toBe(0);

    const other = await setup();
    try {
      await other.manager.close();
      await expect(other.manager.start()).rejects.toBeInstanceOf(StreamClosedError);
      await realPause();
      expect(other.server.count).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('32: close() during a callback waits for it; no callback runs after close() resolves', async () => {
    ctx = await setup();
    const c = ctx;
    const started = c.manager.start();
    const conn = await c.server.next();
    let release!: () => void;
    c.rec.hooks.add = (r) =>
      r.id === 'A'
        ? new Promise<void>((resolve) => {
            release = resolve;
          })
        : undefined;
    conn.open().put([rep('A', 1), rep('B', 1)]);
    await waitFor(() => c.rec.calls.length === 1, 'addRelay(A)');
    let closed = false;
    const closing = c.manager.close().then(() => {
      closed = true;
    });
    await realPause();
    expect(closed).toBe(false);
    release();
    await closing;
    await expect(started).rejects.toBeInstanceOf(StreamClosedError);
    const after = c.rec.calls.length;
    const statuses = c.rec.statuses.length;
    await c.clock.advance(60_000);
    await realPause();
    expect(c.rec.calls).toEqual(['add A@1']);
    expect(c.rec.calls.length).toBe(after);
    expect(c.rec.statuses.length).toBe(statuses);
    expect(c.rec.statuses.at(-1)?.state).toBe('closed');
  });

  it('37 (client side): no secret value reaches a log line', async () => {
    ctx = await setup();
    const c = ctx;
    const conn = await connected(c, [
      rep('A', 1, { expiring: [{ name: 'secret', value: OTHER_SECRET, expiresAt: c.clock.now() + 10 }] }),
    ]);
    conn.patch(rep('A', 2, { secret: OTHER_SECRET }));
    conn.put({ A: rep('A', 3), B: { ...rep('B', 1), version: 'x' } });
    await c.sync(conn);
    await c.clock.advance(10);
    conn.write('event: put\ndata: {"path":"/","data":{"relays":{"A":"' + SECRET + '"\n\n');
    await c.waitAfterEnd(1);
    const text = JSON.stringify(c.logs);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(OTHER_SECRET);
    expect(text).not.toContain('agent-token');
  });
});
