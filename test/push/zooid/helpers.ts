import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { publicKeyOf } from '../../../src/domain/keys.js';
import { createNip98Signer, type Nip98Signer } from '../../../src/nostr/nip98.js';
import {
  startZooidEmulator,
  type ZooidEmulator,
  type ZooidEmulatorOptions,
} from '../../../src/push/zooid/emulator.js';

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

const bosunSigner = createNip98Signer(BOSUN_SECRET);

/** A management request signed with bosun's key (the key `useEmulators().start` whitelists). */
export const call = (
  emu: ZooidEmulator,
  method: string,
  path: string,
  body?: RawRequest['body'],
  extra: Partial<RawRequest> = {},
) => raw(emu.url, { method, path, signer: bosunSigner, ...(body === undefined ? {} : { body }), ...extra });

/** A signed management request about relay `id`. */
export const relayApi = (emu: ZooidEmulator, method: string, id: string, body?: RawRequest['body']) =>
  call(emu, method, `/relay/${id}`, body);

/** A NIP-11 request to a relay's host, as a client asks for the relay's document. */
export const nip11 = (emu: { url: string }, host: string, extra: Partial<RawRequest> = {}) =>
  raw(emu.url, { method: 'GET', path: '/', host, headers: { accept: 'application/nostr+json' }, ...extra });

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
 * A test file's emulators and temporary directories: `start` runs an emulator that whitelists
 * bosun's key unless told otherwise, `track` takes one started another way (the CLI); both are
 * closed after each test. `tempDir` makes a directory, removed after the file. Call once, at the top
 * of the file.
 */
export function useEmulators(prefix = 'zooid-test-'): {
  start(opts?: Partial<ZooidEmulatorOptions>): Promise<ZooidEmulator>;
  track(emu: ZooidEmulator): ZooidEmulator;
  tempDir(): string;
} {
  const emulators: ZooidEmulator[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(emulators.splice(0).map((e) => e.close()));
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const track = (emu: ZooidEmulator) => {
    emulators.push(emu);
    return emu;
  };
  return {
    start: async (opts = {}) => track(await startZooidEmulator({ whitelist: [BOSUN_PUBKEY], ...opts })),
    track,
    tempDir: () => {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
  };
}
