/**
 * Row shapes and mappings shared by the SQLite and PostgreSQL adapters: both keep the same columns
 * (see their numbered migrations), so a relay, activity, token or fleet state reads and writes the
 * same way in either; only how a boolean is stored differs.
 */
import type { Activity, ActivityType } from '../domain/activity.js';
import { type ExpiringCredential, nextExpiry } from '../domain/credentials.js';
import type { LiveDiff, LiveStatus } from '../domain/live.js';
import type { Role, Token } from '../domain/principal.js';
import type { Relay, RelayConfig, SyncStatus } from '../domain/relay.js';
import type { FleetRecord, FleetTarget, Target } from '../domain/target.js';
import type { FleetStateRecord } from './port.js';

export interface RelayRow {
  id: string;
  owner: string;
  fleet: string;
  host: string;
  schema: string;
  version: number;
  rev: number;
  config: string;
  secret: string;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  sync_status: string;
  sync_error: string;
  sync_attempts: number;
  next_attempt_at: number | null;
  synced_version: number;
  last_synced_at: number | null;
  acked_config: string | null;
  /** SQLite stores 0/1, PostgreSQL a boolean. */
  acked_deleted: boolean | number;
  expiring: string;
  expiring_next_at: number | null;
  acked_secret: string | null;
  created_version: number;
  live_status: string;
  live_checked_at: number | null;
  live_since: number | null;
  live_error: string;
  live_diff: string | null;
  live_repairs: number;
  live_next_repair_at: number | null;
  pushed_target: string | null;
}

export interface FleetStateRow {
  fleet: string;
  version: number;
  config_id: string;
  owner: string | null;
  actor: string;
  state: string;
  created_at: number;
}

export const fromFleetStateRow = (row: FleetStateRow): FleetStateRecord => ({
  fleet: row.fleet,
  version: row.version,
  configId: row.config_id,
  owner: row.owner,
  actor: row.actor,
  createdAt: row.created_at,
  state: JSON.parse(row.state) as FleetStateRecord['state'],
});

export interface ActivityRow {
  id: number;
  type: string;
  relay_id: string;
  owner: string;
  actor: string;
  payload: string;
  created_at: number;
}

