import { z } from 'zod';
import { BosunError, invalid } from '../errors.js';
import {
  createRelaySchema,
  describeIssues,
  fleetNameSchema,
  mergePatch,
  RELAY_ID,
  sectionsShape,
  setOwn,
} from '../relay.js';

/** At most this many relays in one fleet (one apply, one transaction). */
export const MAX_FLEET_RELAYS = 10_000;
/** Each file of a fleet directory (fleet.toml and every relay file) is at most this large. */
export const MAX_FILE_BYTES = 1024 * 1024;
/** The parsed fleet sent to `POST /v1/fleets/:name/{plan,apply}` is at most this large. */
export const MAX_FLEET_BODY_BYTES = 64 * 1024 * 1024;

/** A relay file's name without `.toml`; it is the relay's id unless the file sets `id`. */
export const RELAY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A relay file holds the API's create fields, minus `fleet` (fleet.toml names the fleet). */
export const relayFileSchema = createRelaySchema.omit({ fleet: true });
export type RelayFileFields = z.output<typeof relayFileSchema>;

type AnySchema = z.ZodType;
/** A section of [defaults] may set any subset of its fields (e.g. only `info.pubkey`). */
function partialSection(schema: AnySchema): AnySchema {
  const inner = schema instanceof z.ZodDefault ? (schema.unwrap() as AnySchema) : schema;
  return inner instanceof z.ZodObject ? inner.partial().optional() : inner.optional();
}

/**
 * `[defaults]` of fleet.toml: fields every relay file is merge-patched over. Per-relay values (id,
 * host, schema, secret) and the fleet itself cannot be defaults.
 */
export const defaultsSchema = z.strictObject({
  owner: createRelaySchema.shape.owner,
  inactive: z.boolean().optional(),
  ...(Object.fromEntries(
    Object.entries(sectionsShape).map(([key, schema]) => [key, partialSection(schema as AnySchema)]),
  ) as Record<keyof typeof sectionsShape, AnySchema>),
});

/**
 * fleet.toml: the fleet's name, its push target (a target's name, `default`, or `none`: pull-only;
 * absent: whatever the fleet has now) and the defaults shared by its relays.
 */
export const manifestSchema = z.strictObject({
  name: fleetNameSchema,
  target: fleetNameSchema.optional(),
  defaults: defaultsSchema.optional(),
});

const defaultsInManifest = z.object({ defaults: defaultsSchema });

/** One relay file, as sent to the API: its name, where it came from, and its fields as written. */
export interface FleetSpecRelay {
  name: string;
  file?: string;
  config: Record<string, unknown>;
  /** Digest of the file's bytes and of fleet.toml's (see sourceDigest): recorded in the State. */
  source?: string;
}

/** A parsed fleet directory (the body of `POST /v1/fleets/:name/plan` and `/apply`). */
export interface FleetSpec {
  /** The fleet's target: a name, `default`, or null (pull-only); absent: left as it is. */
  target?: string | null;
  defaults: Record<string, unknown>;
  relays: FleetSpecRelay[];
}

const plainObject = z.custom<Record<string, unknown>>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  'must be an object',
);

export const fleetBodySchema = z.strictObject({
  target: fleetNameSchema.nullable().optional(),
  defaults: plainObject.default({}),
  relays: z.array(
    z.strictObject({
      name: z.string().regex(RELAY_NAME, 'must be 1-128 letters, digits, ., _ or -'),
      file: z.string().max(1024).optional(),
      config: plainObject,
      source: z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'must be a sha256 hex digest')
        .optional(),
    }),
  ),
  prune: z.boolean().default(false),
});

/**
 * A relay of the fleet after [defaults] were merged under its file and the result validated.
 * A file whose bytes (and fleet.toml's) are those the fleet's last State recorded may be left
 * unparsed (`fields` absent): the plan treats it as unchanged when the relay is still at the
 * version that State applied, and otherwise parses it with `load`.
 */
export interface ResolvedRelay {
  name: string;
  file: string | undefined;
  id: string;
  fields?: RelayFileFields;
  load?: () => RelayFileFields;
  source?: string;
  /** Names the relay in errors: its file (and line, when known) or `relay/<id>`. */
  resource: string;
}

export interface ResolvedFleet {
  /** As FleetSpec.target: a name, `default`, null (pull-only), or absent (left as it is). */
  target?: string | null;
  relays: ResolvedRelay[];
}

/** Finds the line of a field in a file, for errors (files.ts knows the TOML text; the API does not). */
export type Locator = (file: string | undefined, path: readonly PropertyKey[]) => number | undefined;

const at = (base: string, line: number | undefined) => (line ? `${base}:${line}` : base);

/** The path of the first issue, down to the unknown key for `unrecognized_keys`. */
export function issuePath(error: z.ZodError): PropertyKey[] {
  const issue = error.issues[0];
  if (!issue) return [];
  const path = [...issue.path];
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) path.push(issue.keys[0]);
  return path;
}

