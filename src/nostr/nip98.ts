/**
 * NIP-98 HTTP auth as zooid's management API checks it (docs/zooid-contract.md §2).
 *
 * Signing dominates the cost of a push sync, so events are signed with libsecp256k1 compiled to
 * WebAssembly (`nostr-wasm`, a dependency of nostr-tools), initialised once in the background when
 * this module is imported (`nip98Ready()`); until then, or if it cannot load, with @noble/curves
 * (pure JS, ~10× slower). Both paths produce and accept the same events; `nip98Backend()` says
 * which one is in use. No top-level await, so the module also loads where that is unsupported.
 * `bosun serve` signs on worker threads (signer-pool.ts) with the same template and finalize steps.
 */
import { createHash } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';
import { type Clock, systemClock } from '../domain/clock.js';
import { isValidSecretKey } from '../domain/keys.js';

export const NIP98_KIND = 27235;

export interface NostrEvent {
  id: string;
  pubkey: string;
  created_at: number;
  kind: number;
  tags: string[][];
  content: string;
  sig: string;
}

type EventTemplate = Pick<NostrEvent, 'kind' | 'created_at' | 'tags' | 'content'>;

interface Backend {
  readonly name: 'wasm' | 'pure';
  publicKey(secret: Uint8Array): string;
  /** Returns the signed event: id, pubkey and sig filled in. */
  finalize(template: EventTemplate, secret: Uint8Array, pubkey: string): NostrEvent;
  /** True when `id` is the hash of the event's serialization and `sig` signs it for `pubkey`. */
  verify(event: NostrEvent): boolean;
}

/** The subset of nostr-wasm's API used here (its own typings reference DOM types). */
interface NostrWasmApi {
  getPublicKey(secret: Uint8Array): Uint8Array;
  finalizeEvent(
    event: Omit<NostrEvent, 'id' | 'pubkey' | 'sig'> & Partial<NostrEvent>,
    secret: Uint8Array,
  ): void;
  verifyEvent(event: NostrEvent): void;
}

const serialize = (e: Omit<NostrEvent, 'id' | 'sig'>) =>
  JSON.stringify([0, e.pubkey, e.created_at, e.kind, e.tags, e.content]);

const eventHash = (e: Omit<NostrEvent, 'id' | 'sig'>) => createHash('sha256').update(serialize(e)).digest();

const pureBackend: Backend = {
  name: 'pure',
  publicKey: (secret) => Buffer.from(schnorr.getPublicKey(secret)).toString('hex'),
  finalize(template, secret, pubkey) {
    const unsigned = { ...template, pubkey };
    const hash = eventHash(unsigned);
    const sig = Buffer.from(schnorr.sign(hash, secret)).toString('hex');
    return { ...unsigned, id: hash.toString('hex'), sig };
  },
  verify(event) {
    const hash = eventHash(event);
    if (hash.toString('hex') !== event.id) return false;
    try {
      return schnorr.verify(Buffer.from(event.sig, 'hex'), hash, Buffer.from(event.pubkey, 'hex'));
    } catch {
      return false;
    }
  },
};

function wasmBackend(nw: NostrWasmApi): Backend {
  return {
    name: 'wasm',
    publicKey: (secret) => Buffer.from(nw.getPublicKey(secret)).toString('hex'),
    finalize(template, secret) {
      // nostr-wasm derives the pubkey from the key itself and fills pubkey, id and sig in place.
      const event = { ...template } as NostrEvent;
      nw.finalizeEvent(event, secret);
      return event;
    },
    verify(event) {
      try {
        nw.verifyEvent(event);
        return true;
      } catch {
        return false;
      }
    },
  };
}

async function loadWasm(): Promise<Backend | null> {
  if (process.env.BOSUN_NIP98_BACKEND === 'pure') return null;
  try {
    const specifier = 'nostr-wasm';
    const mod = (await import(specifier)) as { initNostrWasm: () => Promise<NostrWasmApi> };
    const backend = wasmBackend(await mod.initNostrWasm());
    // Self-test once: a wasm build that signs wrongly must never be used.
    const secret = Buffer.alloc(32, 7);
    const pubkey = pureBackend.publicKey(secret);
    const event = backend.finalize(
      { kind: 1, created_at: 1, tags: [], content: 'self-test' },
      secret,
      pubkey,
    );
    if (event.pubkey !== pubkey || !pureBackend.verify(event) || !backend.verify({ ...event })) return null;
    return backend;
  } catch {
    return null;
  }
}

let wasm: Backend | null = null;
let backend: Backend = pureBackend;
let forced = false;
const ready: Promise<'wasm' | 'pure'> = loadWasm().then((loaded) => {
  wasm = loaded;
  if (loaded && !forced) backend = loaded;
  return backend.name;
});

/**
 * Resolves once the wasm backend has loaded (or failed to, leaving pure JS), about 40 ms after
 * import. Signing before that works, on the pure-JS path; await this at start-up for full speed.
 */
