import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../src/domain/keys.js';
import { fetchRelayInfo } from '../../src/live/fetch.js';
import { createNip98Signer } from '../../src/nostr/nip98.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import {
  BOSUN_PUBKEY,
  BOSUN_SECRET,
  minimalBody,
  OWNER_PUBKEY,
  RELAY_SECRET,
  raw,
} from '../push/zooid/helpers.js';
import { FakeClock } from '../support/clock.js';

const servers: Server[] = [];
const emulators: ZooidEmulator[] = [];
afterEach(async () => {
  await Promise.all(emulators.splice(0).map((e) => e.close()));
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

interface Hostile {
  url: string;
  /** Headers of every request received, in order. */
  seen: IncomingHttpHeaders[];
  /** Resolves when the next request arrives. */
  arrived: () => Promise<void>;
}

/** A loopback server that answers each request with `handler` (which may never finish). */
async function hostile(handler: (res: ServerResponse) => void): Promise<Hostile> {
  const seen: IncomingHttpHeaders[] = [];
  let waiting: Array<() => void> = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    handler(res);
    for (const w of waiting) w();
    waiting = [];
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    arrived: () => new Promise<void>((resolve) => waiting.push(resolve)),
  };
}

const json = (res: ServerResponse, body: string, type = 'application/nostr+json') => {
  res.writeHead(200, { 'content-type': type });
  res.end(body);
};
const fetchFrom = (baseUrl: string, extra: Partial<Parameters<typeof fetchRelayInfo>[0]> = {}) =>
  fetchRelayInfo({ baseUrl, host: 'r1.example.com', timeoutMs: 5_000, ...extra });

describe('fetchRelayInfo against the emulator', () => {
  it('reads a relay’s document through the instance address with the relay’s Host', async () => {
    const emu = await startZooidEmulator({ whitelist: [BOSUN_PUBKEY] });
    emulators.push(emu);
    const signer = createNip98Signer(BOSUN_SECRET);
    await raw(emu.url, { method: 'POST', path: '/relay/r1', body: minimalBody(1), signer });
    const result = await fetchFrom(emu.url);
    expect(result).toEqual({ ok: true, doc: emu.served('r1') });
    expect(result.ok && result.doc).toMatchObject({
      name: 'R1',
      pubkey: OWNER_PUBKEY,
      self: publicKeyOf(RELAY_SECRET),
    });
    expect(await fetchFrom(emu.url, { host: 'r2.example.com' })).toEqual({
      ok: false,
      error: 'HTTP 404 (not served)',
    });
  });
});

describe('fetchRelayInfo against hostile servers', () => {
  it('sends Host and Accept, and nothing that could be a credential', async () => {
    const s = await hostile((res) => json(res, '{"name":"x"}'));
    expect(await fetchFrom(s.url, { host: 'r1.example.com:8443' })).toEqual({ ok: true, doc: { name: 'x' } });
    const headers = s.seen[0]!;
    expect(headers.host).toBe('r1.example.com:8443');
    expect(headers.accept).toBe('application/nostr+json');
    expect(headers.authorization).toBeUndefined();
    expect(headers.cookie).toBeUndefined();
    const withCredentials = await fetchFrom(s.url.replace('http://', 'http://user:pw@'));
    expect(withCredentials).toEqual({
      ok: false,
      error: 'URL carries credentials; verification never sends any',
    });
    expect(s.seen.length).toBe(1);
  });

  it('accepts application/json with a charset', async () => {
    const s = await hostile((res) => json(res, '{"name":"x"}', 'Application/JSON; charset=utf-8'));
    expect(await fetchFrom(s.url)).toEqual({ ok: true, doc: { name: 'x' } });
  });

  it('refuses a huge body, declared or not, without reading it all', async () => {
    const declared = await hostile((res) => {
      res.writeHead(200, { 'content-type': 'application/nostr+json', 'content-length': 10_000_000 });
      res.write('{"name":"');
    });
    expect(await fetchFrom(declared.url)).toEqual({
      ok: false,
      error: 'body of 10000000 bytes is over 65536',
    });
    let written = 0;
    const chunked = await hostile((res) => {
      res.writeHead(200, { 'content-type': 'application/nostr+json' });
      const chunk = Buffer.alloc(16_384, 0x20);
      const pump = () => {
        while (written < 50_000_000 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    expect(await fetchFrom(chunked.url, { maxBytes: 1_000 })).toEqual({
      ok: false,
      error: 'body over 1000 bytes',
    });
    expect(written).toBeLessThan(50_000_000);
  });

  it('refuses a body that is not JSON, or JSON but not an object', async () => {
    const cases: Array<[string, string]> = [
      ['<html>hello</html>', 'body is not JSON: "<html>hello</html>"'],
      ['[1,2]', 'body is an array, not a JSON object'],
      ['null', 'body is null, not a JSON object'],
      ['"name"', 'body is a string, not a JSON object'],
    ];
    for (const [body, error] of cases) {
      const s = await hostile((res) => json(res, body));
      expect(await fetchFrom(s.url)).toEqual({ ok: false, error });
    }
    const bad = await hostile((res) => {
      res.writeHead(200, { 'content-type': 'application/nostr+json' });
      res.end(Buffer.from([0x7b, 0xff, 0x7d]));
    });
    expect(await fetchFrom(bad.url)).toEqual({ ok: false, error: 'body is not UTF-8' });
  });

  it('refuses a wrong content type', async () => {
    const s = await hostile((res) => json(res, '{"name":"x"}', 'text/html; charset=utf-8'));
    expect(await fetchFrom(s.url)).toEqual({
      ok: false,
      error: 'content type "text/html" is not NIP-11 (application/nostr+json)',
    });
  });

  it('never follows a redirect', async () => {
    const target = await hostile((res) => json(res, '{"name":"elsewhere"}'));
    const s = await hostile((res) => {
      res.writeHead(301, { location: `${target.url}/` });
      res.end();
    });
    const result = await fetchFrom(s.url);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.error).toMatch(
      /^HTTP 301 redirect to "http:\/\/127\.0\.0\.1:\d+\/" not followed$/,
    );
    expect(target.seen.length).toBe(0);
  });

  it('reports a 404 and other statuses', async () => {
    const s = await hostile((res) => {
      res.writeHead(503, { 'content-type': 'application/nostr+json' });
      res.end('{}');
    });
    expect(await fetchFrom(s.url)).toEqual({ ok: false, error: 'HTTP 503' });
  });

  it('reports a refused connection', async () => {
    const s = await hostile(() => {});
    const url = s.url;
    const server = servers.pop()!;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(await fetchFrom(url)).toEqual({ ok: false, error: 'connection refused' });
  });

  it('times out a server that never answers (slow headers), on the injected clock', async () => {
    const clock = new FakeClock();
    const s = await hostile(() => {});
    const arrived = s.arrived();
    const pending = fetchFrom(s.url, { clock, timeoutMs: 3_000 });
    await arrived;
    await clock.advance(2_999);
    await clock.advance(1);
    expect(await pending).toEqual({ ok: false, error: 'no complete answer within 3000 ms' });
  });

  it('times out a body that drips (slow-loris): the deadline covers the whole exchange', async () => {
    const clock = new FakeClock();
    let sent = 0;
    const s = await hostile((res) => {
      res.writeHead(200, { 'content-type': 'application/nostr+json' });
      res.write('{"name":');
      sent += 1;
    });
    const arrived = s.arrived();
    const pending = fetchFrom(s.url, { clock, timeoutMs: 3_000 });
    await arrived;
    await clock.advance(3_000);
    expect(await pending).toEqual({ ok: false, error: 'no complete answer within 3000 ms' });
    expect(sent).toBe(1);
  });

  it('stops when the signal aborts', async () => {
    const s = await hostile(() => {});
    const controller = new AbortController();
    const arrived = s.arrived();
    const pending = fetchFrom(s.url, { signal: controller.signal });
    await arrived;
    controller.abort();
    expect(await pending).toEqual({ ok: false, error: 'aborted' });
  });

  it('refuses bad input before connecting, with short errors', async () => {
    expect(await fetchFrom('not a url')).toEqual({ ok: false, error: 'not a URL: "not a url"' });
    expect(await fetchFrom('ftp://x/')).toEqual({
      ok: false,
      error: 'URL scheme "ftp:" is not http or https',
    });
    const injected = await fetchFrom('http://127.0.0.1:1/', { host: 'a.example.com\r\nx-evil: 1' });
    expect(injected).toEqual({ ok: false, error: 'not a host: "a.example.com\\r\\nx-evil: 1"' });
    expect(await fetchFrom('http://127.0.0.1:1/', { timeoutMs: 0 })).toEqual({
      ok: false,
      error: 'timeoutMs must be a positive number',
    });
    const long = await fetchFrom(`http://127.0.0.1:1/`, { host: `${'h'.repeat(500)} ` });
    expect(!long.ok && long.error.length).toBeLessThanOrEqual(120);
  });
});
