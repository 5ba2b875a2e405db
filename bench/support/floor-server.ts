/**
 * bench/load's floor: a minimal server doing only the irreducible work of one relay update, so its
 * figures, beside bosun's in the same run, show what any implementation of these parts can reach on
 * this machine. A child process (forked by bench/load, driven over IPC like its other children, see
 * child.ts), plain `node:http`, no framework, no validation beyond parsing, no logging.
 *
 * Per `PATCH /v1/relays/:id` (with the admin token given at `setup`, compared as a string):
 *   - the JSON body parsed (an object, else 400);
 *   - ONE SQLite transaction (better-sqlite3, a file, bosun's pragmas: WAL, synchronous NORMAL):
 *     the relay row updated (config merged with the body by `json_patch`, version + 1, RETURNING the
 *     new row) and one activity row inserted; statements prepared once;
 *   - ONE SSE frame (`event: patch`, the relay's whole RelayRep at its new version, serialized once,
 *     docs/stream-protocol.md §3) written to every stream of the relay's fleet;
 *   - answered 200 with JSON of bosun's response size (set by `setup`) carrying the new version;
 *   - then, as bosun's push sync does after the commit, ONE NIP-98 header signed by bosun's own
 *     signer pool (dist/nostr/signer-pool.js, bosun's default of one signing thread) and ONE
 *     `PATCH /relay/:id` with the relay's whole config to zooid through an undici keep-alive `Pool`
 *     (as src/push/zooid/transport.ts), its answer read. No coalescing, no retries: a failure counts.
 *
 * `GET /v1/stream` (`Bearer floor.<fleet>.<anything>`: the token names its fleet, nothing is looked
 * up): 200 `text/event-stream`, one `put` of the fleet's relays read from the database, then the
 * fleet's patches; `: hb` every 15 s.
 *
 * Seeded (`setup`) by copying bosun's relays (id, fleet, version, config, secret) from the database
 * bosun's own run left, so every rep, put and zooid body has bosun's bytes.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { Pool } from 'undici';
import { serve } from './child.js';

const HEARTBEAT_MS = 15_000;

type SignerPoolModule = typeof import('../../src/nostr/signer-pool.js');
type SqliteStoreModule = typeof import('../../src/store/sqlite/sqlite-store.js');

interface RelayRow {
  version: number;
  fleet: string;
  config: string;
  secret: string;
}

const json = (res: ServerResponse, status: number, body: string) => {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(body);
};

const error = (res: ServerResponse, status: number, code: string) =>
  json(res, status, `{"error":{"code":"${code}","message":"${code}"}}`);

/**
 * The relay's RelayRep (§3) from its row. `config` is bosun's stored config: with no Blossom S3 set
 * (as in bench/load), the fields push sync sends and the stream carries, host and schema in another order.
 */
const rep = (id: string, r: RelayRow) =>
  `{"id":${JSON.stringify(id)},"version":${r.version},"config":${r.config},"secret":"${r.secret}","expiring":[]}`;

// Bosun's own modules, compiled (the brief's "real one"): dist/, built by bench/load before it forks this.
const { Nip98SignerPool } = (await import(
  new URL('../../dist/nostr/signer-pool.js', import.meta.url).href
)) as SignerPoolModule;
const { SQLITE_PRAGMAS } = (await import(
  new URL('../../dist/store/sqlite/sqlite-store.js', import.meta.url).href
)) as SqliteStoreModule;

let responseBytes = 700;
let adminAuth = '';
let db: Database.Database | undefined;
let pool: Pool | undefined;
let signer: InstanceType<typeof Nip98SignerPool> | undefined;
let zooidOrigin = '';
const streams = new Map<string, Set<ServerResponse>>();
const epoch = `floor-${randomBytes(6).toString('hex')}`;
const push = { inflight: 0, ok: 0, failed: 0, firstError: '' };
let update: (id: string, patch: string) => RelayRow | undefined = () => undefined;
let readFleet: (fleet: string) => Array<RelayRow & { id: string }> = () => [];

/** Push sync's share: sign, send, read the answer. Never throws; failures are counted. */
async function pushToZooid(id: string, config: string): Promise<void> {
  if (!pool || !signer) return;
  push.inflight++;
  try {
    const body = Buffer.from(config);
    const path = `/relay/${id}`;
    const authorization = await signer.sign(`${zooidOrigin}${path}`, 'PATCH', body);
    const res = await pool.request({
      path,
      method: 'PATCH',
      headers: { authorization, accept: 'application/json', 'content-type': 'application/json' },
      body,
    });
    await res.body.text();
    if (res.statusCode >= 200 && res.statusCode < 300) push.ok++;
    else {
      push.failed++;
      push.firstError ||= `zooid answered ${res.statusCode}`;
    }
  } catch (err) {
    push.failed++;
    push.firstError ||= String(err);
  } finally {
    push.inflight--;
  }
}

function patchRelay(req: IncomingMessage, res: ServerResponse, id: string): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return error(res, 400, 'invalid_json');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return error(res, 400, 'invalid');
    const row = update(id, text);
    if (!row) return error(res, 404, 'not_found');
    const frame = Buffer.from(`event: patch\ndata: {"path":"relays/${id}","data":${rep(id, row)}}\n\n`);
    for (const s of streams.get(row.fleet) ?? []) s.write(frame);
    const head = `{"id":${JSON.stringify(id)},"version":${row.version},"fleet":${JSON.stringify(row.fleet)},"config":${row.config},"pad":"`;
    json(res, 200, `${head}${'x'.repeat(Math.max(0, responseBytes - head.length - 2))}"}`);
    void pushToZooid(id, row.config);
  });
}

