/**
 * A stand-in for zooid's management API over real HTTP (zooid-contract.md), for tests, benchmarks
 * and local development (`bosun zooid-emulator`). It follows the contract's routing, auth order,
 * Go-json decoding, validation order and error texts, uniqueness rules, PATCH deep merge and TOML
 * storage, and adds what a test needs: fault injection, a request log, the bodies zooid accepted
 * per relay, and a per-relay concurrency high-water mark.
 *
 * Variants: `v1` (coracle-social/zooid 59a9d11), `v1p` (its later api.go: schema regex, required
 * info.pubkey), `v2` (the mplorentz fork: mux routing, members route, blossom adapter/s3, 60 s
 * NIP-98 window). The default is `v2`.
 */
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { type Clock, systemClock, type TimerHandle } from '../../domain/clock.js';
import { isValidPublicKey, publicKeyOf } from '../../domain/keys.js';
import { type Random, systemRandom } from '../../domain/random.js';
import { verifyNip98 } from '../../nostr/nip98.js';
import { makePrivateDir, writePrivateFileSync } from '../../private-files.js';

export type ZooidVariant = 'v1' | 'v1p' | 'v2';

export interface ZooidStoredConfig {
  host: string;
  schema: string;
  secret: string;
  inactive: boolean;
  info: { name: string; icon: string; description: string; pubkey: string };
  policy: { public_join: boolean; strip_signatures: boolean };
  groups: { enabled: boolean };
  management: { enabled: boolean };
  /** V1 has `enabled` only; V2 adds the rest (adapter defaults to `local`). */
  blossom: {
    enabled: boolean;
    authenticated_read?: boolean;
    adapter?: string;
    s3?: {
      region: string;
      bucket: string;
      access_key: string;
      secret_key: string;
      endpoint: string;
      key_prefix: string;
    };
  };
  livekit: { server_url: string; api_key: string; api_secret: string };
  push: { enabled: boolean };
  roles: Record<string, { pubkeys: string[]; can_invite: boolean; can_manage: boolean }>;
}

export type ZooidMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'GET';

export interface ZooidFaults {
  /** Delay (on the emulator's clock) before each API request is answered. */
  latencyMs?: number;
  /** Probability in [0, 1] that an API request is answered `failStatus` (uses the `rng` option). */
  errorRate?: number;
  /** Status for `errorRate` and `failAll` faults. Default 500. */
  failStatus?: number;
  /** Destroy the socket without answering: `true` for every request, a number for the next n. */
  dropConnections?: boolean | number;
  /** Answer every API request `failStatus`. */
  failAll?: boolean;
  /** Answer every request of a method with this status (and body: default `{"error":"injected"}`). */
  statusOverride?: Partial<
    Record<ZooidMethod, number | { status: number; body?: string; contentType?: string }>
  >;
}

export interface ZooidEmulatorOptions {
  /** 0 (default): a random free port. */
  port?: number;
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  /** API_WHITELIST: hex pubkeys (or one comma-separated string); matched exactly after trimming. */
  whitelist: readonly string[] | string;
  /** CONFIG dir: existing `*.toml` files are loaded at start and each change writes `<id>.toml`. */
  configDir?: string;
  /** API_HOST: the Host header that reaches the API. Default `<listen host>:<port>`. */
  apiHost?: string;
  clock?: Clock;
  variant?: ZooidVariant;
  /** Randomness for `errorRate`. */
  rng?: Random;
  faults?: ZooidFaults;
  /**
   * The contract's inferred V2 behaviour ([I]): the stored secret is cleared before a PATCH is
   * merged, so a PATCH without `secret` fails with `invalid secret key`. Off by default (V1 keeps it).
   */
  patchClearsSecret?: boolean;
  /** Keep `requests` and `accepted` (default true); turn off for long benchmarks. */
  record?: boolean;
}

