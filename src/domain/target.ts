import { z } from 'zod';
import { BosunError, invalid } from './errors.js';
import { isValidSecretKey, publicKeyOf } from './keys.js';
import { describeIssues, fleetNameSchema, type Relay } from './relay.js';

/**
 * A zooid management API bosun can push relays to. `default` is not stored: ZOOID_API_URL and
 * BOSUN_SECRET_KEY define it, and every fleet that names no target uses it.
 */
export interface Target {
  name: string;
  url: string;
  /** The Nostr secret key that signs this target's requests; null: BOSUN_SECRET_KEY's. */
  secretKey: string | null;
  /** Where relays' public endpoints are checked, when it is not the relay's host. */
  verifyUrl: string | null;
  /** Bumped by every change: an update is guarded by the rev it read. */
  rev: number;
  createdAt: number;
  updatedAt: number;
}

/** A fleet's push destination, as recorded in the fleets table. */
export type FleetTarget =
  /** The target `default` (also what a fleet with no row gets). */
  | { kind: 'default' }
  | { kind: 'target'; name: string }
  /** Pull-only: its zooid hosts run `bosun agent`; bosun pushes nothing for its relays. */
  | { kind: 'none' };

export interface FleetRecord {
  name: string;
  target: FleetTarget;
  createdAt: number;
  updatedAt: number;
}

export const DEFAULT_TARGET = 'default';

/** What the API and the fleet files say for a fleet's target: a name, `default`, or none. */
export const fleetTargetName = (t: FleetTarget): string | null =>
  t.kind === 'none' ? null : t.kind === 'default' ? DEFAULT_TARGET : t.name;

/** Whether a fleet's relays must be pushed anew when its target goes from `before` to `after`. */
export const pushedElsewhere = (before: FleetTarget, after: FleetTarget): boolean =>
  after.kind !== 'none' && fleetTargetName(before) !== fleetTargetName(after);

/** What a fleet's new target moves: how many relays, off which targets, to which. */
export interface FleetMove {
  relays: number;
  from: string[];
  /** Null: pull-only, nothing moves. */
  to: string | null;
}

/** The relays among `relays` that live on another target than `target` (a push target). */
export function movesOf(relays: readonly Relay[], target: FleetTarget): FleetMove {
  const to = fleetTargetName(target);
  if (to === null) return { relays: 0, from: [], to };
  const leaving = relays.filter((r) => r.sync.pushedTarget !== null && r.sync.pushedTarget !== to);
  const from = [...new Set(leaving.map((r) => r.sync.pushedTarget!))].sort();
  return { relays: leaving.length, from, to };
}

/** The inverse of fleetTargetName: null (or `none` in fleet.toml) is pull-only. */
export const fleetTargetOf = (name: string | null): FleetTarget =>
  name === null || name === 'none'
    ? { kind: 'none' }
    : name === DEFAULT_TARGET
      ? { kind: 'default' }
      : { kind: 'target', name };

/**
 * A target's URL: http(s) only; no credentials (the key signs requests instead, and a URL is
 * shown and logged), no query or fragment (request paths are appended to it).
 */
export const targetUrlSchema = z
  .string()
  .max(2048, 'must be at most 2048 characters')
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL such as https://zooid.example.com' });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: 'must start with http:// or https://' });
    } else if (url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', message: 'must not hold credentials (the target key signs requests)' });
    } else if (url.search !== '' || value.includes('?')) {
      ctx.addIssue({ code: 'custom', message: 'must not have a query' });
    } else if (url.hash !== '' || value.includes('#')) {
      ctx.addIssue({ code: 'custom', message: 'must not have a fragment' });
    }
  });

const secretKeySchema = z
  .string()
  .refine(
    isValidSecretKey,
    'must be a 64-character lowercase hex Nostr secret key (a valid secp256k1 scalar)',
  );

const targetNameSchema = fleetNameSchema
  .refine((n) => n !== DEFAULT_TARGET, 'default is reserved: ZOOID_API_URL and BOSUN_SECRET_KEY define it')
  .refine((n) => n !== 'none', 'none is reserved: it makes a fleet pull-only in fleet.toml');

