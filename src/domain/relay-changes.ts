/**
 * The rules of a relay's next state, shared by the single-relay commands and fleet applies: pure
 * functions of the current relay, the change, the caller and the time. Command adds the locking,
 * the compare-and-set and the commit around them.
 */

import type { z } from 'zod';
import type { ActivityDraft, ActivityType } from './activity.js';
import { BosunError } from './errors.js';
import { generateSecretKey } from './keys.js';
import { UNKNOWN_LIVE } from './live.js';
import type { Principal } from './principal.js';
import {
  applyRelayPatch,
  type createRelaySchema,
  generateRelayId,
  jsonEqual,
  type Relay,
  type RelayConfig,
  type SyncState,
  schemaFromId,
} from './relay.js';

/** A relay's next state and the activity that records it (committed together). */
export interface RelayChange {
  relay: Relay;
  activity: ActivityDraft;
}

export interface NewRelayDraft {
  id: string;
  owner: string;
  fleet: string;
  config: RelayConfig;
  secret: string;
  /** Whether the caller named the schema (else it is derived from the id). */
  schemaGiven: boolean;
}

/** A pending sync that keeps what zooid last acknowledged. */
export const freshSync = (prev?: SyncState): SyncState => ({
  status: 'pending',
  error: '',
  attempts: 0,
  nextAttemptAt: null,
  syncedVersion: prev?.syncedVersion ?? 0,
  lastSyncedAt: prev?.lastSyncedAt ?? null,
  ackedConfig: prev?.ackedConfig ?? null,
  ackedDeleted: prev?.ackedDeleted ?? true,
  ackedSecret: prev?.ackedSecret ?? null,
  pushedTarget: prev?.pushedTarget ?? null,
});

/** An activity of `relay`, recorded with the relay's owner (tenant reads are scoped by it). */
export function draftActivity(
  type: ActivityType,
  relay: Pick<Relay, 'id' | 'owner'>,
  actor: string,
  payload: Record<string, unknown>,
  now: number,
): ActivityDraft {
  return { type, relayId: relay.id, owner: relay.owner, actor, payload, createdAt: now };
}

/** The create rules: owner from the caller, generated id and secret, schema derived from the id. */
export function draftNewRelay(
  principal: Principal,
  parsed: z.output<typeof createRelaySchema>,
): NewRelayDraft {
  const owner = ownerFor(principal, parsed.owner);
  const id = parsed.id ?? generateRelayId();
  const { id: _id, owner: _owner, fleet, secret, schema, inactive, host, ...sections } = parsed;
  return {
    id,
    owner,
    fleet: fleet ?? 'default',
    config: { host, schema: schema ?? schemaFromId(id), inactive: inactive ?? false, ...sections },
    secret: secret ?? generateSecretKey(),
    schemaGiven: schema !== undefined,
  };
}

/**
 * A new relay from a validated create input. An id created again after a delete continues the
 * tombstone's version and rev, and starts without the old incarnation's rotated credentials.
 *
 * A deleted id and its schema stay reserved for the deleted relay's owner, because zooid keeps
 * that relay's tables and media under the schema: another tenant may not create the id, and the
 * id comes back with its old schema. An admin may create it for any owner (the schema, and what
 * zooid kept under it, go with it).
 */
export function createdRelay(
  draft: NewRelayDraft,
  existing: Relay | undefined,
  principal: Principal,
  now: number,
): RelayChange {
  let { config } = draft;
  if (existing) {
    if (principal.role === 'tenant' && existing.owner !== principal.owner) {
      throw new BosunError(
        'id_conflict',
        `id: ${JSON.stringify(draft.id)} is reserved: a deleted relay of another owner had it; choose another id`,
      );
    }
    const kept = existing.config.schema;
    if (draft.schemaGiven && config.schema !== kept) {
      throw new BosunError(
        'schema_conflict',
        `schema: relay ${JSON.stringify(draft.id)} was deleted with schema ${JSON.stringify(kept)}, which stays reserved for it; create it again with that schema (or omit schema)`,
      );
    }
    config = { ...config, schema: kept };
  }
  const relay: Relay = {
    id: draft.id,
    owner: draft.owner,
    fleet: draft.fleet,
    version: (existing?.version ?? 0) + 1,
    createdVersion: (existing?.version ?? 0) + 1,
    rev: (existing?.rev ?? 0) + 1,
    config,
    secret: draft.secret,
    createdAt: now,
    updatedAt: now,
    deletedAt: null,
    sync: freshSync(existing?.sync),
    expiring: [],
    // A new incarnation: what zooid served for the deleted one says nothing about it.
    live: UNKNOWN_LIVE,
  };
  return { relay, activity: relayActivity('create_relay', relay, principal, now) };
}