export interface TokenRow {
  id: string;
  name: string;
  role: string;
  owner: string | null;
  fleet: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export const RELAY_COLUMNS = [
  'id',
  'owner',
  'fleet',
  'host',
  'schema',
  'version',
  'rev',
  'config',
  'secret',
  'created_at',
  'updated_at',
  'deleted_at',
  'sync_status',
  'sync_error',
  'sync_attempts',
  'next_attempt_at',
  'synced_version',
  'last_synced_at',
  'acked_config',
  'acked_deleted',
  'expiring',
  'expiring_next_at',
  'acked_secret',
  'created_version',
  'live_status',
  'live_checked_at',
  'live_since',
  'live_error',
  'live_diff',
  'live_repairs',
  'live_next_repair_at',
  'pushed_target',
] as const;

/**
 * A relay's row. With `basis` (the relay this one succeeds, and its row), JSON columns whose object
 * did not change — same reference: writes copy the parts they leave alone — reuse the basis's
 * text instead of serializing again; a typical update changes the config and no other JSON.
 */
export function toRow(
  r: Relay,
  bool: (b: boolean) => boolean | number,
  basis?: { relay: Relay; row: RelayRow },
): RelayRow {
  const prev = basis?.relay;
  const sameConfig = prev !== undefined && r.config === prev.config;
  const sameAcked = prev !== undefined && r.sync.ackedConfig === prev.sync.ackedConfig;
  const sameExpiring = prev !== undefined && r.expiring === prev.expiring;
  const sameDiff = prev !== undefined && r.live.diff === prev.live.diff;
  return {
    id: r.id,
    owner: r.owner,
    fleet: r.fleet,
    host: r.config.host,
    schema: r.config.schema,
    version: r.version,
    rev: r.rev,
    config: sameConfig ? basis!.row.config : JSON.stringify(r.config),
    secret: r.secret,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    deleted_at: r.deletedAt,
    sync_status: r.sync.status,
    sync_error: r.sync.error,
    sync_attempts: r.sync.attempts,
    next_attempt_at: r.sync.nextAttemptAt,
    synced_version: r.sync.syncedVersion,
    last_synced_at: r.sync.lastSyncedAt,
    acked_config: sameAcked
      ? basis!.row.acked_config
      : r.sync.ackedConfig === null
        ? null
        : JSON.stringify(r.sync.ackedConfig),
    acked_deleted: bool(r.sync.ackedDeleted),
    expiring: sameExpiring ? basis!.row.expiring : JSON.stringify(r.expiring),
    expiring_next_at: sameExpiring ? basis!.row.expiring_next_at : nextExpiry(r.expiring),
    acked_secret: r.sync.ackedSecret,
    created_version: r.createdVersion,
    live_status: r.live.status,
    live_checked_at: r.live.checkedAt,
    live_since: r.live.since,
    live_error: r.live.error,
    live_diff: sameDiff ? basis!.row.live_diff : r.live.diff === null ? null : JSON.stringify(r.live.diff),
    live_repairs: r.live.repairs,
    live_next_repair_at: r.live.nextRepairAt,
    pushed_target: r.sync.pushedTarget,
  };
}

export function fromRow(row: RelayRow): Relay {
  return {
    id: row.id,
    owner: row.owner,
    fleet: row.fleet,
    version: row.version,
    createdVersion: row.created_version,
    rev: row.rev,
    config: JSON.parse(row.config) as RelayConfig,
    secret: row.secret,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
    sync: {
      status: row.sync_status as SyncStatus,
      error: row.sync_error,
      attempts: row.sync_attempts,
      nextAttemptAt: row.next_attempt_at,
      syncedVersion: row.synced_version,
      lastSyncedAt: row.last_synced_at,
      ackedConfig:
        row.acked_config === null ? null : (JSON.parse(row.acked_config) as Record<string, unknown>),
      ackedDeleted: row.acked_deleted === true || row.acked_deleted === 1,
      ackedSecret: row.acked_secret,
      pushedTarget: row.pushed_target,
    },
    expiring: JSON.parse(row.expiring) as ExpiringCredential[],
    live: {
      status: row.live_status as LiveStatus,
      checkedAt: row.live_checked_at,
      since: row.live_since,
      error: row.live_error,
      diff: row.live_diff === null ? null : (JSON.parse(row.live_diff) as LiveDiff),
      repairs: row.live_repairs,
      nextRepairAt: row.live_next_repair_at,
    },
  };
}

export const fromActivityRow = (row: ActivityRow): Activity => ({
  id: row.id,
  type: row.type as ActivityType,
  relayId: row.relay_id,
  owner: row.owner,
  actor: row.actor,
  payload: JSON.parse(row.payload) as Record<string, unknown>,
  createdAt: row.created_at,
});

export const fromTokenRow = (row: TokenRow): Token => ({
  id: row.id,
  name: row.name,
  role: row.role as Role,
  owner: row.owner,
  fleet: row.fleet,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  revokedAt: row.revoked_at,
});

export interface TargetRow {
  name: string;
  url: string;
  secret_key: string | null;
  verify_url: string | null;
  rev: number;
  created_at: number;
  updated_at: number;
}

export const TARGET_COLUMNS = [
  'name',
  'url',
  'secret_key',
  'verify_url',
  'rev',
  'created_at',
  'updated_at',
] as const;

export const toTargetRow = (t: Target): TargetRow => ({
  name: t.name,
  url: t.url,
  secret_key: t.secretKey,
  verify_url: t.verifyUrl,
  rev: t.rev,
  created_at: t.createdAt,
  updated_at: t.updatedAt,
});

export const fromTargetRow = (row: TargetRow): Target => ({
  name: row.name,
  url: row.url,
  secretKey: row.secret_key,
  verifyUrl: row.verify_url,
  rev: row.rev,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export interface FleetRow {
  name: string;
  target: string | null;
  /** SQLite stores 0/1, PostgreSQL a boolean. */
  pull_only: boolean | number;
  created_at: number;
  updated_at: number;
}

/** The fleets row's columns for a target: NULL and not pull-only is `default`. */
export const fleetTargetColumns = (t: FleetTarget): { target: string | null; pullOnly: boolean } =>
  t.kind === 'target' ? { target: t.name, pullOnly: false } : { target: null, pullOnly: t.kind === 'none' };

export const fromFleetRow = (row: FleetRow): FleetRecord => ({
  name: row.name,
  target:
    row.target !== null
      ? { kind: 'target', name: row.target }
      : row.pull_only === true || row.pull_only === 1
        ? { kind: 'none' }
        : { kind: 'default' },
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});