export function nip98Ready(): Promise<'wasm' | 'pure'> {
  return ready;
}

/** Which implementation signs and verifies now: libsecp256k1 in WebAssembly, or pure JS. */
export function nip98Backend(): 'wasm' | 'pure' {
  return backend.name;
}

/**
 * Forces an implementation; returns false when wasm is not (yet) available. Only tests call it (to
 * check that both agree), but it must live here: the backend in use is this module's own state.
 */
export function useNip98Backend(name: 'wasm' | 'pure'): boolean {
  if (name === 'wasm') {
    if (!wasm) return false;
    backend = wasm;
  } else {
    backend = pureBackend;
  }
  forced = true;
  return true;
}

export interface Nip98Signer {
  /** The signer's public key, lowercase hex: the value zooid's API_WHITELIST must contain. */
  readonly pubkey: string;
  /**
   * Resolves with the whole `Authorization` header value for one request: `Nostr <base64 event>`.
   * `url` is the absolute request URL; any query string or fragment is dropped (zooid compares the
   * `u` tag with `<scheme>://<Host><path>`), nothing else is normalised. `created_at` is read from
   * the clock when this is called, not when the signature is computed.
   */
  sign(url: string, method: string, body?: Uint8Array | string): Promise<string>;
  /** Resolves once signing runs at full speed; signing before that works, just slower. */
  ready(): Promise<void>;
  /** Releases what the signer holds (threads); later `sign` calls still work, on the calling thread. */
  close(): Promise<void>;
}

export interface Nip98SignerOptions {
  clock?: Clock;
}

/** What varies between NIP-98 events: everything else (kind, empty content) is fixed. */
export interface Nip98Template {
  created_at: number;
  tags: string[][];
}

/** Lowercase-hex SHA-256 of the exact body bytes (strings are UTF-8). */
export function payloadHash(body: Uint8Array | string): string {
  return createHash('sha256').update(body).digest('hex');
}

