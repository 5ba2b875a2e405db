/**
 * Wire types and validators of the autoconfig stream (docs/stream-protocol.md §3, §8), shared by the
 * client (StreamManager) and the server. Validation never puts event data into a message: reasons
 * name fields and ids only, because payloads carry secrets.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { isValidSecretKey } from '../domain/keys.js';
import { jsonTooDeep, TOO_DEEP_JSON } from '../domain/nesting.js';

export const STREAM_PATH = '/v1/stream';
export const EPOCH_HEADER = 'Bosun-Epoch';
export const HELD_VERSIONS_HEADER = 'Bosun-Held-Versions';
/** A `Bosun-Held-Versions` value longer than this is not sent (and neither is `Bosun-Epoch`). */
export const MAX_HELD_VERSIONS_BYTES = 8 * 1024;

export const PUT_EVENT = 'put';
export const PATCH_EVENT = 'patch';
export const DELETE_EVENT = 'delete';
export const RECONNECT_EVENT = 'reconnect';

/** Relay ids double as file names (`<id>.toml`): no path separators, no leading dot. */
export const STREAM_RELAY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_VERSION = Number.MAX_SAFE_INTEGER;
const RELAYS_PREFIX = 'relays/';

export function isValidRelayId(id: unknown): id is string {
  return typeof id === 'string' && STREAM_RELAY_ID.test(id);
}

export function isValidVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_VERSION;
}

const versionSchema = z.number().refine(isValidVersion, 'must be an integer from 1 to 2^53−1');

export const expiringCredentialSchema = z.object({
  name: z.string().min(1).max(128),
  value: z.string().min(1).max(4096),
  /** Unix milliseconds. */
  expiresAt: z.number(),
});
export type ExpiringCredential = z.output<typeof expiringCredentialSchema>;

export const relayRepSchema = z.object({
  id: z.string().refine(isValidRelayId, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  version: versionSchema,
  /** The zooid config as push sync sends it (zooid-contract.md), without the secret. */
  config: z.record(z.string(), z.unknown()),
  secret: z.string().refine(isValidSecretKey, 'must be a 64-character lowercase hex Nostr secret key'),
  expiring: z.array(expiringCredentialSchema).default([]),
});
export type RelayRep = z.output<typeof relayRepSchema>;

/** `data` of a `reconnect` event. */
export interface ReconnectPayload {
  reason?: string;
  delayMs?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface ParsedPut {
  path: string;
  epoch: string | undefined;
  relays: Record<string, unknown>;
  delta: boolean;
  unchanged: string[];
}

const plainObject = z.record(z.string(), z.unknown());

const putSchema = z.object({
  path: z.string(),
  epoch: z.string().optional(),
  data: z.object({
    relays: plainObject,
    delta: z.boolean().optional(),
    unchanged: z.array(z.string()).optional(),
  }),
});
const patchSchema = z.object({ path: z.string(), data: plainObject });
const deleteSchema = z.object({ path: z.string(), version: versionSchema });
const reconnectSchema = z.object({
  reason: z.string().optional().catch(undefined),
  delayMs: z.number().min(0).optional().catch(undefined),
});

/** One line naming each bad field, without values (payloads hold secrets). */
function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(data)'}: ${issue.message}`)
    .join('; ');
}

function parseJson<T extends z.ZodType>(schema: T, text: string): Parsed<z.output<T>> {
  if (jsonTooDeep(text)) return { ok: false, reason: TOO_DEEP_JSON };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON.parse messages quote the input; never repeat it.
    return { ok: false, reason: 'not JSON' };
  }
  const result = schema.safeParse(json);
  return result.success ? { ok: true, value: result.data } : { ok: false, reason: describe(result.error) };
}

/** Parses a put's `data`; a failure means the event is malformed (§3). */
export function parsePut(text: string): Parsed<ParsedPut> {
  const parsed = parseJson(putSchema, text);
  if (!parsed.ok) return parsed;
  const { path, epoch, data } = parsed.value;
  return {
    ok: true,
    value: { path, epoch, relays: data.relays, delta: data.delta === true, unchanged: data.unchanged ?? [] },
  };
}

export function parsePatch(text: string): Parsed<{ path: string; data: Record<string, unknown> }> {
  return parseJson(patchSchema, text);
}

export function parseDelete(text: string): Parsed<{ path: string; version: number }> {
  return parseJson(deleteSchema, text);
}

/** Reconnect fields are optional; anything unusable is treated as absent. */
export function parseReconnect(text: string): ReconnectPayload {
  const parsed = parseJson(reconnectSchema, text);
  if (!parsed.ok) return {};
  const out: ReconnectPayload = {};
  if (parsed.value.reason !== undefined) out.reason = parsed.value.reason;
  if (parsed.value.delayMs !== undefined) out.delayMs = parsed.value.delayMs;
  return out;
}

/** `relays/<id>` -> `<id>` (not validated); undefined for any other path. */
export function relayIdFromPath(path: string): string | undefined {
  return path.startsWith(RELAYS_PREFIX) ? path.slice(RELAYS_PREFIX.length) : undefined;
}

export function relayPath(id: string): string {
  return RELAYS_PREFIX + id;
}

/**
 * Validates a rep that arrived under `key` (a put's map key or a patch path's id). A failure means
 * the rep is refused (§4): reported with onInvalidRelay, never applied.
 */
export function validateRelayRep(value: unknown, key: string): Parsed<RelayRep> {
  if (!isValidRelayId(key)) return { ok: false, reason: 'id: must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' };
  const result = relayRepSchema.safeParse(value);
  if (!result.success) return { ok: false, reason: describe(result.error) };
  if (result.data.id !== key) return { ok: false, reason: `id: ${result.data.id} differs from ${key}` };
  return { ok: true, value: result.data };
}

/** First 8 hex digits of SHA-256(value): names a credential in logs and callbacks without revealing it. */
export function fingerprint(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 8);
}

const byId = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * `id=v,…` in ascending id order, or undefined when the value would exceed 8 KiB (the client then
 * sends no resume headers and gets a full put).
 */
export function encodeHeldVersions(held: Iterable<readonly [string, number]>): string | undefined {
  const entries = [...held].sort((a, b) => byId(a[0], b[0]));
  const value = entries.map(([id, v]) => `${id}=${v}`).join(',');
  return Buffer.byteLength(value, 'utf8') > MAX_HELD_VERSIONS_BYTES ? undefined : value;
}

/**
 * Parses a `Bosun-Held-Versions` value. Returns undefined for anything malformed (bad id or version,
 * duplicate id, oversized): the server then sends a full put, never an error.
 */
export function parseHeldVersions(value: string): Map<string, number> | undefined {
  if (Buffer.byteLength(value, 'utf8') > MAX_HELD_VERSIONS_BYTES) return undefined;
  const held = new Map<string, number>();
  if (value.trim() === '') return held;
  for (const item of value.split(',')) {
    const eq = item.indexOf('=');
    if (eq < 0) return undefined;
    const id = item.slice(0, eq).trim();
    const digits = item.slice(eq + 1).trim();
    if (!isValidRelayId(id) || !/^[1-9][0-9]{0,15}$/.test(digits) || held.has(id)) return undefined;
    const version = Number(digits);
    if (!isValidVersion(version)) return undefined;
    held.set(id, version);
  }
  return held;
}
