import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { credentialFingerprint, type ExpiringCredential } from './credentials.js';
import { invalid } from './errors.js';
import { isValidPublicKey, isValidSecretKey } from './keys.js';
import type { LiveDiff, LiveState, LiveStatus } from './live.js';

/**
 * A relay as bosun records it. `config` is the zooid relay config (docs/zooid-contract.md §3) without
 * `secret`, with every default filled in, so two equal configs are equal JSON (stable diffs and
 * checksums). `version` counts changes that zooid or an agent would see; `rev` counts every write and
 * is the store's optimistic-concurrency token.
 */
export const RELAY_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const SCHEMA = /^[a-z_][a-z0-9_]*$/;
export const FLEET = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const FLEET_RULE = 'must match ^[a-z0-9][a-z0-9_-]{0,63}$';
/** A fleet's name, wherever one is read (relays, agent tokens, fleet.toml). */
export const fleetNameSchema = z.string().regex(FLEET, FLEET_RULE);

/** Throws a 400 naming the fleet unless `fleet` is a valid fleet name (e.g. from a URL path). */
export function checkFleetName(fleet: string): void {
  if (!FLEET.test(fleet)) throw invalid(`fleet: ${FLEET_RULE}`, `fleet/${fleet.slice(0, 64)}`);
}
export const OWNER = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const HOST =
  /^(?=.{1,253}(:|$))[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[1-9][0-9]{0,4})?$/;
const ROLE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * Keys that mean something to a JavaScript object: assigning `__proto__` replaces a prototype (zod
 * drops it from records without a word), the others shadow what every object has.
 */
const RESERVED_KEYS = ['__proto__', 'prototype', 'constructor'];

const str = (max: number) => z.string().max(max, `must be at most ${max} characters`);
const publicKey = z
  .string()
  .refine(isValidPublicKey, 'must be a 64-character lowercase hex Nostr public key (x-only point)');

const section = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);

const infoSchema = section({
  name: str(256).default(''),
  icon: str(2048).default(''),
  description: str(4096).default(''),
  pubkey: publicKey,
});
const policySchema = section({
  public_join: z.boolean().default(false),
  strip_signatures: z.boolean().default(false),
});
const enabledSchema = section({ enabled: z.boolean().default(false) });
const blossomSchema = section({
  enabled: z.boolean().default(false),
  authenticated_read: z.boolean().default(false),
});
const livekitSchema = section({
  server_url: str(2048).default(''),
  api_key: str(512).default(''),
  api_secret: str(512).default(''),
});
const roleSchema = section({
  pubkeys: z.array(publicKey).max(10_000).default([]),
  can_invite: z.boolean().default(false),
  can_manage: z.boolean().default(false),
});
/** A map whose keys a user chooses: a reserved key is refused by name, checked before zod sees it. */
function userKeyed<T extends z.ZodType>(record: T) {
  return z
    .unknown()
    .superRefine((value, ctx) => {
      if (typeof value !== 'object' || value === null) return;
      for (const key of RESERVED_KEYS) {
        if (Object.hasOwn(value, key)) {
          ctx.addIssue({
            code: 'custom',
            path: [key],
            message: `is a reserved name (${RESERVED_KEYS.join(', ')})`,
            input: value,
          });
        }
      }
    })
    .pipe(record);
}

const rolesSchema = userKeyed(
  z
    .record(z.string().regex(ROLE_NAME, 'role names are 1-64 letters, digits, _ or -'), roleSchema)
    .refine((r) => Object.keys(r).length <= 64, 'at most 64 roles'),
).default({});

/** The zooid config sections a caller may set (everything but host/schema/inactive/secret). */
export const sectionsShape = {
  info: infoSchema,
  policy: policySchema.default({ public_join: false, strip_signatures: false }),
  groups: enabledSchema.default({ enabled: false }),
  management: enabledSchema.default({ enabled: false }),
  blossom: blossomSchema.default({ enabled: false, authenticated_read: false }),
  livekit: livekitSchema.default({ server_url: '', api_key: '', api_secret: '' }),
  push: enabledSchema.default({ enabled: false }),
  roles: rolesSchema,
};

