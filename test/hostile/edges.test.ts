import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Nip98Verifier } from '../../src/auth/nip98.js';
import { systemClock } from '../../src/domain/clock.js';
import { buildApp } from '../../src/http/app.js';
import { createMetrics } from '../../src/metrics.js';
import type { Store } from '../../src/store/port.js';
import { ADMIN_TOKEN, captureLogger, startServer, type TestServer } from '../support/env.js';
import { spawnBosun } from '../support/spawn.js';

/** Sends raw bytes and resolves with everything the server wrote before it closed (or 3 s). */
function exchange(url: string, bytes: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let got = '';
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      resolve({ status: m ? Number(m[1]) : 0, body: got.split('\r\n\r\n').slice(1).join('\r\n\r\n') });
    };
    const timer = setTimeout(done, 3000);
    socket.on('data', (d) => {
      got += d.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.on('close', done);
    socket.write(bytes);
  });
}

/** Edges outside bosun's routes: framework and Node errors, the CLI's stdout, dashboard keys. */
describe('hostile input: edges', () => {
  let s: TestServer;

  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => {
    await s.close();
  });

  it('answers errors raised before a route in bosun’s JSON shape', async () => {
    const get = (target: string, extra = '') =>
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${extra}\r\n`;
    const cases: [string, string, number][] = [
      ['malformed URL', get('/v1/relays/%E0%A4%A'), 400],
      ['malformed URL outside /v1', get('/%E0%A4%A'), 400],
      ['too long a path parameter', get(`/v1/relays/${'a'.repeat(200)}`), 414],
      ['too large headers', get('/v1/relays', `X-Big: ${'a'.repeat(20_000)}\r\n`), 431],
      ['too long a URL', get(`/v1/relays/${'a'.repeat(20_000)}`), 431],
      ['garbage request line', 'HELLO\r\n\r\n', 400],
    ];
    for (const [name, bytes, status] of cases) {
      const res = await exchange(s.url, bytes);
      expect(res.status, name).toBe(status);
      const body = JSON.parse(res.body);
      expect(Object.keys(body), name).toEqual(['error']);
      expect(Object.keys(body.error).sort(), name).toEqual(['code', 'message']);
      expect(body.error.code, name).toMatch(/^[a-z_]+$/);
    }
  });

  it('the CLI exits quietly when its stdout is closed (EPIPE)', async () => {
    const p = spawnBosun(['key']);
    // Nobody reads: the first write fails with EPIPE.
    p.child.stdout!.destroy();
    const { code } = await p.exited;
    expect(p.output()).toBe('');
    expect(code).toBe(0);
  });

  it('creates the stream-ticket key at start: tickets are issued while the disk is full', async () => {
    let full = false;
    const diskFull = () =>
      Promise.reject(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }));
    const store = new Proxy(s.peer.store, {
      get: (target, prop) =>
        full && (prop === 'sharedSecret' || prop === 'spendNonce') ? diskFull : Reflect.get(target, prop),
    }) as Store;
    const app = buildApp({
      store,
      command: s.peer.command,
      query: s.peer.query,
      tokens: s.peer.tokens,
      nip98: new Nip98Verifier(),
      clock: systemClock,
      logger: captureLogger().logger,
      metrics: createMetrics(),
    });
    try {
      await app.ready();
      full = true;
      const res = await app.inject({
        method: 'POST',
        url: '/v1/activities/stream-ticket',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().ticket).toMatch(/\./);
    } finally {
      await app.close();
    }
  });
});
