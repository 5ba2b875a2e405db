import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { loadServeConfig, type ServeConfig } from '../../src/config.js';
import { type Clock, systemClock } from '../../src/domain/clock.js';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { createLogger } from '../../src/logger.js';
import { Peer, type PeerDeps } from '../../src/peer.js';

export function tempDir(prefix = 'bosun-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export function keypair(): { secret: string; pubkey: string } {
  const secret = generateSecretKey();
  return { secret, pubkey: publicKeyOf(secret) };
}

/** A logger whose JSON lines are kept in memory, so tests can search logs for secrets. */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/**
 * A request to bosun's HTTP API at `url` (a running peer or a spawned `bosun serve`): the bearer
 * token unless it is empty, and a JSON body when there is one (a string is sent as it is). The raw
 * Response, for tests that must not read the body or read it their own way (crashes cut it).
 */
export function apiFetch(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  token = ADMIN_TOKEN,
): Promise<Response> {
  return fetch(url + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
}

export interface ApiAnswer {
  status: number;
  /** The parsed JSON body, undefined when empty; a body that is not JSON throws. */
  body: any;
  text: string;
  headers: Headers;
}

/** apiFetch with the answer read. */
export async function apiCall(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  token = ADMIN_TOKEN,
): Promise<ApiAnswer> {
  const res = await apiFetch(url, method, path, body, token);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text, headers: res.headers };
}

export interface TestServer {
  peer: Peer;
  url: string;
  dir: string;
  logs: string[];
  api: (
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ) => Promise<{ status: number; body: any }>;
  close: () => Promise<void>;
}

/** A real bosun peer on a temp SQLite file, listening on a random loopback port. */
export async function startServer(
  opts: { env?: Record<string, string>; clock?: Clock; dir?: string; onRoute?: PeerDeps['onRoute'] } = {},
): Promise<TestServer> {
  const tmp = opts.dir ? { path: opts.dir, cleanup: () => {} } : tempDir();
  const config: ServeConfig = loadServeConfig({
    BOSUN_DATABASE_URL: `sqlite:${join(tmp.path, 'bosun.db')}`,
    PORT: '0',
    BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
    // Tests that count zooid requests don't want the health probe's; chore tests turn it on.
    BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
    // Nor live checks (reads of https://<host>/, observe_relay activities); live tests turn them on.
    BOSUN_VERIFY_INTERVAL_MS: '0',
    ...opts.env,
  });
  const { logger, lines } = captureLogger();
  const peer = await Peer.create(config, {
    logger,
    clock: opts.clock ?? systemClock,
    ...(opts.onRoute ? { onRoute: opts.onRoute } : {}),
  });
  const url = await peer.start();
  const api = async (method: string, path: string, body?: unknown, token = ADMIN_TOKEN) => {
    // Only these two: tests compare the whole answer with toEqual.
    const { status, body: json } = await apiCall(url, method, path, body, token);
    return { status, body: json };
  };
  return {
    peer,
    url,
    dir: tmp.path,
    logs: lines,
    api,
    close: async () => {
      await peer.close();
      tmp.cleanup();
    },
  };
}

export function relayBody(id: string, pubkey: string, extra: Record<string, unknown> = {}) {
  return { id, host: `${id}.example.com`, info: { pubkey, name: id }, ...extra };
}

/** Tokens for tenants alice and bob, and for an agent of `fleet`, issued by the server's admin. */
export async function issueTokens(
  s: TestServer,
  fleet: string,
): Promise<{ alice: string; bob: string; agent: string }> {
  const issue = async (body: object) => (await s.api('POST', '/v1/tokens', body)).body.token as string;
  return {
    alice: await issue({ role: 'tenant', owner: 'alice' }),
    bob: await issue({ role: 'tenant', owner: 'bob' }),
    agent: await issue({ role: 'agent', fleet }),
  };
}