/**
 * Hosts of this domain stand in for a relay's host while hosts go round a ring (a swap): inside a
 * fleet apply's transaction, and in zooid while push sync unwinds the ring (Infra). RFC 2606
 * `.invalid`, so nothing resolves them, and reserved, so no relay has one.
 */
const PARKING_DOMAIN = '.bosun-parked.invalid';

/** The relay's own placeholder host (relay ids are unique, so these are too). */
export const parkingHost = (relayId: string): string => `${relayId}${PARKING_DOMAIN}`;

const HOST_RULE =
  'must be a hostname with an optional :port (1-65535, no leading zeros), without scheme or path';

/**
 * A host as zooid matches it against a request's Host header: lower case, and without the default
 * ports 80 and 443 (clients leave them out). Stored in this form, so equal hosts are equal strings.
 */
export const hostSchema = z
  .string()
  .toLowerCase()
  .regex(HOST, HOST_RULE)
  .refine((host) => Number(host.split(':')[1] ?? 1) <= 65_535, HOST_RULE)
  .overwrite((host) => host.replace(/:(80|443)$/, ''))
  .refine((host) => !host.split(':')[0]!.endsWith(PARKING_DOMAIN), {
    message: `must not end in ${PARKING_DOMAIN} (bosun's placeholder hosts)`,
  });

export const relayConfigSchema = z.strictObject({
  host: hostSchema,
  schema: z.string().max(63).regex(SCHEMA, 'must match ^[a-z_][a-z0-9_]*$ (lowercase letters, digits, _)'),
  inactive: z.boolean().default(false),
  ...sectionsShape,
});
export type RelayConfig = z.output<typeof relayConfigSchema>;

export const secretSchema = z
  .string()
  .refine(
    isValidSecretKey,
    'must be a 64-character lowercase hex Nostr secret key (non-zero, below the curve order)',
  );

/** Body of a create request (API, CLI, fleet files). */
export const createRelaySchema = z.strictObject({
  id: z.string().regex(RELAY_ID, 'must match ^[a-z0-9][a-z0-9_-]{0,63}$').optional(),
  owner: z.string().regex(OWNER, 'must be 1-128 letters, digits, ., _, : or -').optional(),
  fleet: fleetNameSchema.optional(),
  host: hostSchema,
  schema: relayConfigSchema.shape.schema.optional(),
  secret: secretSchema.optional(),
  inactive: z.boolean().optional(),
  ...sectionsShape,
});

/**
 * `pull` is never stored: it is shown for the relays of a pull-only fleet (`target = "none"`),
 * which bosun does not push — the fleet's agents configure zooid.
 */
export type SyncStatus = 'pending' | 'synced' | 'retrying' | 'failed' | 'pull';

export interface SyncState {
  status: SyncStatus;
  /** Last sync error, at most 120 characters; empty when the last attempt succeeded. */
  error: string;
  /** Consecutive failed attempts since the last success or the last change. */
  attempts: number;
  nextAttemptAt: number | null;
  /** The relay version zooid last acknowledged (0: never). */
  syncedVersion: number;
  lastSyncedAt: number | null;
  /**
   * The zooid request body (without secret) zooid last acknowledged, kept because zooid cannot read
   * configs back: PATCH sends `null` for keys it had that are gone now.
   */
  ackedConfig: Record<string, unknown> | null;
  /** The target's state after the last acknowledged sync: whether the relay exists there. */
  ackedDeleted: boolean;
  /**
   * SHA-256 (secretDigest) of the secret zooid last acknowledged; push sync replaces (PUT) the relay
   * when it differs from the current secret (after a rotation). Null: not recorded, taken to be the
   * current secret (rows from before migration 3; rotation records the old one first).
   */
  ackedSecret: string | null;
  /**
   * The target (`default` or a target's name) on which zooid last acknowledged the relay, i.e. where
   * it lives now — or may live: a create whose answer was lost is recorded here too, so it is
   * deleted there if the relay goes elsewhere; null where it lives on none (never pushed, or its
   * delete acknowledged). When the relay's fleet routes it elsewhere, push sync moves it: creates
   * it on the fleet's target, deletes it here, and only then records the new target
   * (src/push/router.ts).
   */
  pushedTarget: string | null;
  /**
   * Never stored: set on read (Query) for a live relay whose fleet pushes to another target than
   * the one it lives on — the move push sync is making (or retrying).
   */
  moving?: { from: string; to: string };
}

