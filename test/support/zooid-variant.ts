import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../src/domain/clock.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';

/** What the variant sends instead of the emulator's answer. */
export interface VariantReply {
  status: number;
  body: string;
  contentType?: string;
}

/**
 * A zooid that keeps the contract (same statuses, same behaviour) but words its answers its own
 * way, like another build of zooid or a proxy in front of one: a loopback HTTP server that forwards
 * to the emulator (Host header kept, so NIP-98 URLs check out) and rewrites each answer.
 */
export interface ZooidVariant {
  /** Base URL bosun talks to. */
  url: string;
  /** The zooid behind it (its state, requests, faults). */
  zooid: ZooidEmulator;
  close(): Promise<void>;
}

/** Different but legal texts for every answer the emulator gives. */
export function rewordAll(method: string, status: number, text: string): VariantReply {
  const said = (() => {
    try {
      return String(JSON.parse(text).error ?? '');
    } catch {
      return text.trim();
    }
  })();
  if (status >= 200 && status < 300) {
    return json(status, { ok: true, result: 'done', method, extra: { served_by: 'variant' } });
  }
  if (status === 404) {
    // A proxy's plain text for writes, a terse JSON word for deletes.
    return method === 'DELETE' ? json(404, { error: 'missing' }) : { status, body: 'Not Found' };
  }
  if (status === 409) {
    const taken = /^(host|schema) "(.*)" is already in use$/.exec(said);
    if (taken)
      return json(409, { error: `${taken[1]} ${taken[2]} belongs to another relay`, code: 'E_TAKEN' });
    if (said === 'relay with this id already exists') return json(409, { error: 'duplicate id' });
    return json(409, { error: said });
  }
  return json(status, { error: said, details: [] });
}

const json = (status: number, value: unknown): VariantReply => ({
  status,
  body: JSON.stringify(value),
  contentType: 'application/json; charset=utf-8',
});

export async function startZooidVariant(opts: {
  whitelist: string[];
  clock?: Clock;
  reword?: (method: string, status: number, text: string) => VariantReply;
}): Promise<ZooidVariant> {
  const reword = opts.reword ?? rewordAll;
  let upstream = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const out = request(
        { host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const got: Buffer[] = [];
          answer.on('data', (c: Buffer) => got.push(c));
          answer.on('end', () => {
            const reply = reword(req.method ?? '', answer.statusCode ?? 502, Buffer.concat(got).toString());
            res.writeHead(reply.status, { 'content-type': reply.contentType ?? 'text/plain; charset=utf-8' });
            res.end(reply.body);
          });
        },
      );
      out.on('error', () => res.destroy());
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const zooid = await startZooidEmulator({
    whitelist: opts.whitelist,
    apiHost: `127.0.0.1:${port}`,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  upstream = zooid.port;
  return {
    url: `http://127.0.0.1:${port}`,
    zooid,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await zooid.close();
    },
  };
}
