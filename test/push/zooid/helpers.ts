import { rmSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, afterEach } from 'vitest';
import { publicKeyOf } from '../../../src/domain/keys.js';
import type { Nip98Signer } from '../../../src/nostr/nip98.js';
import type { ZooidEmulator } from '../../../src/push/zooid/emulator.js';

/** Fixed keys so failures are reproducible. */
export const BOSUN_SECRET = '1'.repeat(64);
export const BOSUN_PUBKEY = publicKeyOf(BOSUN_SECRET);
export const OTHER_SECRET = '2'.repeat(64);
export const OTHER_PUBKEY = publicKeyOf(OTHER_SECRET);
export const RELAY_SECRET = '3'.repeat(64);
export const OWNER_PUBKEY = publicKeyOf('4'.repeat(64));
export const ADMIN_PUBKEY = publicKeyOf('5'.repeat(64));

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

export interface RawRequest {
  method: string;
  path: string;
  body?: string | Buffer | object;
  /** Signs with `signer` for `u` (default: the URL the emulator rebuilds). */
  signer?: Nip98Signer;
  u?: string;
  signMethod?: string;
  authorization?: string;
  headers?: Record<string, string>;
  host?: string;
}

/** A request over node:http, so the Host header and the body are exactly what the test says. */
export async function raw(baseUrl: string, r: RawRequest): Promise<RawResponse> {
  const base = new URL(baseUrl);
  const host = r.host ?? base.host;
  const body =
    r.body === undefined
      ? undefined
      : typeof r.body === 'string' || Buffer.isBuffer(r.body)
        ? Buffer.from(r.body)
        : Buffer.from(JSON.stringify(r.body));
  const headers: Record<string, string> = { host, ...(r.headers ?? {}) };
  if (r.authorization !== undefined) headers.authorization = r.authorization;
  else if (r.signer) {
    const u = r.u ?? `http://${host}${r.path}`;
    headers.authorization = await r.signer.sign(u, r.signMethod ?? r.method, body);
  }
  if (body) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(
      { host: base.hostname, port: base.port, method: r.method, path: r.path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A minimal valid zooid body (what every variant accepts). */
export function minimalBody(
  n: number | string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    host: `r${n}.example.com`,
    schema: `r${n}`,
    secret: RELAY_SECRET,
    info: { name: `R${n}`, pubkey: OWNER_PUBKEY },
    ...extra,
  };
}

/**
 * The emulators a test file starts (closed after each test) and the temporary directories it
 * makes (removed after the file). Call once, at the top of the file.
 */
export function useEmulatorCleanup(): { emulators: ZooidEmulator[]; dirs: string[] } {
  const emulators: ZooidEmulator[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(emulators.splice(0).map((e) => e.close()));
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return { emulators, dirs };
}