export interface Relay {
  id: string;
  owner: string;
  fleet: string;
  version: number;
  /**
   * The version this relay started at: 1, or the version after the tombstone when a deleted id was
   * created again. Sync state below it (what zooid acknowledged) is the deleted relay's.
   */
  createdVersion: number;
  rev: number;
  config: RelayConfig;
  secret: string;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | null;
  sync: SyncState;
  /**
   * Rotated credentials still valid for a grace period (docs/stream-protocol.md §6), oldest first.
   * Agents see them; zooid and the API never do (the API shows fingerprints).
   */
  expiring: ExpiringCredential[];
  /** What zooid was last seen serving for it (live verification, src/live/). */
  live: LiveState;
}

/** What the API shows of a relay: never the secret, never livekit's api_secret. */
export interface RelayView {
  id: string;
  owner: string;
  fleet: string;
  version: number;
  deleted: boolean;
  config: Omit<RelayConfig, 'livekit'> & {
    livekit: Omit<RelayConfig['livekit'], 'api_secret'> & { api_secret_set: boolean };
  };
  created_at: string;
  updated_at: string;
  sync: {
    status: SyncStatus;
    error: string;
    attempts: number;
    next_attempt_at: string | null;
    synced_version: number;
    last_synced_at: string | null;
    /** Where the relay lives (pushedTarget); null: on no target. */
    target: string | null;
    /** While its fleet's target is another one: the move push sync is making. */
    moving?: { from: string; to: string };
  };
  /** What zooid was last seen serving (NIP-11 read back); `diff` only when stale. */
  live: {
    status: LiveStatus;
    checked_at: string | null;
    error: string;
    diff?: LiveDiff;
  };
  /** Rotated credentials in their grace period (only when there are any): fingerprints, never values. */
  expiring?: { name: string; fingerprint: string; expires_at: string }[];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function viewRelay(relay: Relay): RelayView {
  const { api_secret, ...livekit } = relay.config.livekit;
  return {
    id: relay.id,
    owner: relay.owner,
    fleet: relay.fleet,
    version: relay.version,
    deleted: relay.deletedAt !== null,
    config: { ...relay.config, livekit: { ...livekit, api_secret_set: api_secret !== '' } },
    created_at: iso(relay.createdAt)!,
    updated_at: iso(relay.updatedAt)!,
    sync: {
      status: relay.sync.status,
      error: relay.sync.error,
      attempts: relay.sync.attempts,
      next_attempt_at: iso(relay.sync.nextAttemptAt),
      synced_version: relay.sync.syncedVersion,
      last_synced_at: iso(relay.sync.lastSyncedAt),
      target: relay.sync.pushedTarget,
      ...(relay.sync.moving ? { moving: relay.sync.moving } : {}),
    },
    live: {
      status: relay.live.status,
      checked_at: iso(relay.live.checkedAt),
      error: relay.live.error,
      ...(relay.live.diff ? { diff: relay.live.diff } : {}),
    },
    ...(relay.expiring.length
      ? {
          expiring: relay.expiring.map((c) => ({
            name: c.name,
            fingerprint: credentialFingerprint(c.value),
            expires_at: iso(c.expiresAt)!,
          })),
        }
      : {}),
  };
}

export function generateRelayId(): string {
  return `r-${randomBytes(6).toString('hex')}`;
}

/** zooid keys a relay's tables by schema; derive a valid one from the id when none is given. */
export function schemaFromId(id: string): string {
  const s = id.replace(/-/g, '_');
  return /^[a-z_]/.test(s) ? s : `r_${s}`;
}

/** Turns zod issues into one line naming each field: `info.pubkey: must be …`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path.join('.') || '(body)';
      if (issue.code === 'unrecognized_keys') {
        const where = issue.path.length ? `${issue.path.join('.')}.` : '';
        return issue.keys.map((k) => `${where}${k}: unknown field`).join('; ');
      }
      const message = issue.message.replace(/^Invalid input: /, '');
      if (issue.code === 'invalid_type' && / received undefined$/.test(message))
        return `${path}: is required`;
      return `${path}: ${message}`;
    })
    .join('; ');
}

export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw invalid(describeIssues(result.error));
  return result.data;
}

/** The editable document a merge patch applies to. */
export function editableDocument(relay: Relay): Record<string, unknown> {
  return { fleet: relay.fleet, ...relay.config };
}

/** The editable document of a relay (PATCH applies an RFC 7396 merge patch to it). */
export const updatedDocumentSchema = relayConfigSchema.extend({
  fleet: createRelaySchema.shape.fleet.unwrap(),
});
const documentKeys = Object.keys(updatedDocumentSchema.shape) as (keyof typeof updatedDocumentSchema.shape)[];
const patchableKeys = new Set<string>(documentKeys);

/**
 * Applies an RFC 7396 JSON merge patch to a relay's editable document and validates the result.
 * `schema` may be repeated but not changed (zooid keys the relay's data by it); `secret` changes
 * only through rotation, `id` and `owner` never.
 */
export function applyRelayPatch(relay: Relay, patch: unknown): { fleet: string; config: RelayConfig } {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    throw invalid('(body): must be a JSON object (a JSON merge patch)');
  }
  for (const key of Object.keys(patch)) {
    if (key === 'secret') throw invalid('secret: cannot be changed by update; rotate the secret instead');
    if (key === 'id' || key === 'owner') throw invalid(`${key}: cannot be changed`);
    if (!patchableKeys.has(key)) throw invalid(`${key}: unknown field`);
  }
  if (!documentKeys.every((key) => key === 'fleet' || key in relay.config)) {
    // A document stored before one of its sections existed: validate (and default) it whole.
    const next = mergePatch(editableDocument(relay), patch) as Record<string, unknown>;
    if (next.schema !== relay.config.schema) throw immutableSchema(relay);
    const { fleet, ...config } = parseOrThrow(updatedDocumentSchema, next);
    return { fleet, config };
  }
  // The stored document is valid and no rule spans two sections, so only the sections the patch
  // touches are validated again: a one-field update does not pay for the whole document.
  const changes = patch as Record<string, unknown>;
  let fleet = relay.fleet;
  const config: Record<string, unknown> = { ...relay.config };
  let issues: z.core.$ZodIssue[] | undefined;
  for (const key of documentKeys) {
    if (!(key in changes)) continue;
    const current = key === 'fleet' ? fleet : config[key];
    const merged = changes[key] === null ? undefined : mergePatch(current, changes[key]);
    if (key === 'schema' && merged !== relay.config.schema) throw immutableSchema(relay);
    const result = updatedDocumentSchema.shape[key].safeParse(merged);
    if (!result.success) {
      issues ??= [];
      for (const issue of result.error.issues) issues.push({ ...issue, path: [key, ...issue.path] });
    } else if (key === 'fleet') fleet = result.data as string;
    else config[key] = result.data;
  }
  if (issues) throw invalid(describeIssues(new z.ZodError(issues)));
  return { fleet, config: config as RelayConfig };
}