export function checkFleetSize(fleet: string, count: number): void {
  if (count > MAX_FLEET_RELAYS) {
    throw new BosunError(
      'invalid_request',
      `fleet has ${count} relays; the limit is ${MAX_FLEET_RELAYS} relays per fleet`,
      `fleet/${fleet}`,
    );
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function hasNull(v: Record<string, unknown>): boolean {
  for (const key in v) {
    const x = v[key];
    if (x === null || (isObject(x) && hasNull(x))) return true;
  }
  return false;
}

/**
 * RFC 7396: `patch` merged over `base` (null removes a key), as mergePatch does, but sharing the
 * parts of the patch that need no change instead of copying them: it runs once per relay file.
 */
export function mergeUnder(base: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  if (!isObject(base)) return hasNull(patch) ? mergePatch(undefined, patch) : patch;
  const out: Record<string, unknown> = { ...base };
  for (const key in patch) {
    const value = patch[key];
    if (value === null) delete out[key];
    else setOwn(out, key, mergeUnder(out[key], value));
  }
  return out;
}

/** Validates the body of a plan/apply request (the API's edge). */
export function parseFleetBody(fleet: string, body: unknown): FleetSpec & { prune: boolean } {
  const relays = (body as { relays?: unknown } | null)?.relays;
  if (Array.isArray(relays)) checkFleetSize(fleet, relays.length);
  const result = fleetBodySchema.safeParse(body ?? {});
  if (!result.success) throw invalid(describeIssues(result.error), `fleet/${fleet}`);
  return result.data;
}

/** The validated fields of one relay file merged over the (already validated) defaults. */
export function resolveRelayFields(
  defaults: Record<string, unknown>,
  entry: FleetSpecRelay,
  locate?: Locator,
): RelayFileFields {
  const base = entry.file ?? `relay/${entry.name}`;
  const where = (path: readonly PropertyKey[]) => at(base, locate?.(entry.file, path));
  if (Object.hasOwn(entry.config, 'fleet')) {
    throw invalid('fleet: unknown field (fleet.toml names the fleet of every relay file)', where(['fleet']));
  }
  const id = entry.config.id ?? entry.name;
  if (typeof id === 'string' && entry.config.id === undefined && !RELAY_ID.test(id)) {
    throw invalid(
      `id: the file name ${JSON.stringify(id)} is not a valid relay id (^[a-z0-9][a-z0-9_-]{0,63}$); rename the file or set id`,
      base,
    );
  }
  const merged = { ...(mergeUnder(defaults, entry.config) as Record<string, unknown>), id };
  const parsed = relayFileSchema.safeParse(merged);
  if (!parsed.success) throw invalid(describeIssues(parsed.error), where(issuePath(parsed.error)));
  return parsed.data;
}

/** Refuses two relay files with the same name, id or host, naming both. */
export class DuplicateCheck {
  private readonly names = new Map<string, string>();
  private readonly ids = new Map<string, string>();
  private readonly hosts = new Map<string, string>();

  add(
    relay: { name: string; id: string; host?: string; resource: string },
    locate?: (field: string) => string,
  ) {
    const where = (field: string) => locate?.(field) ?? relay.resource;
    if (this.names.has(relay.name)) {
      throw invalid(`name: ${JSON.stringify(relay.name)} appears twice in the fleet`, relay.resource);
    }
    this.names.set(relay.name, relay.resource);
    const otherId = this.ids.get(relay.id);
    if (otherId) throw invalid(`id: ${JSON.stringify(relay.id)} is also the id of ${otherId}`, where('id'));
    this.ids.set(relay.id, relay.resource);
    if (relay.host === undefined) return;
    const otherHost = this.hosts.get(relay.host);
    if (otherHost) {
      throw invalid(`host: ${JSON.stringify(relay.host)} is also the host of ${otherHost}`, where('host'));
    }
    this.hosts.set(relay.host, relay.resource);
  }
}

/**
 * Merges [defaults] under every relay file (RFC 7396 merge patch) and validates each result with
 * the API's create rules; refuses duplicate names, ids and hosts across files. Errors are
 * BosunErrors whose resource names the file (and line) or the relay.
 */
export function resolveFleet(fleet: string, spec: FleetSpec, locate?: Locator): ResolvedFleet {
  checkFleetSize(fleet, spec.relays.length);
  const defaults = defaultsInManifest.safeParse({ defaults: spec.defaults });
  if (!defaults.success) throw invalid(describeIssues(defaults.error), `fleet/${fleet}`);
  const dups = new DuplicateCheck();
  const relays: ResolvedRelay[] = [];
  for (const entry of spec.relays) {
    const resource = entry.file ?? `relay/${entry.name}`;
    const fields = resolveRelayFields(spec.defaults, entry, locate);
    const relay: ResolvedRelay = { name: entry.name, file: entry.file, id: fields.id!, fields, resource };
    if (entry.source !== undefined) relay.source = entry.source;
    dups.add({ ...relay, host: fields.host }, (field) => at(resource, locate?.(entry.file, [field])));
    relays.push(relay);
  }
  return spec.target !== undefined ? { target: spec.target, relays } : { relays };
}
