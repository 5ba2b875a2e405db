/**
 * Test harness for the autoconfig stream client: a scripted SSE server over real loopback HTTP (the
 * test decides what each connection answers and when), a recording handler, and a StreamManager on a
 * FakeClock with pinned randomness.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import {
  type RelayStreamHandler,
  StreamManager,
  type StreamManagerOptions,
  type StreamStatus,
} from '../../src/pull/agent/stream-manager.js';
import { type RelayRep, relayPath } from '../../src/pull/protocol.js';
import { FakeClock } from '../support/clock.js';
import { encodeSseEvent } from '../support/sse.js';

/** A valid Nostr secret key (below the curve order). */
export const SECRET = 'ab'.repeat(32);
export const OTHER_SECRET = 'cd'.repeat(32);

export function rep(id: string, version: number, over: Partial<RelayRep> = {}): RelayRep {
  return {
    id,
    version,
    config: {
      host: `${id.toLowerCase()}.example.com`,
      schema: `s_${id.toLowerCase().replace(/[^a-z0-9]/g, '_')}`,
      inactive: false,
      info: { name: `relay ${id}` },
      policy: {},
    },
    secret: SECRET,
    expiring: [],
    ...over,
  };
}

/** Real-time polling for I/O to happen; fake time never moves here. */
export async function waitFor(cond: () => boolean, what = 'condition', timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A short real pause, to show that something does NOT happen. */
export const realPause = (ms = 25) => new Promise((resolve) => setTimeout(resolve, ms));

export class ScriptedConnection {
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
  /** Resolves when the client (or we) closed the connection. */
  readonly closed: Promise<void>;
  isClosed = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    this.headers = req.headers;
    this.url = req.url ?? '';
    this.closed = new Promise((resolve) =>
      res.on('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  /** A complete non-SSE answer (bosun's JSON error body by default). */
  respond(status: number, headers: Record<string, string> = {}, body?: string): void {
    this.res.writeHead(status, { 'content-type': 'application/json', ...headers });
    this.res.end(body ?? JSON.stringify({ error: { code: 'x', message: `status ${status}` } }));
  }

  /** 200 text/event-stream, flushed at once. */
  open(): this {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
    return this;
  }

  write(text: string): this {
    this.res.write(text);
    return this;
  }

  event(name: string, data: unknown): this {
    return this.write(encodeSseEvent(name, data));
  }

  put(
    relays: RelayRep[] | Record<string, unknown>,
    opts: { epoch?: string; path?: string; delta?: boolean; unchanged?: string[] } = {},
  ): this {
    const map = Array.isArray(relays) ? Object.fromEntries(relays.map((r) => [r.id, r])) : relays;
    const data: Record<string, unknown> = { relays: map };
    if (opts.delta) data.delta = true;
    if (opts.unchanged) data.unchanged = opts.unchanged;
    return this.event('put', { path: opts.path ?? '/', epoch: opts.epoch ?? 'e1', data });
  }

  patch(r: unknown, path = relayPath((r as RelayRep).id)): this {
    return this.event('patch', { path, data: r });
  }

  del(id: string, version: number): this {
    return this.event('delete', { path: relayPath(id), version });
  }

  end(): void {
    this.res.end();
  }

  /** Drops the TCP connection without a proper end. */
  destroy(): void {
    this.req.socket.destroy();
  }
}

export class ScriptedServer {
  readonly connections: ScriptedConnection[] = [];
  url = '';
  private cursor = 0;
  private readonly server = createServer((req, res) =>
    this.connections.push(new ScriptedConnection(req, res)),
  );

  static async start(): Promise<ScriptedServer> {
    const s = new ScriptedServer();
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}/v1/stream`;
    return s;
  }

  get count(): number {
    return this.connections.length;
  }

  /** The next request not yet taken by the test, in arrival order. */
  async next(): Promise<ScriptedConnection> {
    const i = this.cursor++;
    await waitFor(() => this.connections.length > i, `request #${i + 1}`);
    return this.connections[i]!;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string;
}

export type Hooks = Partial<{
  add: (rep: RelayRep) => void | Promise<void>;
  update: (rep: RelayRep, previous: number) => void | Promise<void>;
  delete: (id: string, version: number | null) => void | Promise<void>;
  all: () => void | Promise<void>;
}>;

/** Records every callback as a short line, e.g. `add A@10`, `update A@11<10`, `delete C@null`, `all`. */
export class Recorder {
  readonly calls: string[] = [];
  readonly statuses: StreamStatus[] = [];
  readonly reps = new Map<string, RelayRep>();
  readonly reasons: string[] = [];
  readonly errors: Error[] = [];
  hooks: Hooks = {};

  readonly handler: RelayStreamHandler = {
    addRelay: (r) => {
      this.calls.push(`add ${r.id}@${r.version}`);
      this.reps.set(r.id, r);
      return this.hooks.add?.(r);
    },
    updateRelay: (r, previous) => {
      this.calls.push(`update ${r.id}@${r.version}<${previous}`);
      this.reps.set(r.id, r);
      return this.hooks.update?.(r, previous);
    },
    deleteRelay: (id, version) => {
      this.calls.push(`delete ${id}@${version}`);
      return this.hooks.delete?.(id, version);
    },
    receivedAllRelays: () => {
      this.calls.push('all');
      return this.hooks.all?.();
    },
    keyExpired: (id, cred) => {
      this.calls.push(`expired ${id} ${cred.name}:${cred.fingerprint}`);
    },
    onInvalidRelay: (id, reason) => {
      this.calls.push(`invalid ${id}`);
      this.reasons.push(reason);
    },
    onError: (err) => {
      this.calls.push('error');
      this.errors.push(err);
    },
    onStatus: (s) => {
      this.statuses.push(s);
    },
  };

  /** Statuses that report the end of a connection (each carries why). */
  ends(): StreamStatus[] {
    return this.statuses.filter((s) => s.error !== undefined && s.state !== 'closed');
  }
}

export interface Ctx {
  server: ScriptedServer;
  clock: FakeClock;
  rec: Recorder;
  logs: LogLine[];
  manager: StreamManager;
  /** The random value every wait uses. */
  r: number;
  /** Waits until every event written before it on `conn` has been processed. */
  sync(conn: ScriptedConnection): Promise<void>;
  /** Waits for the end of connection number `n` (1-based) and returns the wait armed after it. */
  waitAfterEnd(n: number): Promise<number>;
  /** Asserts no request before `ms` of fake time, then exactly one at `ms`. Returns that request. */
  nextRequestAfter(ms: number): Promise<ScriptedConnection>;
  waitCalls(n: number): Promise<void>;
  close(): Promise<void>;
}

let syncTag = 0;

export async function setup(
  opts: Partial<Pick<StreamManagerOptions, 'initialState' | 'fetch'>> & { r?: number } = {},
): Promise<Ctx> {
  const server = await ScriptedServer.start();
  const clock = new FakeClock();
  const rec = new Recorder();
  const logs: LogLine[] = [];
  const line = (level: string) => (obj: object, msg: string) =>
    logs.push({ level, obj: obj as Record<string, unknown>, msg });
  const ctx: Ctx = {
    server,
    clock,
    rec,
    logs,
    r: opts.r ?? 0,
    manager: undefined as unknown as StreamManager,
    async sync(conn) {
      const tag = `sync-${++syncTag}`;
      conn.write(`event: ${tag}\ndata: {}\n\n`);
      await waitFor(() => logs.some((l) => l.obj.event === tag), `event ${tag} to be processed`);
    },
    async waitAfterEnd(n) {
      await waitFor(() => rec.ends().length >= n, `end of connection #${n}`);
      const due = clock.nextDue();
      if (due === undefined) throw new Error('no wait armed');
      return due - clock.now();
    },
    async nextRequestAfter(ms) {
      const before = server.count;
      expect(clock.nextDue()! - clock.now()).toBe(ms);
      if (ms > 1) {
        await clock.advance(ms - 1);
        await realPause();
        expect(server.count).toBe(before);
      }
      await clock.advance(clock.nextDue()! - clock.now());
      const conn = await server.next();
      expect(server.connections.indexOf(conn)).toBe(before);
      return conn;
    },
    async waitCalls(n) {
      await waitFor(() => rec.calls.length >= n, `${n} callbacks (have ${JSON.stringify(rec.calls)})`);
    },
    async close() {
      await ctx.manager.close();
      await server.close();
    },
  };
  ctx.manager = new StreamManager({
    url: server.url,
    token: 'agent-token',
    handler: rec.handler,
    clock,
    random: () => ctx.r,
    logger: { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') },
    ...(opts.initialState ? { initialState: opts.initialState } : {}),
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  return ctx;
}
