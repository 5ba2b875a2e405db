import type { Activity, ActivityDraft } from '../domain/activity.js';
import type { FleetState } from '../domain/fleet/state.js';
import type { LiveStatus } from '../domain/live.js';
import type { Token } from '../domain/principal.js';
import type { Relay, SyncStatus } from '../domain/relay.js';
import type { FleetRecord, FleetTarget, Target } from '../domain/target.js';

/**
 * The one storage port. Adapters (SQLite now; PostgreSQL later) pass the same conformance suite in
 * test/store/. Writes are batches applied in one transaction: the Command computes the new rows,
 * the store applies them atomically with their activities, guarded by each row's `rev` (optimistic
 * concurrency), so a port works the same over a synchronous driver and an asynchronous one.
 */
export type RelayWrite =
  | { kind: 'insert'; relay: Relay }
  /**
   * Update the row as read (`previous`), if its rev is still `previous.rev`; also revives a deleted
   * id. Adapters may write only the columns that differ from `previous`.
   */
  | { kind: 'update'; relay: Relay; previous: Relay };

export interface WriteBatch {
  relays: RelayWrite[];
  activities: ActivityDraft[];
  /** Worker writes (sync state) carry their lease epoch: the batch fails once a newer epoch exists. */
  fence?: Fence;
  /**
   * Fleet config versions recorded in the same transaction as the relay writes of their apply
   * (src/fleet): all of them or none.
   */
  fleetStates?: FleetStateWrite[];
  /**
   * Fleets' push targets, set (inserted or replaced) in the same transaction: a fleet apply that
   * changes `target` in fleet.toml. An unknown target fails the batch with UnknownTargetError.
   */
  fleets?: FleetTargetWrite[];
}

export interface FleetTargetWrite {
  fleet: string;
  target: FleetTarget;
  at: number;
}

/** One applied fleet config version and its State. */
export interface FleetStateRecord {
  fleet: string;
  /** 1, 2, … per fleet. */
  version: number;
  configId: string;
  /** The tenant that applied it; null for an admin. */
  owner: string | null;
  actor: string;
  createdAt: number;
  state: FleetState;
}

export interface FleetStateWrite {
  record: FleetStateRecord;
  /**
   * The fleet's newest version when the apply read it (0: none). If another version was recorded
   * since, the batch fails with StaleFleetStateError and writes nothing.
   */
  previousVersion: number;
}

/** A live relay's identity and version, without its config or secret. */
export interface RelayHead {
  id: string;
  owner: string;
  version: number;
}

export interface FleetStateFilter {
  fleet: string;
  /** Only versions applied by this tenant. */
  owner?: string;
  /** Keyset pagination: versions strictly below this one, newest first. */
  before?: number;
  limit: number;
}

/**
 * A worker's proof that it holds a lease (src/store/lease.ts). Each holder starts a new epoch with
 * `newLeaseEpoch`; a write fenced with an older epoch throws FencedError and changes nothing, so a
 * replica that lost its lease can never overwrite the work of the one that took over.
 */
export interface Fence {
  lease: string;
  epoch: number;
}

export interface RelayFilter {
  owner?: string;
  fleet?: string;
  /** The status push sync recorded (`pull` is never recorded: see pullOnly). */
  status?: Exclude<SyncStatus, 'pull'>;
  /** Only relays of a pull-only fleet (true), whose readers see `pull`, or of a pushed one (false). */
  pullOnly?: boolean;
  /** Only relays whose config has `inactive` set (true) or not (false). */
  inactive?: boolean;
  /** Only relays of this live status (migration 8). */
  live?: LiveStatus;
  includeDeleted?: boolean;
  /** Keyset pagination: ids strictly after this one, ascending. */
  after?: string;
  limit: number;
}

/**
 * One group of relays for counts and metrics: live relays, plus deleted ones whose delete zooid has
 * not acknowledged yet (`deleted`: a stuck delete is a stuck change too).
 */
export interface RelayCount {
  fleet: string;
  status: SyncStatus;
  inactive: boolean;
  deleted: boolean;
  n: number;
  /** The earliest `updatedAt` (time of the latest change) in the group. */
  oldestChangeAt: number;
}

/** Relays of one live status, for metrics and the dashboard's overview. */
export interface LiveCount {
  status: LiveStatus;
  inactive: boolean;
  deleted: boolean;
  n: number;
}

export interface ActivityFilter {
  after: number;
  relayId?: string;
  /** Only activities of relays with this owner (tenant scoping). */
  owner?: string;
  limit: number;
}

