import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Activity } from '../../domain/activity.js';
import type { LiveStatus } from '../../domain/live.js';
import type { Token } from '../../domain/principal.js';
import type { Relay, SyncStatus } from '../../domain/relay.js';
import type { FleetRecord, Target } from '../../domain/target.js';
import { createPrivateFileSync, makePrivateDir } from '../../private-files.js';
import { FleetStateCache } from '../fleet-state-cache.js';
import {
  type ActivityFilter,
  type Fence,
  type FleetStateFilter,
  type FleetStateRecord,
  type FleetStateWrite,
  type FleetTargetWrite,
  type LiveCount,
  leaseEpochKey,
  type RelayCount,
  type RelayFilter,
  type RelayHead,
  type Store,
  type WriteBatch,
} from '../port.js';
import {
  type ActivityRow,
  type FleetRow,
  type FleetStateRow,
  fleetTargetColumns,
  fromActivityRow,
  fromFleetRow,
  fromFleetStateRow,
  fromRow,
  fromTargetRow,
  fromTokenRow,
  RELAY_COLUMNS,
  type RelayRow,
  TARGET_COLUMNS,
  type TargetRow,
  type TokenRow,
  toRow,
  toTargetRow,
} from '../rows.js';
import { filterShape, relayFilter, Shapes, whereOf } from '../shapes.js';
import {
  FencedError,
  StaleFleetStateError,
  StaleWriteError,
  StoreConflictError,
  UnknownTargetError,
} from '../write-errors.js';
import { migrations } from './migrations.js';

/**
 * Every connection's settings (bench/ingest's raw baseline uses them too). NORMAL in WAL mode loses
 * no committed transaction on a process crash (only on power loss of the last few), which is the
 * durability the activity log promises.
 */
export const SQLITE_PRAGMAS = [
  'journal_mode = WAL',
  'synchronous = NORMAL',
  'busy_timeout = 5000',
  'foreign_keys = ON',
] as const;

/**
 * A relay of a pull-only fleet: bosun pushes nothing for it, so readers see its sync status as
 * `pull`, whatever push sync last recorded (counts, gauges and the status filter alike).
 */
const IN_PULL_ONLY_FLEET = 'fleet IN (SELECT name FROM fleets WHERE pull_only = 1)';
const SHOWN_STATUS = `CASE WHEN ${IN_PULL_ONLY_FLEET} THEN 'pull' ELSE sync_status END`;

/** listRelays' optional conditions, in the order its arguments are passed (bit i is clause i). */
const RELAY_FILTERS = [
  'deleted_at IS NULL',
  'owner = ?',
  'fleet = ?',
  'sync_status = ?',
  `(${IN_PULL_ONLY_FLEET}) = ?`,
  "COALESCE(json_extract(config, '$.inactive'), 0) = ?",
  'live_status = ?',
  'id > ?',
] as const;

/** SQLite has no boolean type: 0/1. */
const BOOL = (b: boolean): number => (b ? 1 : 0);