function immutableSchema(relay: Relay) {
  return invalid(`schema: is immutable (zooid keys the relay's data by it); it is ${relay.config.schema}`);
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setOwn(result, key, mergePatch(result[key], value));
  }
  return result;
}

/**
 * `target[key] = value`, also for a `__proto__` key, which an assignment would turn into the
 * object's prototype: kept as an own key, the validators refuse it by name.
 */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else target[key] = value;
}

/** Structural equality of JSON values, ignoring object key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => jsonEqual(v, bb[i]));
  }
  const ka = Object.keys(a);
  const ob = b as Record<string, unknown>;
  if (ka.length !== Object.keys(ob).length) return false;
  return ka.every((k) => Object.hasOwn(ob, k) && jsonEqual((a as Record<string, unknown>)[k], ob[k]));
}

/**
 * JSON with object keys sorted at every level (undefined members dropped, as JSON.stringify does):
 * equal values give equal strings. Built directly rather than through a sorted copy, since fleet
 * plans checksum every relay of a fleet; keys are sorted as strings, integer-like ones included.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i) out += ',';
      const v = value[i];
      out += v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v);
    }
    return `${out}]`;
  }
  const obj = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const key of Object.keys(obj).sort()) {
    const v = obj[key];
    if (v === undefined || typeof v === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(key)}:${canonicalJson(v)}`;
  }
  return `${out}}`;
}