export interface ZooidRequestRecord {
  method: string;
  path: string;
  /** The relay id in the path, when the path names one. */
  id: string | null;
  /** The JSON body (parsed; the raw text when it is not JSON; null when empty). */
  body: unknown;
  /** Emulator clock time when the request arrived (ms). */
  at: number;
  /** Status sent, 0 when the connection was dropped. */
  status: number;
  /** The NIP-98 signer, once the signature checked out. */
  pubkey: string | null;
  fault: 'drop' | 'error' | 'override' | null;
}

export interface ZooidAcceptedChange {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The request body as sent (null for DELETE). */
  body: unknown;
  /** The stored config after the change (null after DELETE). */
  config: ZooidStoredConfig | null;
  at: number;
}

export interface ZooidEmulator {
  /** Base URL of the API, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  readonly apiHost: string;
  readonly variant: ZooidVariant;
  readonly pubkeysAllowed: string[];
  /** The CONFIG dir, or null when relays are kept in memory only. */
  readonly dir: string | null;
  /** Every API request in arrival order (live array; clear it with `requests.length = 0`). */
  readonly requests: ZooidRequestRecord[];
  /** A copy of the stored configs, by id. */
  relays(): Map<string, ZooidStoredConfig>;
  /** The changes zooid accepted for one relay, in order. */
  accepted(id: string): ZooidAcceptedChange[];
  /** Highest number of requests for one relay in flight at once (for `id`, or over all relays). */
  maxConcurrentPerRelay(id?: string): number;
  /** Replaces the active faults. */
  setFaults(faults: ZooidFaults): void;
  /** Replaces API_WHITELIST (an operator editing zooid's environment and restarting it). */
  setWhitelist(whitelist: readonly string[] | string): void;
  close(): Promise<void>;
}

const BODY_LIMIT = 1 << 20;

interface Reply {
  status: number;
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

/** Go's json.Encoder: HTML-escaped, newline-terminated. */
function goJson(value: unknown): string {
  return `${JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')}\n`;
}

const jsonReply = (status: number, value: unknown): Reply => ({
  status,
  body: goJson(value),
  contentType: 'application/json',
});
const errorReply = (status: number, error: string) => jsonReply(status, { error });
const textReply = (status: number, text: string, headers?: Record<string, string>): Reply => ({
  status,
  body: `${text}\n`,
  contentType: 'text/plain; charset=utf-8',
  ...(headers ? { headers } : {}),
});

// ---------------------------------------------------------------------------------------------
// Go encoding/json, as far as zooid's config struct needs it.

type Spec =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'strings' }
  | { t: 'struct'; name: string; fields: Array<[string, Spec]> }
  | { t: 'map'; name: string; value: Spec };

const S: Spec = { t: 'string' };
const B: Spec = { t: 'bool' };
const struct = (name: string, fields: Array<[string, Spec]>): Spec => ({ t: 'struct', name, fields });