/** The URL without its query string and fragment, as zooid rebuilds it. */
export function stripQuery(url: string): string {
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

/** The unsigned part of one request's event; `nowMs` is the caller's clock reading. */
export function nip98Template(
  url: string,
  method: string,
  body: Uint8Array | string | undefined,
  nowMs: number,
): Nip98Template {
  const tags = [
    ['u', stripQuery(url)],
    ['method', method.toUpperCase()],
  ];
  if (body !== undefined) tags.push(['payload', payloadHash(body)]);
  return { created_at: Math.floor(nowMs / 1000), tags };
}

/** The secret key's bytes; the error never repeats the input, which may be a real key. */
export function nip98SecretBytes(secretHex: string): Uint8Array {
  if (!isValidSecretKey(secretHex)) {
    throw new Error('NIP-98 signing key must be a 64-character lowercase hex Nostr secret key');
  }
  return Uint8Array.from(Buffer.from(secretHex, 'hex'));
}

export function nip98PublicKey(secret: Uint8Array): string {
  return backend.publicKey(secret);
}

/** Signs a template with the current backend and encodes it as an `Authorization` header value. */
export function signNip98Template(template: Nip98Template, secret: Uint8Array, pubkey: string): string {
  const event = backend.finalize(
    { kind: NIP98_KIND, created_at: template.created_at, tags: template.tags, content: '' },
    secret,
    pubkey,
  );
  return `Nostr ${Buffer.from(JSON.stringify(event)).toString('base64')}`;
}

/** Signs on the calling thread. */
export function createNip98Signer(secretHex: string, options: Nip98SignerOptions = {}): Nip98Signer {
  const secret = nip98SecretBytes(secretHex);
  const clock = options.clock ?? systemClock;
  const pubkey = nip98PublicKey(secret);
  return {
    pubkey,
    sign: async (url, method, body) =>
      signNip98Template(nip98Template(url, method, body, clock.now()), secret, pubkey),
    ready: async () => {
      await ready;
    },
    close: async () => {},
  };
}

export interface Nip98VerifyOptions {
  /** `<scheme>://<Host header><path>`, without query: what a `u` tag must equal exactly. */
  url: string;
  /** The request method; a `method` tag, uppercased, must equal it. */
  method: string;
  /** The request body; only used when `checkPayload` is set (zooid never checks `payload`). */
  body?: Uint8Array | string;
  /** Current time in milliseconds since the epoch. */
  now: number;
  /** Allowed |now − created_at| in seconds (zooid V2: 60); null or absent: no time check (V1). */
  windowSeconds?: number | null;
  /** When given, the pubkey must be in it, else 403 `pubkey not in whitelist`. */
  whitelist?: ReadonlySet<string> | readonly string[];
  /** Stricter than zooid: a `payload` tag, when present, must be the SHA-256 of `body`. */
  checkPayload?: boolean;
}

export type Nip98Verdict =
  | { ok: true; pubkey: string; event: NostrEvent }
  | { ok: false; status: 401 | 403; error: string };

const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

const fail = (error: string, status: 401 | 403 = 401): Nip98Verdict => ({ ok: false, status, error });

/**
 * True when the event's `id` is the hash of its content and `sig` signs it for `pubkey`: the one
 * signature check of both NIP-98 verifiers (zooid's, and bosun's own API auth), on the wasm
 * backend once it has loaded.
 */
export function verifyEventSignature(event: NostrEvent): boolean {
  return HEX64.test(event.id) && HEX64.test(event.pubkey) && HEX128.test(event.sig) && backend.verify(event);
}

/**
 * Checks an `Authorization` header in zooid's order (docs/zooid-contract.md §2): presence, scheme, standard
 * padded base64, event JSON, kind, signature, time window (when `windowSeconds` is set), `u` tag,
 * `method` tag, then the whitelist (403). Errors are zooid's texts.
 */
export function verifyNip98(header: string | null | undefined, options: Nip98VerifyOptions): Nip98Verdict {
  if (!header) return fail('missing authorization header');
  const space = header.indexOf(' ');
  if (space === -1 || header.slice(0, space).toLowerCase() !== 'nostr') {
    return fail('invalid authorization header format');
  }
  const encoded = header.slice(space + 1);
  if (!STD_BASE64.test(encoded)) {
    return fail(`invalid base64 encoding: illegal base64 data at input byte ${badBase64Offset(encoded)}`);
  }
  const decoded = decodeEvent(Buffer.from(encoded, 'base64').toString('utf8'));
  if (typeof decoded === 'string') return fail(`invalid event json: ${decoded}`);
  const event = decoded;
  if (event.kind !== NIP98_KIND) return fail(`invalid event kind: expected ${NIP98_KIND}, got ${event.kind}`);
  if (!verifyEventSignature(event)) return fail('invalid event signature');
  if (options.windowSeconds !== undefined && options.windowSeconds !== null) {
    const nowSeconds = Math.floor(options.now / 1000);
    if (Math.abs(nowSeconds - event.created_at) > options.windowSeconds) {
      return fail('event is outside the allowed time window');
    }
  }
  if (!event.tags.some((t) => t[0] === 'u' && t[1] === options.url)) {
    return fail('event missing or invalid u tag');
  }
  const method = options.method.toUpperCase();
  if (!event.tags.some((t) => t[0] === 'method' && t[1] !== undefined && t[1].toUpperCase() === method)) {
    return fail('event missing or invalid method tag');
  }
  if (options.checkPayload && options.body !== undefined) {
    const payload = event.tags.find((t) => t[0] === 'payload');
    if (payload && payload[1] !== payloadHash(options.body))
      return fail('event payload tag does not match the body');
  }
  if (options.whitelist) {
    const list = options.whitelist;
    const allowed = Array.isArray(list)
      ? list.includes(event.pubkey)
      : (list as ReadonlySet<string>).has(event.pubkey);
    if (!allowed) return fail('pubkey not in whitelist', 403);
  }
  return { ok: true, pubkey: event.pubkey, event };
}

function badBase64Offset(s: string): number {
  const bad = s.search(/[^A-Za-z0-9+/=]/);
  if (bad !== -1) return bad;
  const pad = s.indexOf('=');
  if (pad !== -1 && pad < s.length - 2) return pad;
  return Math.max(0, s.length - (s.length % 4 || 4));
}

const jsonType = (v: unknown) =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v;

/**
 * Decodes the event like Go's encoding/json into a struct: missing fields stay zero, null is a
 * no-op, a wrong type is an error. Returns the event or the error text.
 */
function decodeEvent(text: string): NostrEvent | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return text.trim() === '' ? 'unexpected end of JSON input' : 'invalid character in JSON input';
  }
  if (raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return `json: cannot unmarshal ${jsonType(raw)} into Go value of type nostr.Event`;
  }
  const src = raw as Record<string, unknown>;
  const event: NostrEvent = { id: '', pubkey: '', created_at: 0, kind: 0, tags: [], content: '', sig: '' };
  const typeError = (field: string, goType: string) =>
    `json: cannot unmarshal ${jsonType(src[field])} into Go struct field Event.${field} of type ${goType}`;
  for (const field of ['id', 'pubkey', 'content', 'sig'] as const) {
    const v = src[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') return typeError(field, 'string');
    event[field] = v;
  }
  for (const field of ['created_at', 'kind'] as const) {
    const v = src[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return typeError(field, 'int64');
    event[field] = v;
  }
  const tags = src.tags;
  if (tags !== undefined && tags !== null) {
    if (!Array.isArray(tags)) return typeError('tags', 'nostr.Tags');
    for (const tag of tags) {
      if (tag === null) {
        event.tags.push([]);
        continue;
      }
      if (!Array.isArray(tag) || !tag.every((x) => typeof x === 'string'))
        return typeError('tags', 'nostr.Tag');
      event.tags.push(tag as string[]);
    }
  }
  return event;
}