function openStream(req: IncomingMessage, res: ServerResponse, token: string): void {
  req.resume();
  const fleet = token.split('.')[1];
  if (!token.startsWith('floor.') || !fleet) {
    error(res, 401, 'unauthorized');
    return;
  }
  const parts = readFleet(fleet).map((r) => `${JSON.stringify(r.id)}:${rep(r.id, r)}`);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  res.write(`event: put\ndata: {"path":"/","epoch":"${epoch}","data":{"relays":{${parts.join(',')}}}}\n\n`);
  let set = streams.get(fleet);
  if (!set) {
    set = new Set();
    streams.set(fleet, set);
  }
  set.add(res);
  res.on('close', () => set.delete(res));
}

const server = createServer((req, res) => {
  const auth = req.headers.authorization ?? '';
  const stream = req.method === 'GET' && req.url === '/v1/stream';
  // The API takes the admin token bench/load sends; a stream any `floor.<fleet>.…` token.
  if (!auth.startsWith('Bearer ') || (!stream && auth !== adminAuth)) {
    req.resume();
    return error(res, 401, 'unauthorized');
  }
  const url = req.url ?? '';
  if (req.method === 'PATCH' && url.startsWith('/v1/relays/')) return patchRelay(req, res, url.slice(11));
  if (stream) return openStream(req, res, auth.slice(7));
  req.resume();
  error(res, 404, 'not_found');
});
server.keepAliveTimeout = 60_000;
const heartbeat = setInterval(() => {
  for (const set of streams.values()) for (const s of set) s.write(': hb\n\n');
}, HEARTBEAT_MS);
heartbeat.unref();

serve({
  /**
   * Copies bosun's live relays from `from` into a new database at `db`, prepares the statements,
   * starts the signer pool (its threads ready) and the zooid pool when `zooidUrl` is set, listens.
   */
  setup: async (msg) => {
    const t0 = performance.now();
    responseBytes = Number(msg.bytes);
    adminAuth = String(msg.auth);
    db = new Database(String(msg.db));
    for (const pragma of SQLITE_PRAGMAS) db.pragma(pragma);
    db.exec(`
      CREATE TABLE relays (
        id TEXT PRIMARY KEY, fleet TEXT NOT NULL, version INTEGER NOT NULL, config TEXT NOT NULL,
        secret TEXT NOT NULL, updated_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX relays_fleet ON relays(fleet, id);
      CREATE TABLE activities (
        id INTEGER PRIMARY KEY, type TEXT NOT NULL, relay_id TEXT NOT NULL, actor TEXT NOT NULL,
        payload TEXT NOT NULL, created_at INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX activities_relay ON activities(relay_id, id);
    `);
    db.prepare('ATTACH DATABASE ? AS bosun').run(String(msg.from));
    const seeded = db
      .prepare(
        `INSERT INTO relays SELECT id, fleet, version, config, secret, updated_at FROM bosun.relays
         WHERE deleted_at IS NULL`,
      )
      .run().changes;
    db.exec('DETACH DATABASE bosun');
    const updateRow = db.prepare<[string, number, string], RelayRow>(
      `UPDATE relays SET config = json_patch(config, ?), version = version + 1, updated_at = ?
       WHERE id = ? RETURNING version, fleet, config, secret`,
    );
    const insertActivity = db.prepare(
      `INSERT INTO activities (type, relay_id, actor, payload, created_at) VALUES ('relay.updated', ?, 'admin', ?, ?)`,
    );
    const fleetRows = db.prepare<[string], RelayRow & { id: string }>(
      'SELECT id, version, fleet, config, secret FROM relays WHERE fleet = ? ORDER BY id',
    );
    const tx = db.transaction((id: string, patch: string) => {
      const at = Date.now();
      const row = updateRow.get(patch, at, id);
      if (row) insertActivity.run(id, patch, at);
      return row;
    });
    update = (id, patch) => tx(id, patch);
    readFleet = (fleet) => fleetRows.all(fleet);
    if (msg.zooidUrl) {
      zooidOrigin = new URL(String(msg.zooidUrl)).origin;
      pool = new Pool(zooidOrigin);
      // bosun's default BOSUN_SIGN_WORKERS (1): one signing thread beside the main one.
      signer = new Nip98SignerPool(String(msg.secretKey), { workers: Number(msg.signWorkers ?? 1) });
      await signer.ready();
      await signer.threadsStarted();
    }
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, relays: seeded, ms: performance.now() - t0 };
  },
  /** Waits (≤ timeoutMs) until no push is in flight; seconds waited, or null on timeout. */
  drain: async (msg) => {
    const t0 = performance.now();
    while (push.inflight > 0 && performance.now() - t0 < Number(msg.timeoutMs)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return { seconds: push.inflight > 0 ? null : (performance.now() - t0) / 1000 };
  },
  report: () => ({
    pushed: push.ok,
    pushFailed: push.failed,
    inflight: push.inflight,
    firstError: push.firstError,
    streams: [...streams.values()].reduce((n, s) => n + s.size, 0),
  }),
  close: async () => {
    clearInterval(heartbeat);
    for (const set of streams.values()) for (const s of set) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await signer?.close();
    await pool?.destroy();
    db?.close();
    setImmediate(() => process.exit(0));
    return {};
  },
});
