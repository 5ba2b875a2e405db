import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { rawRequest, snapshot } from './helpers.js';

/** Limits low enough to reach within a test. */
const TIGHT_LIMITS = {
  BOSUN_HTTP_HEADERS_TIMEOUT_MS: '500',
  BOSUN_HTTP_REQUEST_TIMEOUT_MS: '1500',
  BOSUN_STREAM_MAX_CONNECTIONS: '2',
};

/**
 * Resource limits against hostile clients: oversize bodies (413 before anything is written),
 * slow-loris clients (cut by the header / request timeouts while everyone else is served), and too
 * many agent streams (503 + Retry-After).
 */
describe('hostile input: limits', () => {
  let s: TestServer;
  const owner = keypair();
  let agentToken: string;

  beforeAll(async () => {
    s = await startServer({ env: TIGHT_LIMITS });
    agentToken = (await s.api('POST', '/v1/tokens', { role: 'agent', fleet: 'default' })).body.token;
    expect((await s.api('POST', '/v1/relays', relayBody('r1', owner.pubkey))).status).toBe(201);
  });
  afterAll(async () => {
    await s.close();
  });

  const head = (method: string, path: string, extra: string[] = [], token = ADMIN_TOKEN) =>
    [
      `${method} ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      `Authorization: Bearer ${token}`,
      ...extra,
    ]
      .join('\r\n')
      .concat('\r\n\r\n');

  it('oversize bodies get 413 (announced or chunked) and write nothing', async () => {
    const before = await snapshot(s);
    const big = JSON.stringify({
      ...relayBody('big', owner.pubkey),
      info: { pubkey: owner.pubkey, about: 'x'.repeat(1 << 20) },
    });
    for (const [method, path] of [
      ['POST', '/v1/relays'],
      ['PATCH', '/v1/relays/r1'],
      ['POST', '/v1/relays/r1/rotate-secret'],
      ['POST', '/v1/tokens'],
    ]) {
      const res = await s.api(method!, path!, big);
      expect(res.status, `${method} ${path}`).toBe(413);
      expect(res.body.error.code).toBe('body_too_large');
      // Chunked, no Content-Length: cut once the limit is crossed.
      const chunked = await rawRequest(
        s.url,
        head(method!, path!, ['Content-Type: application/json', 'Transfer-Encoding: chunked']) +
          `${(big.length).toString(16)}\r\n${big}\r\n0\r\n\r\n`,
      );
      expect(chunked.status, `chunked ${method} ${path}`).toBe(413);
    }
    // Fleet routes: 64 MiB; a larger Content-Length is refused before the body is read…
    const huge = await rawRequest(
      s.url,
      head('POST', '/v1/fleets/f/apply', [
        'Content-Type: application/json',
        `Content-Length: ${65 * 1024 * 1024}`,
      ]),
    );
    expect(huge.status).toBe(413);
    // …and without valid credentials, whatever its size, before it is read.
    const anon = await rawRequest(
      s.url,
      head(
        'POST',
        '/v1/fleets/f/apply',
        ['Content-Type: application/json', `Content-Length: ${60 * 1024 * 1024}`],
        'bosun_forged',
      ),
    );
    expect(anon.status).toBe(401);
    // A Content-Length that lies (shorter than the body that follows) is a 4xx too.
    const lying = await rawRequest(
      s.url,
      `${head('PATCH', '/v1/relays/r1', ['Content-Type: application/json', 'Content-Length: 5'])}{"inactive":true}`,
    );
    expect(lying.status).toBeGreaterThanOrEqual(400);
    expect(lying.status).toBeLessThan(500);
    expect(await snapshot(s)).toEqual(before);
  });

  it('slow-loris: a client trickling its headers or body is cut; others are served meanwhile', async () => {
    const before = await snapshot(s);
    const { hostname, port } = new URL(s.url);
    const open: { socket: Socket; closedAt: Promise<number>; answer: () => string }[] = [];
    /** Sends `prefix` at once, then `bytes` one byte every `everyMs`. */
    const trickle = (prefix: string, bytes: string, everyMs: number) => {
      const socket = connect(Number(port), hostname);
      let answer = '';
      socket.on('data', (d) => {
        answer += d.toString();
      });
      socket.on('error', () => undefined);
      if (prefix) socket.write(prefix);
      let i = 0;
      const timer = setInterval(() => {
        if (i < bytes.length && !socket.destroyed) socket.write(bytes[i++]!);
      }, everyMs);
      const closedAt = new Promise<number>((resolve) =>
        socket.on('close', () => {
          clearInterval(timer);
          resolve(Date.now());
        }),
      );
      open.push({ socket, closedAt, answer: () => answer });
    };
    const started = Date.now();
    // 40 clients sending their headers one byte every 50 ms (would take > 10 s to finish)…
    for (let i = 0; i < 40; i++)
      trickle('', head('PATCH', '/v1/relays/r1', [`X-Pad: ${'a'.repeat(200)}`]), 50);
    // …and 10 sending a complete head, then the body one byte every 50 ms (> 10 s too).
    const body = JSON.stringify({ inactive: true, info: { pubkey: owner.pubkey, name: 'x'.repeat(200) } });
    for (let i = 0; i < 10; i++) {
      trickle(
        head('PATCH', '/v1/relays/r1', ['Content-Type: application/json', `Content-Length: ${body.length}`]),
        body,
        50,
      );
    }
    // Meanwhile the API answers a normal client quickly.
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      expect((await s.api('GET', '/v1/relays/r1')).status).toBe(200);
      expect(Date.now() - t).toBeLessThan(500);
      await new Promise((r) => setTimeout(r, 100));
    }
    const closed = await Promise.all(open.map((o) => o.closedAt));
    const slowest = Math.max(...closed) - started;
    // Headers timeout 500 ms, request timeout 1.5 s, checked every 125 ms.
    expect(slowest).toBeLessThan(4000);
    for (const o of open) expect(o.answer()).toMatch(/^(HTTP\/1\.1 408|)/);
    expect(open.filter((o) => o.answer().startsWith('HTTP/1.1 408')).length).toBeGreaterThan(0);
    expect(await snapshot(s)).toEqual(before);
  });

  it('too many agent streams: 503 with Retry-After, no event, no write', async () => {
    const before = await snapshot(s);
    const streams = await Promise.all(
      [0, 1].map(async () => {
        const ac = new AbortController();
        const res = await fetch(`${s.url}/v1/stream`, {
          headers: { authorization: `Bearer ${agentToken}`, accept: 'text/event-stream' },
          signal: ac.signal,
        });
        return { res, ac };
      }),
    );
    // Each token may hold 4; the server cap (2 here) sheds the third with 503.
    for (const { res } of streams) expect(res.status).toBe(200);
    const other = (await s.api('POST', '/v1/tokens', { role: 'agent', fleet: 'default' })).body.token;
    for (const token of [agentToken, other]) {
      const res = await fetch(`${s.url}/v1/stream`, {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      });
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(res.headers.get('content-type')).not.toContain('text/event-stream');
      await res.text();
    }
    for (const { ac } of streams) ac.abort();
    await expect.poll(() => s.peer.streams.stats().streams).toBe(0);
    const again = await fetch(`${s.url}/v1/stream`, {
      headers: { authorization: `Bearer ${agentToken}`, accept: 'text/event-stream' },
    });
    expect(again.status).toBe(200);
    await again.body?.cancel();
    const after = await snapshot(s);
    // The second agent token is the only new row.
    expect({ ...after, tokens: after.tokens.length }).toEqual({
      ...before,
      tokens: before.tokens.length + 1,
    });
  });
});