/** A merge patch applied to a live relay; null when it changes nothing. */
export function patchedRelay(
  current: Relay,
  patch: unknown,
  principal: Principal,
  now: number,
): RelayChange | null {
  const next = applyRelayPatch(current, patch);
  const fields = changedFields(current, next);
  if (fields.length === 0) return null;
  const relay = nextVersion(current, { fleet: next.fleet, config: next.config }, now);
  return { relay, activity: relayActivity('update_relay', relay, principal, now, { fields }) };
}

/**
 * A deleted relay. The row stays as a tombstone: versions keep increasing if the id is created
 * again, and the observer still has to delete it from zooid.
 */
export function deletedRelay(current: Relay, principal: Principal, now: number): RelayChange {
  const relay: Relay = { ...nextVersion(current, {}, now), deletedAt: now };
  return { relay, activity: relayActivity('delete_relay', relay, principal, now) };
}

/** A change zooid or an agent would see: a new version, and any pending retry is superseded. */
export function nextVersion(
  current: Relay,
  change: Partial<Pick<Relay, 'fleet' | 'config' | 'secret' | 'expiring'>>,
  now: number,
): Relay {
  return {
    ...current,
    ...change,
    version: current.version + 1,
    rev: current.rev + 1,
    updatedAt: now,
    sync: freshSync(current.sync),
  };
}

/** The activity of a caller's change to `relay`, naming the version it produced. */
/**
 * The relay synced again as it is (`resync_relay`), e.g. to the new target of its fleet: pending,
 * keeping what zooid last acknowledged.
 */
export function resyncedRelay(
  previous: Relay,
  principal: Principal,
  now: number,
): { relay: Relay; activity: ActivityDraft } {
  const relay: Relay = { ...previous, rev: previous.rev + 1, updatedAt: now, sync: freshSync(previous.sync) };
  return { relay, activity: relayActivity('resync_relay', relay, principal, now) };
}

export function relayActivity(
  type: ActivityType,
  relay: Relay,
  principal: Principal,
  now: number,
  payload: Record<string, unknown> = {},
): ActivityDraft {
  return draftActivity(type, relay, principal.actor, { version: relay.version, ...payload }, now);
}

/** A value another relay already holds under a unique index. */
export function conflictError(taken: { field: 'host' | 'schema' | 'id'; value: string }): BosunError {
  const code =
    taken.field === 'host' ? 'host_conflict' : taken.field === 'schema' ? 'schema_conflict' : 'id_conflict';
  // Schemas stay reserved after a delete (zooid keeps the deleted relay's data under it).
  const by = taken.field === 'schema' ? 'another relay, or reserved by a deleted one' : 'another relay';
  return new BosunError(code, `${taken.field}: ${JSON.stringify(taken.value)} is already used by ${by}`);
}

function ownerFor(principal: Principal, requested: string | undefined): string {
  if (principal.role === 'tenant') {
    if (requested !== undefined && requested !== principal.owner) {
      throw new BosunError('forbidden', 'owner: a tenant can only create relays it owns');
    }
    return principal.owner;
  }
  return requested ?? 'default';
}

function changedFields(current: Relay, next: { fleet: string; config: RelayConfig }): string[] {
  const fields: string[] = [];
  if (current.fleet !== next.fleet) fields.push('fleet');
  for (const key of Object.keys(next.config) as (keyof RelayConfig)[]) {
    if (!jsonEqual(current.config[key], next.config[key])) fields.push(key);
  }
  return fields;
}
