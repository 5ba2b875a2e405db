/**
 * Maps a bosun relay to zooid request bodies (docs/zooid-contract.md §3): the full config for
 * POST/PUT, with Blossom S3 settings injected from the environment, and PATCH bodies that undo keys
 * removed since the last config zooid acknowledged (zooid PATCH is a deep merge).
 */
import type { RelayConfig } from '../../domain/relay.js';

/** Shared Blossom S3 settings (env `BLOSSOM_S3_*`), injected into every relay with blossom enabled. */
export interface BlossomS3 {
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  /** A set endpoint makes zooid use path-style addressing (e.g. MinIO); absent means AWS. */
  endpoint?: string;
}

export interface ZooidS3Body {
  region: string;
  bucket: string;
  access_key: string;
  secret_key: string;
  endpoint?: string;
  key_prefix: string;
}

/** Blossom as the record holds it; `adapter` and `s3` are added only when it is enabled and S3 is set. */
export type ZooidBlossomBody = RelayConfig['blossom'] & { adapter?: 's3'; s3?: ZooidS3Body };

/** The relay's whole config record as zooid takes it, plus the secret on POST/PUT. */
export type ZooidRelayBody = Omit<RelayConfig, 'blossom'> & { secret?: string; blossom: ZooidBlossomBody };

export interface ZooidBodyOptions {
  /** Include the relay's secret: on create (POST) and full replacement (PUT) only. */
  withSecret: boolean;
  blossomS3: BlossomS3 | null;
}

/**
 * The full zooid config for a relay; `secret` only when `withSecret`. Every field of the record is
 * sent as it is (a copy, so the body never aliases it): zooid's stored config must equal bosun's
 * record, and a field the body left out would silently fall back to zooid's zero value.
 */
export function zooidBody(
  relay: { config: RelayConfig; secret: string },
  options: ZooidBodyOptions,
): ZooidRelayBody {
  // A JSON copy keeps a role named `__proto__` an own key (JSON.parse defines, never assigns).
  const { host, schema, ...rest } = JSON.parse(JSON.stringify(relay.config)) as RelayConfig;
  return {
    host,
    schema,
    ...(options.withSecret ? { secret: relay.secret } : {}),
    ...rest,
    blossom: blossomBody(rest.blossom, schema, options.blossomS3),
  };
}

/** Only the shared S3 storage depends on `enabled`: a relay without Blossom gets no S3 credentials. */
function blossomBody(
  blossom: RelayConfig['blossom'],
  schema: string,
  s3: BlossomS3 | null,
): ZooidBlossomBody {
  if (!blossom.enabled || !s3) return blossom;
  return {
    ...blossom,
    adapter: 's3',
    s3: {
      region: s3.region,
      bucket: s3.bucket,
      access_key: s3.accessKey,
      secret_key: s3.secretKey,
      ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
      key_prefix: schema,
    },
  };
}

/**
 * Blossom S3 settings from `BLOSSOM_S3_REGION`, `_BUCKET`, `_ACCESS_KEY`, `_SECRET_KEY` (all
 * required, non-empty after trim) and the optional `_ENDPOINT`; null when any required one is missing.
 */
export function blossomS3FromEnv(env: Record<string, string | undefined> = process.env): BlossomS3 | null {
  const get = (name: string) => (env[`BLOSSOM_S3_${name}`] ?? '').trim();
  const region = get('REGION');
  const bucket = get('BUCKET');
  const accessKey = get('ACCESS_KEY');
  const secretKey = get('SECRET_KEY');
  if (!region || !bucket || !accessKey || !secretKey) return null;
  const endpoint = get('ENDPOINT');
  return { region, bucket, accessKey, secretKey, ...(endpoint ? { endpoint } : {}) };
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A PATCH body that takes zooid from `previousAcked` (the body it last acknowledged, or null when
 * unknown) to `next`: every key of `next` is set, arrays are sent whole, and every key present in
 * `previousAcked` but absent from `next` is sent as `null` (zooid deletes it, so the field falls back
 * to its zero value; `{"roles":{"admin":null}}` drops a role). `secret` is never included.
 */
export function patchBody(previousAcked: object | null, next: object): Record<string, Json> {
  const { secret: _prevSecret, ...prev } = (previousAcked ?? {}) as Record<string, unknown>;
  const { secret: _nextSecret, ...target } = next as Record<string, unknown>;
  return mergeDiff(prev, target);
}

function mergeDiff(prev: Record<string, unknown>, next: Record<string, unknown>): Record<string, Json> {
  const out: Record<string, Json> = {};
  const set = (key: string, value: Json) =>
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  for (const [key, value] of Object.entries(next)) {
    if (value === undefined) continue;
    const before = Object.hasOwn(prev, key) ? prev[key] : undefined;
    if (isPlainObject(value) && isPlainObject(before)) set(key, mergeDiff(before, value));
    else set(key, clone(value));
  }
  for (const key of Object.keys(prev)) {
    if (prev[key] !== undefined && (!Object.hasOwn(next, key) || next[key] === undefined)) set(key, null);
  }
  return out;
}

function clone(value: unknown): Json {
  return JSON.parse(JSON.stringify(value)) as Json;
}
