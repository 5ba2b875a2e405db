import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson, type Relay, relayConfigSchema } from '../relay.js';

/** The current version of the State format. */
export const STATE_VERSION = 'v1';

/** One relay as a fleet config version recorded it. */
export interface RelayState {
  /** The relay file's name (without .toml); the relay's id unless the file sets `id`. */
  name: string;
  id: string;
  /** The relay's config version this fleet version applied: `<id>.v<version>`. */
  config_id: string;
  /** sha256 (hex) of the relay's canonical config; see relayChecksum. */
  checksum: string;
  /**
   * Digest of the relay file's bytes and fleet.toml's (see sourceDigest), when the fleet came from
   * files: a later plan skips parsing a file whose digest is unchanged and whose relay is still at
   * config_id.
   */
  source?: string;
}

/**
 * What one applied fleet config version looks like, stored with it (fleet_states.state) and
 * returned by the API. Deterministic: applying the same files to the same relays gives the same
 * State whichever syncer applied them.
 */
export interface FleetState {
  version: typeof STATE_VERSION;
  /** `<fleet>.v<n>`: this fleet config version. */
  config_id: string;
  fleet_id: string;
  fleet_version: number;
  /** The tenant that applied it; null for an admin. */
  owner: string | null;
  /** Every relay of the files, by id. */
  relays: RelayState[];
  /** Relays in the fleet in bosun but not in the files, left in place (name → id). */
  orphans: Record<string, string>;
}

export const fleetConfigId = (fleet: string, version: number) => `${fleet}.v${version}`;
export const relayConfigId = (relay: Pick<Relay, 'id' | 'version'>) => `${relay.id}.v${relay.version}`;

/**
 * sha256 of the relay's canonical config: `{id, owner, fleet, config}` as JSON with object keys
 * sorted at every level, so equal configs give equal checksums whatever their key order.
 *
 * No secret can be recovered or verified from it: the relay's secret key is not part of it, and a
 * non-empty `livekit.api_secret` enters only as HMAC-SHA256 keyed with the relay's secret key
 * (`hmac:<hex>`), so changing it changes the checksum without the checksum being a verifier of it.
 */
export function relayChecksum(relay: Pick<Relay, 'id' | 'owner' | 'fleet' | 'config' | 'secret'>): string {
  const { livekit } = relay.config;
  const config = livekit.api_secret
    ? {
        ...relay.config,
        livekit: {
          ...livekit,
          api_secret: `hmac:${createHmac('sha256', relay.secret).update(livekit.api_secret).digest('hex')}`,
        },
      }
    : relay.config;
  const canonical = serialize({ id: relay.id, owner: relay.owner, fleet: relay.fleet, config }, RELAY_LAYOUT);
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * Where the keys of a relay document go in canonical order, derived once from the config schema
 * (so a field added to the schema is covered without touching this): canonicalizing a relay then
 * needs no sorting or key escaping. Anything not of that shape falls back to canonicalJson.
 */
type Layout =
  | { kind: 'leaf' }
  | { kind: 'object'; fields: { key: string; prefix: string; layout: Layout }[] }
  | { kind: 'record'; value: Layout };

function layoutOf(schema: z.ZodType): Layout {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
  if (inner instanceof z.ZodObject) return objectLayout(inner.shape as Record<string, z.ZodType>);
  if (inner instanceof z.ZodRecord) return { kind: 'record', value: layoutOf(inner.valueType as z.ZodType) };
  return { kind: 'leaf' };
}

function objectLayout(shape: Record<string, z.ZodType | Layout>): Layout {
  const fields = Object.keys(shape)
    .sort()
    .map((key, i) => {
      const entry = shape[key]!;
      const layout = entry instanceof z.ZodType ? layoutOf(entry) : entry;
      return { key, prefix: `${i ? ',' : ''}${JSON.stringify(key)}:`, layout };
    });
  return { kind: 'object', fields };
}

const LEAF: Layout = { kind: 'leaf' };
const RELAY_LAYOUT = objectLayout({
  id: LEAF,
  owner: LEAF,
  fleet: LEAF,
  config: layoutOf(relayConfigSchema),
});

function serialize(value: unknown, layout: Layout): string {
  if (layout.kind === 'leaf' || value === null || typeof value !== 'object' || Array.isArray(value)) {
    if (typeof value === 'string') return JSON.stringify(value);
    if (typeof value === 'boolean') return value ? 'true' : 'false';
    return canonicalJson(value);
  }
  const obj = value as Record<string, unknown>;
  if (layout.kind === 'record') {
    const keys = Object.keys(obj).sort();
    let out = '{';
    for (let i = 0; i < keys.length; i++) {
      const v = obj[keys[i]!];
      if (v === undefined) return canonicalJson(value);
      out += `${i ? ',' : ''}${JSON.stringify(keys[i])}:${serialize(v, layout.value)}`;
    }
    return `${out}}`;
  }
  let count = 0;
  for (const _ in obj) count++;
  if (count !== layout.fields.length) return canonicalJson(value);
  let out = '{';
  for (const field of layout.fields) {
    const v = obj[field.key];
    if (v === undefined || !Object.hasOwn(obj, field.key)) return canonicalJson(value);
    out += field.prefix + serialize(v, field.layout);
  }
  return `${out}}`;
}

/** True when recording `next` after `previous` would say nothing new. */
export function sameState(previous: FleetState | undefined, next: FleetState): boolean {
  if (!previous || previous.owner !== next.owner || previous.relays.length !== next.relays.length)
    return false;
  for (let i = 0; i < next.relays.length; i++) {
    const a = previous.relays[i]!;
    const b = next.relays[i]!;
    if (
      a.name !== b.name ||
      a.id !== b.id ||
      a.config_id !== b.config_id ||
      a.checksum !== b.checksum ||
      a.source !== b.source
    ) {
      return false;
    }
  }
  return canonicalJson(previous.orphans) === canonicalJson(next.orphans);
}