function configSpec(variant: ZooidVariant): Spec {
  const blossom: Array<[string, Spec]> = [['enabled', B]];
  if (variant === 'v2') {
    blossom.push(
      ['authenticated_read', B],
      ['adapter', S],
      [
        's3',
        struct('S3Config', [
          ['region', S],
          ['bucket', S],
          ['access_key', S],
          ['secret_key', S],
          ['endpoint', S],
          ['key_prefix', S],
        ]),
      ],
    );
  }
  return struct('Config', [
    ['host', S],
    ['schema', S],
    ['secret', S],
    ['inactive', B],
    [
      'info',
      struct('Info', [
        ['name', S],
        ['icon', S],
        ['description', S],
        ['pubkey', S],
      ]),
    ],
    [
      'policy',
      struct('Policy', [
        ['public_join', B],
        ['strip_signatures', B],
      ]),
    ],
    ['groups', struct('Groups', [['enabled', B]])],
    ['management', struct('Management', [['enabled', B]])],
    ['blossom', struct('Blossom', blossom)],
    [
      'livekit',
      struct('Livekit', [
        ['server_url', S],
        ['api_key', S],
        ['api_secret', S],
      ]),
    ],
    ['push', struct('Push', [['enabled', B]])],
    [
      'roles',
      {
        t: 'map',
        name: 'map[string]zooid.Role',
        value: struct('Role', [
          ['pubkeys', { t: 'strings' }],
          ['can_invite', B],
          ['can_manage', B],
        ]),
      },
    ],
  ]);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function zeroOf(spec: Spec): unknown {
  switch (spec.t) {
    case 'string':
      return '';
    case 'bool':
      return false;
    case 'strings':
      return [];
    case 'map':
      return {};
    case 'struct': {
      const out: Record<string, unknown> = {};
      for (const [k, s] of spec.fields) out[k] = zeroOf(s);
      return out;
    }
  }
}

const jsonKind = (v: unknown) =>
  Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v === 'boolean' ? 'bool' : typeof v;

const goTypeName = (spec: Spec) =>
  spec.t === 'string'
    ? 'string'
    : spec.t === 'bool'
      ? 'bool'
      : spec.t === 'strings'
        ? '[]string'
        : `zooid.${spec.name}`;

interface DecodeContext {
  error: string | null;
  structName: string;
}

/** Decodes `value` into `current` like Go: case-insensitive keys, unknown keys ignored, null a no-op. */
function decodeInto(current: unknown, value: unknown, spec: Spec, path: string, ctx: DecodeContext): unknown {
  const typeError = () => {
    ctx.error ??= path
      ? `json: cannot unmarshal ${jsonKind(value)} into Go struct field ${ctx.structName}.${path} of type ${goTypeName(spec)}`
      : `json: cannot unmarshal ${jsonKind(value)} into Go value of type ${goTypeName(spec)}`;
    return current;
  };
  if (value === null) {
    return spec.t === 'strings' ? [] : spec.t === 'map' ? {} : current;
  }
  switch (spec.t) {
    case 'string':
      return typeof value === 'string' ? value : typeError();
    case 'bool':
      return typeof value === 'boolean' ? value : typeError();
    case 'strings': {
      if (!Array.isArray(value)) return typeError();
      const out: string[] = [];
      for (const item of value) {
        if (item === null) out.push('');
        else if (typeof item === 'string') out.push(item);
        else {
          ctx.error ??= `json: cannot unmarshal ${jsonKind(item)} into Go struct field ${ctx.structName}.${path} of type string`;
          out.push('');
        }
      }
      return out;
    }
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) return typeError();
      const out = { ...(current as Record<string, unknown>) };
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        setOwn(out, key, decodeInto(zeroOf(spec.value), v, spec.value, `${path}.${key}`, ctx));
      }
      return out;
    }
    case 'struct': {
      if (typeof value !== 'object' || Array.isArray(value)) return typeError();
      const out = { ...(current as Record<string, unknown>) };
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        const field =
          spec.fields.find(([name]) => name === key) ??
          spec.fields.find(([name]) => name.toLowerCase() === key.toLowerCase());
        if (!field) continue;
        const [name, fieldSpec] = field;
        const outer = ctx.structName;
        ctx.structName = spec.name;
        out[name] = decodeInto(out[name], v, fieldSpec, path ? `${path}.${name}` : name, ctx);
        ctx.structName = outer;
      }
      return out;
    }
  }
}

function decodeConfig(
  value: unknown,
  variant: ZooidVariant,
): { config: ZooidStoredConfig; error: string | null } {
  const spec = configSpec(variant);
  const ctx: DecodeContext = { error: null, structName: 'Config' };
  const config = decodeInto(zeroOf(spec), value, spec, '', ctx) as ZooidStoredConfig;
  return { config, error: ctx.error };
}

/** Roughly Go's syntax error texts, from V8's. */
function goSyntaxError(text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  if (text.trim() === '' || /Unexpected end/.test(message)) return 'unexpected end of JSON input';
  const token = /Unexpected token '(.+?)'/.exec(message)?.[1];
  const pos = Number(/position (\d+)/.exec(message)?.[1] ?? -1);
  const ch = token ?? (pos >= 0 && pos < text.length ? text[pos] : undefined);
  if (ch === undefined) return 'unexpected end of JSON input';
  return `invalid character '${ch}' looking for beginning of value`;
}

function parseJson(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: goSyntaxError(text, err) };
  }
}