/** Maps a unique-index violation to the field it protects. */
function conflictFrom(err: unknown, relay: Relay): StoreConflictError | undefined {
  const e = err as { code?: string; message?: string };
  if (e.code !== 'SQLITE_CONSTRAINT_UNIQUE' && e.code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') return undefined;
  const msg = e.message ?? '';
  if (msg.includes('relays.host')) return new StoreConflictError('host', relay.config.host);
  if (msg.includes('relays.schema')) return new StoreConflictError('schema', relay.config.schema);
  if (msg.includes('relays.id')) return new StoreConflictError('id', relay.id);
  return undefined;
}

/** Relay rows: reads by id, fleet, host or schema, sync and expiry scans, counts. */
function relayStatements(db: Database.Database) {
  const cols = RELAY_COLUMNS.join(', ');
  const params = RELAY_COLUMNS.map((c) => `@${c}`).join(', ');
  return {
    insertRelay: db.prepare(
      `INSERT INTO relays (${cols}, last_activity_id) VALUES (${params}, @last_activity_id)`,
    ),
    getRelay: db.prepare('SELECT * FROM relays WHERE id = ?'),
    getRelays: db.prepare('SELECT * FROM relays WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id'),
    relayHeads: db.prepare(
      'SELECT id, owner, version FROM relays WHERE fleet = ? AND deleted_at IS NULL ORDER BY id',
    ),
    setHead: db.prepare('UPDATE relays SET last_activity_id = ? WHERE id = ?'),
    touchLiveChecks: db.prepare(
      'UPDATE relays SET live_checked_at = ? WHERE id IN (SELECT value FROM json_each(?)) AND live_checked_at < ?',
    ),
    needingSync: db.prepare(
      `SELECT * FROM relays
     WHERE synced_version < version OR sync_status IN ('pending', 'retrying')
     ORDER BY id LIMIT ?`,
    ),
    // A UNION, not `host = ? OR schema = ?`: SQLite scans the whole table for that OR.
    using: db.prepare(
      `SELECT * FROM relays WHERE deleted_at IS NULL AND host = ?
     UNION SELECT * FROM relays WHERE deleted_at IS NULL AND schema = ? ORDER BY id`,
    ),
    expiredCredentials: db.prepare(
      `SELECT * FROM relays WHERE expiring_next_at IS NOT NULL AND expiring_next_at <= ?
     ORDER BY expiring_next_at, id LIMIT ?`,
    ),
    dueRetries: db.prepare(
      `SELECT * FROM relays WHERE sync_status = 'retrying' AND next_attempt_at <= ?
     ORDER BY next_attempt_at, id LIMIT ?`,
    ),
    countByStatus: db.prepare(
      `SELECT ${SHOWN_STATUS} AS status, COUNT(*) AS n FROM relays WHERE deleted_at IS NULL GROUP BY 1`,
    ),
    relayCounts: db.prepare(
      `SELECT fleet, ${SHOWN_STATUS} AS status,
            COALESCE(json_extract(config, '$.inactive'), 0) AS inactive,
            deleted_at IS NOT NULL AS deleted, COUNT(*) AS n, MIN(updated_at) AS oldest
     FROM relays WHERE deleted_at IS NULL OR sync_status <> 'synced' GROUP BY 1, 2, 3, 4`,
    ),
    toVerify: db.prepare(
      `SELECT * FROM relays WHERE id > ? AND (deleted_at IS NULL OR deleted_at >= ? OR live_status = 'unexpected')
       ORDER BY id LIMIT ?`,
    ),
    liveCounts: db.prepare(
      `SELECT live_status AS status, COALESCE(json_extract(config, '$.inactive'), 0) AS inactive,
              deleted_at IS NOT NULL AS deleted, COUNT(*) AS n
       FROM relays WHERE deleted_at IS NULL OR live_status = 'unexpected' GROUP BY 1, 2, 3`,
    ),
  };
}

/** The activity log: appends (chained per relay), its head, pruning. */
function activityStatements(db: Database.Database) {
  return {
    insertActivity: db.prepare(
      'INSERT INTO activities (type, relay_id, owner, actor, payload, created_at, prev_id) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    /** The relay's first activity in a batch: its predecessor is the head the relay row records. */
    insertActivityAfterHead: db.prepare(
      `INSERT INTO activities (type, relay_id, owner, actor, payload, created_at, prev_id)
     VALUES (?, ?, ?, ?, ?, ?, (SELECT last_activity_id FROM relays WHERE id = ?))`,
    ),
    lastActivity: db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM activities'),
    pruneActivities: db.prepare(
      `DELETE FROM activities WHERE id IN (
       SELECT id FROM activities
       WHERE created_at < ? AND id <= ? AND id < (SELECT MAX(id) FROM activities)
       ORDER BY id LIMIT ?)`,
    ),
  };
}

/** Each fleet's applied States. */
function fleetStateStatements(db: Database.Database) {
  return {
    latestFleetVersion: db.prepare(
      'SELECT COALESCE(MAX(version), 0) AS version FROM fleet_states WHERE fleet = ?',
    ),
    latestFleetState: db.prepare('SELECT * FROM fleet_states WHERE fleet = ? ORDER BY version DESC LIMIT 1'),
    insertFleetState: db.prepare(
      `INSERT INTO fleet_states (fleet, version, config_id, owner, actor, state, created_at)
     VALUES (@fleet, @version, @config_id, @owner, @actor, @state, @created_at)`,
    ),
  };
}

/** API tokens. */
function tokenStatements(db: Database.Database) {
  return {
    insertToken: db.prepare(
      `INSERT INTO tokens (id, hash, name, role, owner, fleet, created_at, expires_at, revoked_at)
     VALUES (@id, @hash, @name, @role, @owner, @fleet, @created_at, @expires_at, @revoked_at)`,
    ),
    findToken: db.prepare('SELECT * FROM tokens WHERE hash = ?'),
    findTokenById: db.prepare('SELECT * FROM tokens WHERE id = ?'),
    listTokens: db.prepare('SELECT * FROM tokens ORDER BY created_at, id'),
    revokeToken: db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    hasTenant: db.prepare(
      `SELECT 1 FROM tokens WHERE role = 'tenant' AND owner = ? AND revoked_at IS NULL
     AND (expires_at IS NULL OR expires_at > ?) LIMIT 1`,
    ),
    expireTokens: db.prepare(
      'UPDATE tokens SET revoked_at = expires_at WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?',
    ),
  };
}

/** zooid targets and the fleets pinned to them. */
function targetStatements(db: Database.Database) {
  return {
    insertTarget: db.prepare(
      `INSERT INTO targets (${TARGET_COLUMNS.join(', ')}) VALUES (${TARGET_COLUMNS.map((c) => `@${c}`).join(', ')})
     ON CONFLICT(name) DO NOTHING`,
    ),
    updateTarget: db.prepare(
      `UPDATE targets SET url = @url, secret_key = @secret_key, verify_url = @verify_url, rev = @rev,
     updated_at = @updated_at WHERE name = @name AND rev = @previous_rev`,
    ),
    deleteTarget: db.prepare('DELETE FROM targets WHERE name = ?'),
    getTarget: db.prepare('SELECT * FROM targets WHERE name = ?'),
    listTargets: db.prepare('SELECT * FROM targets ORDER BY name'),
    fleetsUsing: db.prepare('SELECT name FROM fleets WHERE target = ? ORDER BY name'),
    // A scan: deleting a target is rare, and an index would be written on every move.
    relaysOnTarget: db.prepare('SELECT COUNT(*) AS n FROM relays WHERE pushed_target = ?'),
    getFleet: db.prepare('SELECT * FROM fleets WHERE name = ?'),
    listFleets: db.prepare('SELECT * FROM fleets ORDER BY name'),
    setFleet: db.prepare(
      `INSERT INTO fleets (name, target, pull_only, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT(name) DO UPDATE SET target = excluded.target, pull_only = excluded.pull_only,
       updated_at = excluded.updated_at`,
    ),
  };
}

/** Cursors and lease epochs, shared secrets, spent NIP-98 nonces. */
function bookkeepingStatements(db: Database.Database) {
  return {
    getCursor: db.prepare('SELECT position FROM cursors WHERE name = ?'),
    setCursor: db.prepare(
      'INSERT INTO cursors (name, position) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET position = excluded.position',
    ),
    newLeaseEpoch: db.prepare(
      `INSERT INTO cursors (name, position) VALUES (?, 1)
     ON CONFLICT(name) DO UPDATE SET position = position + 1 RETURNING position`,
    ),
    insertSecret: db.prepare(
      'INSERT INTO shared_secrets (name, value) VALUES (?, ?) ON CONFLICT(name) DO NOTHING',
    ),
    getSecret: db.prepare('SELECT value FROM shared_secrets WHERE name = ?'),
    forgetNonces: db.prepare('DELETE FROM spent_nonces WHERE expires_at <= ?'),
    spendNonce: db.prepare(
      'INSERT INTO spent_nonces (nonce, expires_at) VALUES (?, ?) ON CONFLICT(nonce) DO NOTHING',
    ),
  };
}

/**
 * The embedded default store: one SQLite file in WAL mode. better-sqlite3 is synchronous, so each
 * batch commits inside one call and no other statement can interleave with it in this process;
 * rev checks keep writers in other processes honest.
 */
export class SqliteStore implements Store {
  readonly serialCommits = true;
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly commitTx: Database.Transaction<(batch: WriteBatch) => Activity[]>;

  constructor(file: string) {
    if (file !== ':memory:') {
      // Created 0600 before SQLite opens it: SQLite gives -wal and -shm the database file's mode.
      makePrivateDir(dirname(file));
      createPrivateFileSync(file);
    }
    this.db = new Database(file);
    for (const pragma of SQLITE_PRAGMAS) this.db.pragma(pragma);
    this.migrate();

    const db = this.db;
    this.stmts = {
      ...relayStatements(db),
      ...activityStatements(db),
      ...fleetStateStatements(db),
      ...tokenStatements(db),
      ...bookkeepingStatements(db),
      ...targetStatements(db),
    };
    this.commitTx = this.db.transaction((batch: WriteBatch) => this.commitBatch(batch));
  }

  /** One batch, inside the transaction `commit` runs it in. */
  private commitBatch(batch: WriteBatch): Activity[] {
    if (batch.fence) this.checkFence(batch.fence);
    for (const write of batch.fleetStates ?? []) this.insertFleetState(write);
    for (const write of batch.fleets ?? []) this.setFleet(write);
    // Activities first: each relay's newest one becomes the chain head written with its row.
    const heads = new Map<string, number>();
    const activities = batch.activities.map((a) => {
      const payload = JSON.stringify(a.payload);
      const prev = heads.get(a.relayId);
      const res =
        prev === undefined
          ? this.stmts.insertActivityAfterHead.run(
              a.type,
              a.relayId,
              a.owner,
              a.actor,
              payload,
              a.createdAt,
              a.relayId,
            )
          : this.stmts.insertActivity.run(a.type, a.relayId, a.owner, a.actor, payload, a.createdAt, prev);
      const id = Number(res.lastInsertRowid);
      heads.set(a.relayId, id);
      return { ...a, id };
    });
    for (const write of batch.relays) {
      const head = heads.get(write.relay.id);
      heads.delete(write.relay.id);
      const previous = write.kind === 'update' ? write.previous : undefined;
      const basis = previous && { relay: previous, row: this.rowOf(previous) };
      const row = toRow(write.relay, BOOL, basis);
      this.remember(write.relay, row);
      try {
        if (!basis) {
          this.stmts.insertRelay.run({ ...row, last_activity_id: head ?? null });
        } else if (this.updateRow(row, basis.row, basis.relay.rev, head) !== 1) {
          throw new StaleWriteError(write.relay.id);
        }
      } catch (err) {
        throw conflictFrom(err, write.relay) ?? err;
      }
    }
    for (const [relayId, head] of heads) this.stmts.setHead.run(head, relayId);
    return activities;
  }

  /**
   * The row of the relay object this store last read or wrote, per id (relays are immutable
   * values): the write of its successor diffs against it and reuses its JSON text instead of
   * serializing again. Bounded; a plain Map because a WeakMap's ephemerons cost every GC.
   */
  private readonly rows = new Map<string, { relay: Relay; row: RelayRow }>();

  private remember(relay: Relay, row: RelayRow): void {
    this.rows.delete(relay.id);
    this.rows.set(relay.id, { relay, row });
    if (this.rows.size > 10_000) this.rows.delete(this.rows.keys().next().value as string);
  }

  private rowOf(relay: Relay): RelayRow {
    const known = this.rows.get(relay.id);
    return known?.relay === relay ? known.row : toRow(relay, BOOL);
  }

  private readonly updates = new Map<string, Database.Statement>();

  /**
   * An UPDATE of only the columns that changed (and the chain head when the batch appended
   * activities of the relay): SQLite then leaves alone the indexes on the others, which roughly
   * halves the cost of a typical config change. Statements are cached per column set (a handful
   * in practice). Returns the number of rows changed: 0 when the rev moved on.
   */
  private updateRow(
    next: RelayRow,
    previous: RelayRow,
    expectedRev: number,
    head: number | undefined,
  ): number {
    const values: unknown[] = [];
    let key = '';
    for (const c of RELAY_COLUMNS) {
      if (c === 'id' || next[c] === previous[c]) continue;
      key += `${c},`;
      values.push(next[c]);
    }
    if (head !== undefined) {
      key += 'last_activity_id';
      values.push(head);
    }
    let stmt = this.updates.get(key);
    if (!stmt) {
      const sets = key
        .split(',')
        .filter(Boolean)
        .map((c) => `${c} = ?`)
        .join(', ');
      stmt = this.db.prepare(`UPDATE relays SET ${sets || 'rev = rev'} WHERE id = ? AND rev = ?`);
      this.updates.set(key, stmt);
    }
    values.push(next.id, expectedRev);
    return stmt.run(...values).changes;
  }

  private migrate(): void {
    this.db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
    );
    const applied = new Set(
      (this.db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    const record = this.db.prepare(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      this.db
        .transaction(() => {
          this.db.exec(m.sql);
          record.run(m.version, m.name, Date.now());
        })
        .immediate();
    }
  }

  async commit(batch: WriteBatch): Promise<Activity[]> {
    return this.commitTx.immediate(batch);
  }

  /** Inside the commit transaction: the fleet's newest version must still be the one the apply read. */
  private insertFleetState({ record, previousVersion }: FleetStateWrite): void {
    const { version } = this.stmts.latestFleetVersion.get(record.fleet) as { version: number };
    if (version !== previousVersion) throw new StaleFleetStateError(record.fleet, previousVersion, version);
    this.stmts.insertFleetState.run({
      fleet: record.fleet,
      version: record.version,
      config_id: record.configId,
      owner: record.owner,
      actor: record.actor,
      state: JSON.stringify(record.state),
      created_at: record.createdAt,
    });
  }

  /** Inside the commit transaction: the foreign key refuses an unknown target. */
  private setFleet({ fleet, target, at }: FleetTargetWrite): void {
    const cols = fleetTargetColumns(target);
    try {
      this.stmts.setFleet.run(fleet, cols.target, BOOL(cols.pullOnly), at, at);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY' && cols.target !== null) {
        throw new UnknownTargetError(cols.target);
      }
      throw err;
    }
  }

  async insertTarget(target: Target): Promise<boolean> {
    return this.stmts.insertTarget.run(toTargetRow(target)).changes === 1;
  }

  async updateTarget(target: Target, previous: Target): Promise<boolean> {
    const { name, url, secret_key, verify_url, rev, updated_at } = toTargetRow(target);
    const row = { name, url, secret_key, verify_url, rev, updated_at, previous_rev: previous.rev };
    return this.stmts.updateTarget.run(row).changes === 1;
  }

  async deleteTarget(name: string): Promise<{ deleted: boolean; usedBy: string[]; holding: number }> {
    return this.db
      .transaction(() => {
        const usedBy = (this.stmts.fleetsUsing.all(name) as { name: string }[]).map((r) => r.name);
        const holding = (this.stmts.relaysOnTarget.get(name) as { n: number }).n;
        if (usedBy.length > 0 || holding > 0) return { deleted: false, usedBy, holding };
        return { deleted: this.stmts.deleteTarget.run(name).changes === 1, usedBy, holding };
      })
      .immediate();
  }

  async getTarget(name: string): Promise<Target | undefined> {
    const row = this.stmts.getTarget.get(name) as TargetRow | undefined;
    return row && fromTargetRow(row);
  }

  async listTargets(): Promise<Target[]> {
    return (this.stmts.listTargets.all() as TargetRow[]).map(fromTargetRow);
  }

  async getFleet(name: string): Promise<FleetRecord | undefined> {
    const row = this.stmts.getFleet.get(name) as FleetRow | undefined;
    return row && fromFleetRow(row);
  }

  async listFleets(): Promise<FleetRecord[]> {
    return (this.stmts.listFleets.all() as FleetRow[]).map(fromFleetRow);
  }

  async getRelays(ids: readonly string[]): Promise<Relay[]> {
    if (ids.length === 0) return [];
    return (this.stmts.getRelays.all(JSON.stringify(ids)) as RelayRow[]).map(fromRow);
  }

  async relayHeads(fleet: string): Promise<RelayHead[]> {
    return this.stmts.relayHeads.all(fleet) as RelayHead[];
  }

  private readonly fleetStates = new FleetStateCache();

  async latestFleetState(fleet: string): Promise<FleetStateRecord | undefined> {
    const { version } = this.stmts.latestFleetVersion.get(fleet) as { version: number };
    const kept = this.fleetStates.get(fleet, version);
    if (kept) return kept;
    const row = this.stmts.latestFleetState.get(fleet) as FleetStateRow | undefined;
    return row && this.fleetStates.keep(fromFleetStateRow(row));
  }

  private readonly fleetStateLists = new Shapes((mask) =>
    this.db.prepare(
      `SELECT * FROM fleet_states ${whereOf(['fleet = ?', 'owner = ?', 'version < ?'], mask)} ORDER BY version DESC LIMIT ?`,
    ),
  );

  async listFleetStates(filter: FleetStateFilter): Promise<FleetStateRecord[]> {
    const { mask, args } = filterShape([filter.fleet, filter.owner, filter.before]);
    const stmt = this.fleetStateLists.get(mask);
    return (stmt.all(...args, filter.limit) as FleetStateRow[]).map(fromFleetStateRow);
  }

  async getRelay(id: string): Promise<Relay | undefined> {
    const row = this.stmts.getRelay.get(id) as RelayRow | undefined;
    if (!row) return undefined;
    const relay = fromRow(row);
    this.remember(relay, row);
    return relay;
  }

  private readonly relayLists = new Shapes((mask) =>
    this.db.prepare(`SELECT * FROM relays ${whereOf(RELAY_FILTERS, mask)} ORDER BY id LIMIT ?`),
  );

  async listRelays(filter: RelayFilter): Promise<Relay[]> {
    const { mask, args } = relayFilter(filter, BOOL);
    const rows = this.relayLists.get(mask).all(...args, filter.limit) as RelayRow[];
    return rows.map(fromRow);
  }

  async relaysNeedingSync(limit: number): Promise<Relay[]> {
    return (this.stmts.needingSync.all(limit) as RelayRow[]).map(fromRow);
  }

  async relaysUsing(values: { host?: string; schema?: string }): Promise<Relay[]> {
    const rows = this.stmts.using.all(values.host ?? null, values.schema ?? null) as RelayRow[];
    return rows.map(fromRow);
  }

  async relaysDueForRetry(now: number, limit: number): Promise<Relay[]> {
    return (this.stmts.dueRetries.all(now, limit) as RelayRow[]).map(fromRow);
  }

  async relaysWithExpiredCredentials(now: number, limit: number): Promise<Relay[]> {
    return (this.stmts.expiredCredentials.all(now, limit) as RelayRow[]).map(fromRow);
  }

  async expireTokens(now: number): Promise<number> {
    return this.stmts.expireTokens.run(now).changes;
  }

  async pruneActivities(opts: { before: number; maxId: number; limit: number }): Promise<number> {
    return this.stmts.pruneActivities.run(opts.before, opts.maxId, opts.limit).changes;
  }

  async countRelaysByStatus(): Promise<Record<SyncStatus, number>> {
    const counts: Record<SyncStatus, number> = { pending: 0, synced: 0, retrying: 0, failed: 0, pull: 0 };
    for (const row of this.stmts.countByStatus.all() as { status: SyncStatus; n: number }[]) {
      counts[row.status] = row.n;
    }
    return counts;
  }

  async relayCounts(): Promise<RelayCount[]> {
    type Row = {
      fleet: string;
      status: SyncStatus;
      inactive: number;
      deleted: number;
      n: number;
      oldest: number;
    };
    return (this.stmts.relayCounts.all() as Row[]).map((r) => ({
      fleet: r.fleet,
      status: r.status,
      inactive: r.inactive === 1,
      deleted: r.deleted === 1,
      n: r.n,
      oldestChangeAt: r.oldest,
    }));
  }

  async relaysToVerify(filter: { deletedSince: number; after?: string; limit: number }): Promise<Relay[]> {
    const rows = this.stmts.toVerify.all(filter.after ?? '', filter.deletedSince, filter.limit) as RelayRow[];
    return rows.map(fromRow);
  }

  async liveCounts(): Promise<LiveCount[]> {
    type Row = { status: LiveStatus; inactive: number; deleted: number; n: number };
    return (this.stmts.liveCounts.all() as Row[]).map((r) => ({
      status: r.status,
      inactive: r.inactive === 1,
      deleted: r.deleted === 1,
      n: r.n,
    }));
  }

  /** Bit 1: one relay's activities, bit 2: one owner's. */
  private readonly activityLists = new Shapes((mask) => {
    // One relay's activities: walk its chain back from the newest to the cursor (migration 4).
    const chain =
      mask & 1
        ? `WITH RECURSIVE chain(id) AS (
                 SELECT last_activity_id FROM relays WHERE id = ?
                 UNION ALL
                 SELECT p.prev_id FROM activities p JOIN chain ON p.id = chain.id WHERE p.prev_id > ?
               ) `
        : '';
    const from = mask & 1 ? 'activities a JOIN chain ON chain.id = a.id' : 'activities a';
    return this.db.prepare(`${chain}SELECT a.id, a.type, a.relay_id, a.owner, a.actor, a.payload, a.created_at FROM ${from}
                 ${whereOf(['a.id > ?', 'a.owner = ?'], 1 | (mask & 2))} ORDER BY a.id LIMIT ?`);
  });

  async activitiesAfter(filter: ActivityFilter): Promise<Activity[]> {
    let mask = 0;
    const args: unknown[] = [];
    if (filter.relayId !== undefined) {
      mask |= 1;
      args.push(filter.relayId, filter.after);
    }
    args.push(filter.after);
    if (filter.owner !== undefined) {
      mask |= 2;
      args.push(filter.owner);
    }
    const stmt = this.activityLists.get(mask);
    return (stmt.all(...args, filter.limit) as ActivityRow[]).map(fromActivityRow);
  }

  async lastActivityId(): Promise<number> {
    return (this.stmts.lastActivity.get() as { id: number }).id;
  }

  async insertToken(token: Token, hash: string): Promise<void> {
    this.stmts.insertToken.run({
      id: token.id,
      hash,
      name: token.name,
      role: token.role,
      owner: token.owner,
      fleet: token.fleet,
      created_at: token.createdAt,
      expires_at: token.expiresAt,
      revoked_at: token.revokedAt,
    });
  }

  async findTokenByHash(hash: string): Promise<Token | undefined> {
    const row = this.stmts.findToken.get(hash) as TokenRow | undefined;
    return row && fromTokenRow(row);
  }

  async findTokenById(id: string): Promise<Token | undefined> {
    const row = this.stmts.findTokenById.get(id) as TokenRow | undefined;
    return row && fromTokenRow(row);
  }

  async listTokens(): Promise<Token[]> {
    return (this.stmts.listTokens.all() as TokenRow[]).map(fromTokenRow);
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    return this.stmts.revokeToken.run(at, id).changes === 1;
  }

  async hasTenant(owner: string, now: number): Promise<boolean> {
    return this.stmts.hasTenant.get(owner, now) !== undefined;
  }

  async getCursor(name: string): Promise<number> {
    const row = this.stmts.getCursor.get(name) as { position: number } | undefined;
    return row?.position ?? 0;
  }

  async setCursor(name: string, position: number, fence?: Fence): Promise<void> {
    if (!fence) {
      this.stmts.setCursor.run(name, position);
      return;
    }
    this.db
      .transaction(() => {
        this.checkFence(fence);
        this.stmts.setCursor.run(name, position);
      })
      .immediate();
  }

  async touchLiveChecks(ids: readonly string[], checkedAt: number, fence?: Fence): Promise<number> {
    if (ids.length === 0) return 0;
    const touch = () => this.stmts.touchLiveChecks.run(checkedAt, JSON.stringify(ids), checkedAt).changes;
    if (!fence) return touch();
    return this.db
      .transaction(() => {
        this.checkFence(fence);
        return touch();
      })
      .immediate();
  }

  async newLeaseEpoch(lease: string): Promise<number> {
    return (this.stmts.newLeaseEpoch.get(leaseEpochKey(lease)) as { position: number }).position;
  }

  async sharedSecret(name: string): Promise<string> {
    this.stmts.insertSecret.run(name, randomBytes(32).toString('hex'));
    return (this.stmts.getSecret.get(name) as { value: string }).value;
  }

  async spendNonce(nonce: string, expiresAt: number, now: number): Promise<boolean> {
    return this.db
      .transaction(() => {
        this.stmts.forgetNonces.run(now);
        return this.stmts.spendNonce.run(nonce, expiresAt).changes === 1;
      })
      .immediate();
  }

  /** Inside a write transaction: SQLite serialises writers, so the epoch cannot move under us. */
  private checkFence(fence: Fence): void {
    const row = this.stmts.getCursor.get(leaseEpochKey(fence.lease)) as { position: number } | undefined;
    if (row?.position !== fence.epoch) throw new FencedError(fence.lease, fence.epoch);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
