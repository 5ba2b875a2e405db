/**
 * The activity log is append-only and ordered by a monotonic id. Every state change writes its
 * activity in the same transaction as the change (transactional outbox), so the log is the truth
 * that the observer, the stream server and the dashboard follow.
 */
export const RELAY_CHANGE_TYPES = [
  'create_relay',
  'update_relay',
  'activate_relay',
  'deactivate_relay',
  'delete_relay',
  'resync_relay',
  /** A new secret; the old one stays valid for a grace period (payload: fingerprints, never secrets). */
  'rotate_secret',
  /** Rotated credentials past their grace period dropped from the relay (a new version). */
  'expire_credentials',
] as const;
export const SYNC_TYPES = ['complete_relay_sync', 'fail_relay_sync'] as const;

/**
 * What zooid serves for a relay changed status (live verification; payload `from`, `to`, `error`).
 * Appended only on a change, never per check.
 */
export const LIVE_TYPES = ['observe_relay'] as const;

export type RelayChangeType = (typeof RELAY_CHANGE_TYPES)[number];
/**
 * Push sync moved a relay to its fleet's target: created there, then deleted from the one it lived
 * on (payload `from`, `to`, `version`). Appended beside the sync's complete_relay_sync.
 */
export const MOVE_TYPES = ['move_relay'] as const;

export type ActivityType =
  | RelayChangeType
  | (typeof SYNC_TYPES)[number]
  | (typeof LIVE_TYPES)[number]
  | (typeof MOVE_TYPES)[number];

export interface Activity {
  id: number;
  type: ActivityType;
  relayId: string;
  /**
   * The relay's owner when the activity was recorded. Tenants read the log through it, never
   * through the relay's owner today: an id deleted and given to another owner by an admin keeps
   * its past with the owner it belonged to.
   */
  owner: string;
  /** Who caused it: `admin`, `tenant:<owner>`, `token:<id>`, `system:<service>`. Never a secret. */
  actor: string;
  payload: Record<string, unknown>;
  createdAt: number;
}

export type ActivityDraft = Omit<Activity, 'id'>;

export interface ActivityView {
  id: number;
  type: ActivityType;
  relay_id: string;
  actor: string;
  payload: Record<string, unknown>;
  created_at: string;
}

export function viewActivity(a: Activity): ActivityView {
  return {
    id: a.id,
    type: a.type,
    relay_id: a.relayId,
    actor: a.actor,
    payload: a.payload,
    created_at: new Date(a.createdAt).toISOString(),
  };
}