/** Go's json.Marshal of a map sorts keys: PATCH merges are re-decoded in that order. */
function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort())
      setOwn(out, key, sortKeysDeep((value as Record<string, unknown>)[key]));
    return out;
  }
  return value;
}

/** zooid's PATCH merge: null deletes, object onto object recurses, anything else replaces. */
function deepMerge(dst: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(src)) {
    if (value === null) {
      delete dst[key];
      continue;
    }
    const existing = Object.hasOwn(dst, key) ? dst[key] : undefined;
    if (isObject(value) && isObject(existing)) {
      deepMerge(existing, value);
      continue;
    }
    setOwn(dst, key, value);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// Validation (docs/zooid-contract.md §1, in order).

const SECP256K1_N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');

function secretKeyError(secret: string): string | null {
  const bad = secret.search(/[^0-9a-fA-F]/);
  if (bad !== -1) {
    const ch = secret.codePointAt(bad) ?? 0;
    return `encoding/hex: invalid byte: U+${ch.toString(16).toUpperCase().padStart(4, '0')} ${JSON.stringify(String.fromCodePoint(ch)).replace(/^"|"$/g, "'")}`;
  }
  if (secret.length > 64) return 'secret key should be at most 64 hex characters';
  const k = BigInt(`0x${secret.padStart(64, '0')}`);
  if (k === 0n) return 'secret key is zero';
  if (k >= SECP256K1_N) return 'secret key is not below the curve order';
  return null;
}

function pubkeyError(pubkey: string): string | null {
  if (pubkey.length !== 64) return `pubkey should be 64-char hex, got '${pubkey}'`;
  if (!isValidPublicKey(pubkey.toLowerCase())) return `'${pubkey}' is not a valid pubkey`;
  return null;
}

function validate(c: ZooidStoredConfig, variant: ZooidVariant): string | null {
  if (variant === 'v2' && !c.blossom.adapter) c.blossom.adapter = 'local';
  if (c.host === '') return 'host is required';
  if (c.schema === '') return 'schema is required';
  if (variant === 'v1p' && !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(c.schema)) {
    return 'schema must contain only letters, numbers, and underscores';
  }
  if (variant === 'v2' && !/^[a-z_][a-z0-9_]*$/.test(c.schema)) {
    return 'schema must contain only lowercase letters, numbers, and underscores';
  }
  if (variant !== 'v2' && c.secret === '') return 'secret is required';
  const secretError = secretKeyError(c.secret);
  if (secretError) return `invalid secret key: ${secretError}`;
  if (variant === 'v1p' && c.info.pubkey === '') return 'info.pubkey is required';
  if (variant === 'v2' || c.info.pubkey !== '') {
    const err = pubkeyError(c.info.pubkey);
    if (err) return `invalid info.pubkey: ${err}`;
  }
  if (variant === 'v2') {
    if (c.blossom.adapter === 's3') {
      const s3 = c.blossom.s3;
      for (const key of ['bucket', 'region', 'access_key', 'secret_key'] as const) {
        if (!s3 || s3[key] === '') return `blossom.s3.${key} is required when blossom.adapter is s3`;
      }
    } else if (c.blossom.adapter !== 'local') {
      return 'invalid blossom adapter';
    }
  }
  return null;
}

const clone = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------------------------------------

export async function startZooidEmulator(options: ZooidEmulatorOptions): Promise<ZooidEmulator> {
  const variant = options.variant ?? 'v2';
  const clock = options.clock ?? systemClock;
  const rng = options.rng ?? systemRandom;
  const listenHost = options.host ?? '127.0.0.1';
  const parseWhitelist = (list: readonly string[] | string) =>
    (typeof list === 'string' ? list.split(',') : [...list]).map((s) => s.trim()).filter((s) => s !== '');
  let whitelist = parseWhitelist(options.whitelist);
  let whitelistSet = new Set(whitelist);
  const dir = options.configDir ?? null;
  let faults: ZooidFaults = { ...(options.faults ?? {}) };
  const recording = options.record ?? true;

  const store = new Map<string, ZooidStoredConfig>();
  const accepted = new Map<string, ZooidAcceptedChange[]>();
  const requests: ZooidRequestRecord[] = [];
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const timers = new Set<{ handle: TimerHandle; resolve: () => void }>();
  let apiHost = options.apiHost ?? '';
  let closed = false;

  if (dir) {
    // The files hold relay secrets.
    makePrivateDir(dir);
    for (const name of readdirSync(dir).sort()) {
      if (!name.endsWith('.toml')) continue;
      try {
        const { config, error } = decodeConfig(parseToml(readFileSync(join(dir, name), 'utf8')), variant);
        if (!error) store.set(name.slice(0, -'.toml'.length), config);
      } catch {
        // zooid only logs files it cannot decode.
      }
    }
  }

  const persist = (id: string, config: ZooidStoredConfig | null) => {
    if (dir) {
      const file = join(dir, `${id}.toml`);
      if (config) writePrivateFileSync(file, stringifyToml(config));
      else unlinkSync(file);
    }
    if (config) store.set(id, config);
    else store.delete(id);
  };

  const record = (id: string, method: ZooidAcceptedChange['method'], body: unknown) => {
    if (!recording) return;
    const list = accepted.get(id) ?? [];
    const config = store.get(id);
    list.push({ method, body, config: config ? clone(config) : null, at: clock.now() });
    accepted.set(id, list);
  };

  /** Schema first, then host, file by file in name order; inactive relays count too. */
  const uniquenessError = (id: string | null, c: ZooidStoredConfig): string | null => {
    for (const otherId of [...store.keys()].sort((a, b) => (`${a}.toml` < `${b}.toml` ? -1 : 1))) {
      if (otherId === id) continue;
      const other = store.get(otherId)!;
      if (other.schema === c.schema) return `schema ${JSON.stringify(c.schema)} is already in use`;
      if (other.host === c.host) return `host ${JSON.stringify(c.host)} is already in use`;
    }
    return null;
  };

  const decodeBody = (raw: Buffer, prefix: string): { config: ZooidStoredConfig } | { reply: Reply } => {
    const text = raw.toString('utf8');
    const parsed = parseJson(text);
    if ('error' in parsed) return { reply: errorReply(400, `${prefix}${parsed.error}`) };
    const { config, error } = decodeConfig(parsed.value, variant);
    if (error) return { reply: errorReply(400, `${prefix}${error}`) };
    return { config };
  };

  const create = (id: string, body: Buffer, tooLarge: boolean): Reply => {
    if (store.has(id)) return errorReply(409, 'relay with this id already exists');
    if (tooLarge) return errorReply(400, 'failed to read body: http: request body too large');
    const decoded = decodeBody(body, 'invalid json config: ');
    if ('reply' in decoded) return decoded.reply;
    const invalid = validate(decoded.config, variant);
    if (invalid) return errorReply(400, invalid);
    const conflict = uniquenessError(null, decoded.config);
    if (conflict) return errorReply(409, conflict);
    persist(id, decoded.config);
    return jsonReply(201, { message: 'relay created successfully' });
  };

  const replace = (id: string, body: Buffer, tooLarge: boolean): Reply => {
    if (!store.has(id)) return errorReply(404, 'relay not found');
    if (tooLarge) return errorReply(400, 'failed to read body: http: request body too large');
    const decoded = decodeBody(body, 'invalid json config: ');
    if ('reply' in decoded) return decoded.reply;
    const invalid = validate(decoded.config, variant);
    if (invalid) return errorReply(400, invalid);
    const conflict = uniquenessError(id, decoded.config);
    if (conflict) return errorReply(409, conflict);
    persist(id, decoded.config);
    return jsonReply(200, { message: 'relay updated successfully' });
  };

  const patch = (id: string, body: Buffer, tooLarge: boolean): Reply => {
    const existing = store.get(id);
    if (!existing) return errorReply(404, 'relay not found');
    if (tooLarge) return errorReply(400, 'failed to read body: http: request body too large');
    const parsed = parseJson(body.toString('utf8'));
    if ('error' in parsed) return errorReply(400, `invalid json: ${parsed.error}`);
    if (parsed.value !== null && !isObject(parsed.value)) {
      return errorReply(
        400,
        `invalid json: json: cannot unmarshal ${jsonKind(parsed.value)} into Go value of type map[string]interface {}`,
      );
    }
    const base = clone(existing) as unknown as Record<string, unknown>;
    if (options.patchClearsSecret) base.secret = '';
    if (parsed.value) deepMerge(base, parsed.value);
    const { config, error } = decodeConfig(sortKeysDeep(base), variant);
    if (error) return errorReply(400, error);
    const invalid = validate(config, variant);
    if (invalid) return errorReply(400, invalid);
    const conflict = uniquenessError(id, config);
    if (conflict) return errorReply(409, conflict);
    persist(id, config);
    return jsonReply(200, { message: 'relay patched successfully' });
  };

  const remove = (id: string): Reply => {
    if (!store.has(id)) return errorReply(404, 'relay not found');
    try {
      persist(id, null);
    } catch (err) {
      return errorReply(500, `failed to delete config: ${(err as Error).message}`);
    }
    return jsonReply(200, { message: 'relay deleted successfully' });
  };

  const members = (id: string): Reply => {
    const c = store.get(id);
    if (!c) return errorReply(404, 'relay not found');
    const set = new Set<string>();
    if (c.info.pubkey) set.add(c.info.pubkey);
    for (const [name, role] of Object.entries(c.roles)) {
      if (name === 'member') continue;
      for (const pk of role.pubkeys) if (pk) set.add(pk);
    }
    return jsonReply(200, { members: [...set].sort() });
  };

  const authenticate = (req: IncomingMessage, path: string, rec: ZooidRequestRecord): Reply | null => {
    const scheme = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
    const verdict = verifyNip98(req.headers.authorization, {
      url: `${scheme}://${req.headers.host ?? ''}${path}`,
      method: req.method ?? '',
      now: clock.now(),
      windowSeconds: variant === 'v2' ? 60 : null,
    });
    if (!verdict.ok) return errorReply(verdict.status, verdict.error);
    if (!whitelistSet.has(verdict.pubkey)) return errorReply(403, 'pubkey not in whitelist');
    rec.pubkey = verdict.pubkey;
    return null;
  };

  type Route = { id: string; action: 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'members' } | { reply: Reply };

  const safeDecode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };

  /** V1: auth first (done by the caller), then segment checks. */
  const routeV1 = (method: string, path: string): Route => {
    const parts = safeDecode(path).replace(/^\//, '').split('/');
    if (parts[0] !== 'relay' || parts.length < 2) return { reply: errorReply(404, 'not found') };
    const id = parts[1]!;
    if (id === '') return { reply: errorReply(400, 'relay id is required') };
    if (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE')
      return { id, action: method };
    return { reply: errorReply(405, 'method not allowed') };
  };

  /** V2: Go 1.22 ServeMux patterns; unmatched → plain 404, wrong method → plain 405 + Allow. */
  const routeV2 = (method: string, path: string): Route => {
    const segs = path.split('/');
    if (segs.length === 3 && segs[1] === 'relay' && segs[2] !== '') {
      const id = safeDecode(segs[2]!);
      if (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE') {
        return { id, action: method };
      }
      return { reply: textReply(405, 'Method Not Allowed', { allow: 'DELETE, PATCH, POST, PUT' }) };
    }
    if (segs.length === 4 && segs[1] === 'relay' && segs[2] !== '' && segs[3] === 'members') {
      if (method === 'GET' || method === 'HEAD') return { id: safeDecode(segs[2]!), action: 'members' };
      return { reply: textReply(405, 'Method Not Allowed', { allow: 'GET, HEAD' }) };
    }
    return { reply: textReply(404, '404 page not found') };
  };

  const guessId = (path: string): string | null => {
    const segs = path.split('/');
    return segs[1] === 'relay' && segs[2] ? safeDecode(segs[2]) : null;
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = {
        handle: clock.setTimeout(() => {
          timers.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      timers.add(entry);
    });

  const readBody = (req: IncomingMessage) =>
    new Promise<{ body: Buffer; tooLarge: boolean }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let ended = false;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= BODY_LIMIT) chunks.push(chunk);
      });
      req.on('end', () => {
        ended = true;
        resolve({ body: Buffer.concat(chunks), tooLarge: size > BODY_LIMIT });
      });
      req.on('error', reject);
      req.on('close', () => {
        if (!ended) reject(new Error('client went away before sending the whole body'));
      });
    });

  const send = (res: ServerResponse, reply: Reply, head: boolean) => {
    res.writeHead(reply.status, {
      'content-type': reply.contentType,
      'content-length': Buffer.byteLength(reply.body),
      ...(reply.headers ?? {}),
    });
    res.end(head ? undefined : reply.body);
  };

  const relayHost = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const host = req.headers.host ?? '';
    const relay = [...store.values()].find((c) => c.host === host && !c.inactive);
    if (!relay) return send(res, textReply(404, 'relay not found'), req.method === 'HEAD');
    const secret = relay.secret.padStart(64, '0');
    send(
      res,
      {
        status: 200,
        contentType: 'application/nostr+json',
        body: goJson({
          name: relay.info.name,
          icon: relay.info.icon,
          description: relay.info.description,
          pubkey: relay.info.pubkey,
          self: secretKeyError(secret) ? '' : publicKeyOf(secret.toLowerCase()),
          software: 'zooid-emulator',
        }),
      },
      req.method === 'HEAD',
    );
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const path = rawUrl.replace(/[?#].*$/, '');
    const id = guessId(path);
    const rec: ZooidRequestRecord = {
      method,
      path,
      id,
      body: null,
      at: clock.now(),
      status: 0,
      pubkey: null,
      fault: null,
    };
    if (recording) requests.push(rec);
    if (id !== null) {
      const n = (inFlight.get(id) ?? 0) + 1;
      inFlight.set(id, n);
      if (n > (maxInFlight.get(id) ?? 0)) maxInFlight.set(id, n);
      res.once('close', () => inFlight.set(id, (inFlight.get(id) ?? 1) - 1));
    }
    const { body, tooLarge } = await readBody(req);
    rec.body = tooLarge ? '<body over 1 MiB>' : body.length === 0 ? null : logBody(body);
    const f = faults;
    if (f.latencyMs && f.latencyMs > 0) await wait(f.latencyMs);
    if (closed) {
      req.socket.destroy();
      return;
    }
    const drop = faults.dropConnections;
    if (drop === true || (typeof drop === 'number' && drop > 0)) {
      if (typeof drop === 'number') faults = { ...faults, dropConnections: drop - 1 };
      rec.fault = 'drop';
      req.socket.destroy();
      return;
    }
    const failStatus = faults.failStatus ?? 500;
    if (
      faults.failAll ||
      (faults.errorRate !== undefined && faults.errorRate > 0 && rng() < faults.errorRate)
    ) {
      rec.fault = 'error';
      rec.status = failStatus;
      return send(res, errorReply(failStatus, 'injected failure'), false);
    }
    const override = faults.statusOverride?.[method as ZooidMethod];
    if (override !== undefined) {
      const o = typeof override === 'number' ? { status: override } : override;
      rec.fault = 'override';
      rec.status = o.status;
      return send(
        res,
        o.body === undefined
          ? errorReply(o.status, 'injected')
          : { status: o.status, body: o.body, contentType: o.contentType ?? 'text/plain; charset=utf-8' },
        false,
      );
    }
    const reply = dispatch(req, method, path, body, tooLarge, rec);
    rec.status = reply.status;
    send(res, reply, method === 'HEAD');
  };

  const dispatch = (
    req: IncomingMessage,
    method: string,
    path: string,
    body: Buffer,
    tooLarge: boolean,
    rec: ZooidRequestRecord,
  ): Reply => {
    let route: Route;
    if (variant === 'v2') {
      route = routeV2(method, path);
      if ('reply' in route) return route.reply;
      const denied = authenticate(req, path, rec);
      if (denied) return denied;
    } else {
      const denied = authenticate(req, path, rec);
      if (denied) return denied;
      route = routeV1(method, path);
      if ('reply' in route) return route.reply;
    }
    const { id, action } = route;
    let reply: Reply;
    try {
      switch (action) {
        case 'POST':
          reply = create(id, body, tooLarge);
          break;
        case 'PUT':
          reply = replace(id, body, tooLarge);
          break;
        case 'PATCH':
          reply = patch(id, body, tooLarge);
          break;
        case 'DELETE':
          reply = remove(id);
          break;
        case 'members':
          return members(id);
      }
    } catch (err) {
      return errorReply(500, `failed to write config: ${(err as Error).message}`);
    }
    if (reply.status >= 200 && reply.status < 300) {
      record(id, action, rec.body);
    }
    return reply;
  };

  const server = createServer((req, res) => {
    if (apiHost !== '' && req.headers.host === apiHost) {
      handleApi(req, res).catch(() => {
        if (!res.headersSent) send(res, errorReply(500, 'internal error'), false);
        else res.destroy();
      });
    } else {
      relayHost(req, res);
    }
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, listenHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  if (apiHost === '') apiHost = `${hostForUrl}:${port}`;

  return {
    url: `http://${hostForUrl}:${port}`,
    port,
    apiHost,
    variant,
    get pubkeysAllowed() {
      return [...whitelist];
    },
    dir,
    requests,
    relays: () => new Map([...store].map(([id, c]) => [id, clone(c)])),
    accepted: (id) => clone(accepted.get(id) ?? []),
    maxConcurrentPerRelay: (id) =>
      id === undefined ? Math.max(0, ...maxInFlight.values()) : (maxInFlight.get(id) ?? 0),
    setFaults(next) {
      faults = { ...next };
    },
    setWhitelist(next) {
      whitelist = parseWhitelist(next);
      whitelistSet = new Set(whitelist);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) {
        clock.clearTimeout(t.handle);
        t.resolve();
      }
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function logBody(body: Buffer): unknown {
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export interface ZooidEmulatorCliOptions {
  port?: number | string;
  /** Hex pubkeys, as an array or one comma-separated string. */
  whitelist: readonly string[] | string;
  configDir?: string;
  host?: string;
  apiHost?: string;
  variant?: ZooidVariant;
  /** Where the one JSON line goes. Default stdout. */
  log?: (line: string) => void;
}

/** `bosun zooid-emulator`: starts the emulator and prints one JSON line with its URL. */
export async function runZooidEmulatorCli(options: ZooidEmulatorCliOptions): Promise<ZooidEmulator> {
  const whitelist = (
    typeof options.whitelist === 'string' ? options.whitelist.split(',') : [...options.whitelist]
  )
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (whitelist.length === 0) throw new Error('--whitelist: give at least one hex pubkey (bosun key pubkey)');
  for (const pk of whitelist) {
    if (!/^[0-9a-f]{64}$/.test(pk)) {
      throw new Error(
        `--whitelist: ${JSON.stringify(pk.slice(0, 80))} is not a 64-character lowercase hex pubkey (zooid matches exact strings; npub never matches)`,
      );
    }
  }
  const port = options.port === undefined ? 0 : Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error('--port: must be an integer 0-65535');
  const variant = options.variant ?? 'v2';
  if (!['v1', 'v1p', 'v2'].includes(variant)) throw new Error('--variant: must be v1, v1p or v2');
  const emulator = await startZooidEmulator({
    port,
    whitelist,
    ...(options.configDir ? { configDir: options.configDir } : {}),
    ...(options.host ? { host: options.host } : {}),
    ...(options.apiHost ? { apiHost: options.apiHost } : {}),
    variant,
  });
  const line = JSON.stringify({
    level: 'info',
    msg: 'zooid emulator listening',
    url: emulator.url,
    api_host: emulator.apiHost,
    variant: emulator.variant,
    whitelist,
    config_dir: emulator.dir,
  });
  (options.log ?? ((l: string) => process.stdout.write(`${l}\n`)))(line);
  return emulator;
}
