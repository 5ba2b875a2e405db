import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The crash matrix's stand-in for a load balancer in front of a bosun that keeps dying: agents
 * connect to one stable URL while `bosun serve` restarts on a new port every round.
 *
 * - `setTarget(url)` points new requests at a bosun; `setTarget(null)` (just before a kill) makes
 *   new requests wait for the next one, up to `holdMs` (then 503), as a load balancer with a
 *   queue would. A request whose forwarding fails before the answer started (the target died)
 *   waits for the next target too.
 * - A response being streamed when its bosun dies is destroyed, not ended: the agent sees the
 *   network error that a direct connection would give.
 *
 * Agents reconnect after every restart because bosun starts each stream with `retry:` (the
 * workload sets BOSUN_STREAM_RETRY short), which resets their backoff; the front passes it on.
 */
export interface CrashFront {
  url: string;
  setTarget(url: string | null): void;
  /** Stream requests answered 200 (agent connections) and answered otherwise. */
  stats: { streams: number; refused: number };
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
]);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
  return out;
}

export async function startCrashFront(opts: { holdMs?: number } = {}): Promise<CrashFront> {
  const holdMs = opts.holdMs ?? 15_000;
  let target: string | null = null;
  /** Bumped by every setTarget(url): a request that failed on generation g waits for a later one. */
  let generation = 0;
  let closed = false;
  const waiters = new Set<() => void>();
  const inflight = new Set<{ destroy: () => void }>();
  const stats = { streams: 0, refused: 0 };

  const nextTarget = (after: number, deadline: number) =>
    new Promise<{ url: string; gen: number } | null>((resolve) => {
      const check = () => {
        if (closed || Date.now() >= deadline) return finish(null);
        if (target !== null && generation > after) return finish({ url: target, gen: generation });
      };
      const timer = setTimeout(check, Math.max(0, deadline - Date.now()));
      const finish = (v: { url: string; gen: number } | null) => {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(v);
      };
      waiters.add(check);
      check();
    });

  const forward = async (req: IncomingMessage, res: ServerResponse, after: number, deadline: number) => {
    const t = await nextTarget(after, deadline);
    if (res.destroyed) return;
    if (!t) {
      stats.refused++;
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"error":"unavailable","message":"no bosun behind the crash front"}');
      return;
    }
    const up = request(new URL(req.url ?? '/', t.url), {
      method: req.method,
      headers: endToEnd(req.headers),
    });
    const handle = { destroy: () => up.destroy() };
    inflight.add(handle);
    res.on('close', () => {
      inflight.delete(handle);
      up.destroy();
    });
    up.on('error', () => {
      if (res.destroyed || closed) return;
      if (res.headersSent) res.destroy();
      else void forward(req, res, t.gen, deadline);
    });
    up.on('response', (answer) => {
      const status = answer.statusCode ?? 502;
      const stream = String(answer.headers['content-type'] ?? '').startsWith('text/event-stream');
      if (stream && status === 200) stats.streams++;
      else stats.refused++;
      res.writeHead(status, endToEnd(answer.headers));
      answer.on('data', (chunk: Buffer) => res.write(chunk));
      answer.on('end', () => res.end());
      answer.on('error', () => res.destroy());
      answer.on('close', () => {
        if (!answer.complete) res.destroy();
      });
    });
    up.end();
  };

  const server = createServer((req, res) => {
    // Agents only GET the stream; a body would need buffering for the retry after a failure.
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'application/json' }).end('{"error":"method_not_allowed"}');
      return;
    }
    void forward(req, res, -1, Date.now() + holdMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    setTarget(url) {
      target = url;
      if (url !== null) generation++;
      for (const w of [...waiters]) w();
    },
    async close() {
      closed = true;
      for (const w of [...waiters]) w();
      for (const h of inflight) h.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