export const createTargetSchema = z.strictObject({
  name: targetNameSchema,
  url: targetUrlSchema,
  secret_key: secretKeySchema.nullable().optional(),
  verify_url: targetUrlSchema.nullable().optional(),
});

/** PATCH: a merge patch; `null` resets `secret_key` (to BOSUN_SECRET_KEY) and `verify_url`. */
export const updateTargetSchema = z.strictObject({
  url: targetUrlSchema.optional(),
  secret_key: secretKeySchema.nullable().optional(),
  verify_url: targetUrlSchema.nullable().optional(),
});

export function parseTargetInput<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw invalid(describeIssues(result.error));
  return result.data;
}

export function newTarget(input: z.output<typeof createTargetSchema>, now: number): Target {
  return {
    name: input.name,
    url: input.url,
    secretKey: input.secret_key ?? null,
    verifyUrl: input.verify_url ?? null,
    rev: 1,
    createdAt: now,
    updatedAt: now,
  };
}

/** The target after a PATCH, or null when it changes nothing. */
export function patchedTarget(
  current: Target,
  patch: z.output<typeof updateTargetSchema>,
  now: number,
): Target | null {
  const next: Target = {
    ...current,
    ...(patch.url !== undefined ? { url: patch.url } : {}),
    ...(patch.secret_key !== undefined ? { secretKey: patch.secret_key } : {}),
    ...(patch.verify_url !== undefined ? { verifyUrl: patch.verify_url } : {}),
  };
  const same =
    next.url === current.url && next.secretKey === current.secretKey && next.verifyUrl === current.verifyUrl;
  return same ? null : { ...next, rev: current.rev + 1, updatedAt: now };
}

/** What the API shows of a target: never its key, only the pubkey zooid must whitelist. */
export interface TargetView {
  name: string;
  url: string;
  verify_url: string | null;
  /** The pubkey to list in this zooid's API_WHITELIST; null when no key is configured at all. */
  pubkey: string | null;
  /** `own`: the target's key; `default`: BOSUN_SECRET_KEY's. */
  key: 'own' | 'default';
  created_at: string | null;
  updated_at: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function viewTarget(t: Target, defaultPubkey: string | null): TargetView {
  return {
    name: t.name,
    url: t.url,
    verify_url: t.verifyUrl,
    pubkey: t.secretKey ? publicKeyOf(t.secretKey) : defaultPubkey,
    key: t.secretKey ? 'own' : 'default',
    created_at: iso(t.createdAt),
    updated_at: iso(t.updatedAt),
  };
}

export const targetNotFound = (name: string) =>
  new BosunError('not_found', `target ${JSON.stringify(name)} not found`, `target/${name}`);

/** `default` lives in the environment, not in the database. */
export function assertNotDefault(name: string): void {
  if (name === DEFAULT_TARGET) {
    throw new BosunError(
      'invalid_request',
      'target default is defined by ZOOID_API_URL and BOSUN_SECRET_KEY; change those instead',
      `target/${DEFAULT_TARGET}`,
    );
  }
}

export const unknownTarget = (name: string, resource?: string) =>
  invalid(
    `target: ${JSON.stringify(name)} does not exist (add it with POST /v1/targets, or use "default" or none)`,
    resource,
  );

/** `PUT /v1/fleets/:name`: a target's name, `default`, or null for pull-only. */
export const fleetTargetBodySchema = z.strictObject({
  target: z.union([fleetNameSchema, z.null()]),
});

/** A target without its own key signs with BOSUN_SECRET_KEY (`defaultKey`): there must be one. */
export function assertSigner(target: Target, defaultKey: boolean): void {
  if (target.secretKey === null && !defaultKey) {
    throw invalid(
      'secret_key: is required while BOSUN_SECRET_KEY is not set (nothing else could sign this target’s requests)',
      `target/${target.name}`,
    );
  }
}