export interface Store {
  /**
   * Commits are applied one at a time in activity-id order (one writing process): a reader that saw
   * activity N has every activity below it, so it may skip ahead to the log's head after a short
   * page. False where concurrent transactions can commit ids out of order.
   */
  readonly serialCommits: boolean;
  /** Applies the batch atomically and returns the appended activities with their ids. */
  commit(batch: WriteBatch): Promise<Activity[]>;
  getRelay(id: string): Promise<Relay | undefined>;
  /** Relays (deleted included) with these ids, in id order; unknown ids are left out. */
  getRelays(ids: readonly string[]): Promise<Relay[]>;
  /**
   * The live relays of a fleet, by id, reduced to what a fleet plan needs to tell which relays
   * are unchanged since its last applied version without reading every row.
   */
  relayHeads(fleet: string): Promise<RelayHead[]>;
  listRelays(filter: RelayFilter): Promise<Relay[]>;
  /** Relays whose sync is not done: pending, retrying, or behind their version. */
  relaysNeedingSync(limit: number): Promise<Relay[]>;
  countRelaysByStatus(): Promise<Record<SyncStatus, number>>;
  /** Relays grouped by fleet, sync status, inactive and deleted (one scan; see RelayCount). */
  relayCounts(): Promise<RelayCount[]>;
  /** Relays (deleted included) whose scheduled retry is due at `now`, oldest first. */
  relaysDueForRetry(now: number, limit: number): Promise<Relay[]>;
  /**
   * Relays (deleted included) with a rotated credential whose expiry is ≤ `now`, soonest first
   * (migration 3: `expiring`, `expiring_next_at`).
   */
  relaysWithExpiredCredentials(now: number, limit: number): Promise<Relay[]>;
  /** Live relays whose host or schema is one of these (to find who waits on a freed value). */
  relaysUsing(values: { host?: string; schema?: string }): Promise<Relay[]>;
  /**
   * The relays live verification checks, by id: every live relay, plus deleted ones deleted at or
   * after `deletedSince` or last seen still served (`unexpected`).
   */
  relaysToVerify(filter: { deletedSince: number; after?: string; limit: number }): Promise<Relay[]>;
  /** Live relays grouped by live status and inactive, plus deleted ones last seen still served. */
  liveCounts(): Promise<LiveCount[]>;
  /**
   * Records live checks that changed nothing but their time (src/live/verifier.ts): sets
   * `live.checked_at` to `checkedAt` on these relays, in one statement, only where it is earlier
   * (never back; a relay never checked stays so). Not a commit: no rev, no revision, no activity,
   * no notification. With a fence, nothing is written unless its epoch is the lease's newest
   * (FencedError). Returns how many rows moved.
   */
  touchLiveChecks(ids: readonly string[], checkedAt: number, fence?: Fence): Promise<number>;
  activitiesAfter(filter: ActivityFilter): Promise<Activity[]>;
  lastActivityId(): Promise<number>;

  insertToken(token: Token, hash: string): Promise<void>;
  findTokenByHash(hash: string): Promise<Token | undefined>;
  findTokenById(id: string): Promise<Token | undefined>;
  listTokens(): Promise<Token[]>;
  revokeToken(id: string, at: number): Promise<boolean>;
  /** True when an unrevoked, unexpired tenant token exists for this owner (NIP-98 registration). */
  hasTenant(owner: string, now: number): Promise<boolean>;

  /** Marks unrevoked tokens whose expiry has passed as revoked; returns how many. */
  expireTokens(now: number): Promise<number>;
  /**
   * Deletes activities created before `before` with id ≤ `maxId` (the observer's cursor), never
   * the newest activity (ids stay increasing without gaps). Returns how many were deleted.
   */
  pruneActivities(opts: { before: number; maxId: number; limit: number }): Promise<number>;

  /** Reads and writes a named cursor (e.g. the observer's position in the activity log). */
  getCursor(name: string): Promise<number>;
  /** With a fence, the write happens only while the fence's epoch is the lease's newest (FencedError). */
  setCursor(name: string, position: number, fence?: Fence): Promise<void>;
  /**
   * Starts the next epoch of a lease and returns it (1, 2, …); every older epoch is fenced off from
   * then on. Epochs are kept in the cursors table under `lease:<name>`.
   */
  newLeaseEpoch(lease: string): Promise<number>;

  /**
   * A random 256-bit secret (hex) shared by every process on this database, made by whichever
   * asks first: e.g. the key of dashboard stream tickets, so any replica accepts another's.
   */
  sharedSecret(name: string): Promise<string>;
  /**
   * Spends a single-use value until `expiresAt`: true the first time, false if any process spent it
   * already. Values past their expiry (as of `now`) are forgotten on the way.
   */
  spendNonce(nonce: string, expiresAt: number, now: number): Promise<boolean>;

  /** The newest recorded config version of a fleet (recorded atomically by `WriteBatch.fleetStates`). */
  latestFleetState(fleet: string): Promise<FleetStateRecord | undefined>;
  /** A fleet's recorded config versions, newest first. */
  listFleetStates(filter: FleetStateFilter): Promise<FleetStateRecord[]>;

  /** Adds a target; false (and nothing written) when the name is taken. */
  insertTarget(target: Target): Promise<boolean>;
  /** Replaces a target if its rev is still `previous.rev`; false when it moved (or is gone). */
  updateTarget(target: Target, previous: Target): Promise<boolean>;
  /**
   * Deletes a target unless a fleet is pinned to it or a relay lives on it (`pushed_target`, e.g.
   * one still moving off it): then nothing is deleted, `usedBy` names those fleets and `holding`
   * counts those relays. `deleted` is false when there was no such target.
   */
  deleteTarget(name: string): Promise<{ deleted: boolean; usedBy: string[]; holding: number }>;
  getTarget(name: string): Promise<Target | undefined>;
  /** Every stored target, by name (`default` is not stored). */
  listTargets(): Promise<Target[]>;
  /** A fleet's row; undefined when it has none (it uses `default`). */
  getFleet(name: string): Promise<FleetRecord | undefined>;
  /** Every fleet row, by name. */
  listFleets(): Promise<FleetRecord[]>;

  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The cursors-table row holding a lease's newest epoch. */
export const leaseEpochKey = (lease: string): string => `lease:${lease}`;
