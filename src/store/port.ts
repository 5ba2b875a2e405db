import type { Activity, ActivityDraft } from '../domain/activity.js';
import type { Token } from '../domain/principal.js';
import type { Relay, SyncStatus } from '../domain/relay.js';

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
}

export interface RelayFilter {
  owner?: string;
  fleet?: string;
  status?: SyncStatus;
  includeDeleted?: boolean;
  /** Keyset pagination: ids strictly after this one, ascending. */
  after?: string;
  limit: number;
}

export interface ActivityFilter {
  after: number;
  relayId?: string;
  /** Only activities of relays with this owner (tenant scoping). */
  owner?: string;
  limit: number;
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  /** Applies the batch atomically and returns the appended activities with their ids. */
  commit(batch: WriteBatch): Promise<Activity[]>;
  getRelay(id: string): Promise<Relay | undefined>;
  listRelays(filter: RelayFilter): Promise<Relay[]>;
  /** Relays whose sync is not done: pending, retrying, or behind their version. */
  relaysNeedingSync(limit: number): Promise<Relay[]>;
  countRelaysByStatus(): Promise<Record<SyncStatus, number>>;
  /** Live relays whose host or schema is one of these (to find who waits on a freed value). */
  relaysUsing(values: { host?: string; schema?: string }): Promise<Relay[]>;
  activitiesAfter(filter: ActivityFilter): Promise<Activity[]>;
  lastActivityId(): Promise<number>;

  insertToken(token: Token, hash: string): Promise<void>;
  findTokenByHash(hash: string): Promise<Token | undefined>;
  listTokens(): Promise<Token[]>;
  revokeToken(id: string, at: number): Promise<boolean>;
  /** True when an unrevoked, unexpired tenant token exists for this owner (NIP-98 registration). */
  hasTenant(owner: string, now: number): Promise<boolean>;

  /** Reads and writes a named cursor (e.g. the observer's position in the activity log). */
  getCursor(name: string): Promise<number>;
  setCursor(name: string, position: number): Promise<void>;

  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Raised by adapters; the Command maps these to API errors or retries. */
export class StoreConflictError extends Error {
  constructor(
    readonly field: 'id' | 'host' | 'schema',
    readonly value: string,
  ) {
    super(`${field} ${JSON.stringify(value)} is already in use`);
    this.name = 'StoreConflictError';
  }
}

/** A row's rev moved since it was read: someone else wrote it. The writer re-reads and retries. */
export class StaleWriteError extends Error {
  constructor(readonly relayId: string) {
    super(`relay ${relayId} changed concurrently`);
    this.name = 'StaleWriteError';
  }
}
