import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Activity, ActivityDraft } from '../../domain/activity.js';
import type { Token } from '../../domain/principal.js';
import type { Relay, SyncStatus } from '../../domain/relay.js';
import type { FleetRecord, Target } from '../../domain/target.js';
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
  type RelayWrite,
  type Store,
  type WriteBatch,
} from '../port.js';
import {
  type ActivityRow,
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
  type TokenRow,
  toRow,
  toTargetRow,
} from '../rows.js';
import { filterShape, numbered, relayFilter, Shapes, whereOf } from '../shapes.js';
import { sessionEnded } from '../storage-errors.js';
import {
  FencedError,
  StaleFleetStateError,
  StaleWriteError,
  StoreConflictError,
  UnknownTargetError,
} from '../write-errors.js';
import { migrations } from './migrations.js';

/** PostgreSQL stores booleans as such. */
const BOOL = (b: boolean): boolean => b;

import { LOCK_CLASS, type PostgresOptions, schemaKey } from './options.js';

/** Unique indexes (see migrations) and the field each protects. */
const CONSTRAINT_FIELD: Record<string, 'id' | 'host' | 'schema'> = {
  relays_pkey: 'id',
  relays_host: 'host',
  relays_schema: 'schema',
};

function conflictFrom(err: unknown, relay: Relay): StoreConflictError | undefined {
  const e = err as { code?: string; constraint?: string };
  if (e.code !== '23505' || !e.constraint) return undefined;
  const field = CONSTRAINT_FIELD[e.constraint];
  if (!field) return undefined;
  return new StoreConflictError(
    field,
    field === 'id' ? relay.id : field === 'host' ? relay.config.host : relay.config.schema,
  );
}

/**
 * BIGINT (int8) columns hold epoch milliseconds, ids and versions, all far below 2^53: read them as
 * numbers. Scoped to this adapter's pool, not pg's global type registry.
 */
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format ?? 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** Starts the next epoch of a lease ($1 = its cursors row); the UPDATE waits for fenced writers. */
export const NEW_LEASE_EPOCH = `INSERT INTO cursors (name, position) VALUES ($1, 1)
  ON CONFLICT (name) DO UPDATE SET position = cursors.position + 1 RETURNING position`;

/** The LISTEN/NOTIFY channel of one installation (schema). */
export const channelFor = (schema: string): string => `bosun_changes_${schema}`;

/** Statements that only read: safe to send again (see PostgresStore.run). */
const READ_ONLY = /^\s*SELECT\b/i;

/** Quotes an identifier that was validated as `[a-z_][a-z0-9_]*`. */
const ident = (name: string): string => `"${name}"`;

/**
 * A relay of a pull-only fleet: bosun pushes nothing for it, so readers see its sync status as
 * `pull`, whatever push sync last recorded (counts, gauges and the status filter alike).
 */
const IN_PULL_ONLY_FLEET = 'fleet IN (SELECT name FROM fleets WHERE pull_only)';
const SHOWN_STATUS = `CASE WHEN ${IN_PULL_ONLY_FLEET} THEN 'pull' ELSE sync_status END`;

/** listRelays' optional conditions, in the order relayFilter passes their arguments. */
const RELAY_FILTERS = [
  'deleted_at IS NULL',
  'owner = ?',
  'fleet = ?',
  'sync_status = ?',
  `(${IN_PULL_ONLY_FLEET}) = ?`,
  "COALESCE((config::jsonb->>'inactive')::boolean, false) = ?",
  'live_status = ?',
  'id > ?',
] as const;

/**
 * Appends a batch's activities. Ids must become visible in increasing order: the observer reads
 * `id > cursor` and moves its cursor past what it read, so a transaction that drew id 41 and
 * committed after another one's id 42 was read would be skipped for good. PostgreSQL does not give
 * that for free (sequence values are drawn at insert, transactions commit in any order).
 *
 * Choice: appenders are serialised by a transaction-level advisory lock, taken as late as possible
 * (after the relay rows are written and checked) and released by COMMIT, which makes the
 * transaction visible before it releases its locks. So whenever id N is visible every smaller id
 * is committed or rolled back. The cost is that activity-writing commits of one installation
 * queue behind each other for one INSERT plus COMMIT (~0.5-1 ms with fsync on loopback); reads and
 * relay-row writes stay concurrent. (The alternative — readers stopping below the oldest in-flight
 * transaction — needs xid bookkeeping per row and still cannot tell which sequence values an
 * in-flight transaction holds.)
 *
 * The same statement queues a NOTIFY (delivered at commit, never for a rollback) whose payload is
 * this store's instance id, so a process can ignore its own commits (it published them in-process).
 * The lock CTE is MATERIALIZED and its volatile outputs are kept, so it runs once, before any row.
 *
 * Two pieces, so that the single-update commit (updateAndAppendSql) embeds the same SQL: APPENDER
 * (the lock and the NOTIFY; $1-$4) and APPEND_INSERT (the rows, read from a CTE named `appender`;
 * $5-$10). Their values come from appendValues.
 */
const APPENDER = 'SELECT pg_advisory_xact_lock($1::int, $2::int) AS locked, pg_notify($3, $4) AS notified';
const APPEND_INSERT = `INSERT INTO activities (type, relay_id, owner, actor, payload, created_at)
  SELECT a.type, a.relay_id, a.owner, a.actor, a.payload, a.created_at
  FROM appender,
       unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])
         WITH ORDINALITY AS a(type, relay_id, owner, actor, payload, created_at, ord)
  ORDER BY a.ord
  RETURNING id, type, relay_id, owner, actor, payload, created_at`;
/** How many parameters the appender pieces take ($1-$10). */
const APPEND_PARAMS = 10;
const APPEND_ACTIVITIES = `WITH appender AS MATERIALIZED (${APPENDER})
  ${APPEND_INSERT}`;

/** Locks a lease's epoch row (name = `nameParam`) for the rest of the transaction; see checkFence. */
const fenceSql = (nameParam: string): string =>
  `SELECT position FROM cursors WHERE name = ${nameParam} FOR SHARE`;

/**
 * An UPDATE of the changed columns of one relay, guarded by the rev that was read: the id is
 * `$p`, the rev `$p+1`, the changed columns' values follow in order.
 */
function relayUpdateSql(changed: readonly string[], p: number): string {
  const sets = changed.map((c, i) => `${c} = $${p + 2 + i}`).join(', ');
  return `UPDATE relays SET ${sets || 'rev = rev'} WHERE id = $${p} AND rev = $${p + 1}`;
}

/**
 * The common write — one relay update, its activities, maybe a fence — as ONE statement, sent
 * without BEGIN/COMMIT (autocommit: the statement is its own transaction), so it costs one round
 * trip instead of five. It does what the explicit transaction of `commit` does, in the same lock
 * order (lease epoch row FOR SHARE, then the relay row, then the append lock), so the two paths
 * cannot deadlock with each other.
 *
 * Parameters: $1-$10 the appender's (appendValues); then the relay's id, rev and changed columns
 * (relayUpdateSql); then, when fenced, the lease's epoch row name and the fence's epoch.
 *
 * All CTEs share one snapshot and PostgreSQL picks their order, so the order is forced by data
 * dependencies: the UPDATE's guard reads `fence` (taking the FOR SHARE lock, re-checked against
 * the newest row version like any locking read), the appender reads the UPDATE's RETURNING (so the
 * advisory lock, the NOTIFY and therefore the ids are drawn only after the relay row is locked,
 * and not at all when nothing was updated), and the INSERT reads the appender. A stale rev or a
 * superseded fence updates no row, so nothing is appended or notified and the statement commits
 * nothing; a unique violation (host) aborts the whole statement, like any error. The result is one
 * outcome row — the fence's current epoch (null: no such lease) and
 * whether the relay was updated — left-joined with the appended activities, in id order.
 */
function updateAndAppendSql(changed: readonly string[], fenced: boolean): string {
  const p = APPEND_PARAMS + 1;
  const f = p + 2 + changed.length;
  const fenceCte = fenced ? `fence AS MATERIALIZED (${fenceSql(`$${f}`)}),` : '';
  const fenceGuard = fenced ? ` AND (SELECT position FROM fence) = $${f + 1}` : '';
  return `
  WITH ${fenceCte}
  updated AS (
    ${relayUpdateSql(changed, p)}${fenceGuard}
    RETURNING id
  ),
  appender AS MATERIALIZED (${APPENDER} FROM updated),
  appended AS (${APPEND_INSERT})
  SELECT o.fence_epoch, o.updated, a.id, a.type, a.relay_id, a.owner, a.actor, a.payload, a.created_at
  FROM (SELECT ${fenced ? '(SELECT position FROM fence)' : 'NULL::bigint'} AS fence_epoch,
               EXISTS (SELECT FROM updated) AS updated) AS o
  LEFT JOIN appended AS a ON true
  ORDER BY a.id`;
}

/** The columns an update writes: those that differ from the row as read. */
const changedColumns = (next: RelayRow, previous: RelayRow): (keyof RelayRow)[] =>
  RELAY_COLUMNS.filter((c) => c !== 'id' && next[c] !== previous[c]);

/** The outcome row(s) of updateAndAppendSql: the activity columns are null when none was appended. */
type UpdateAndAppendRow = { fence_epoch: number | null; updated: boolean } & (
  | ActivityRow
  | { [K in keyof ActivityRow]: null }
);

type RelayUpdate = Extract<RelayWrite, { kind: 'update' }>;

/** A single-relay update commit waiting for the one in flight (see updateAndAppend). */
interface WaitingUpdate {
  write: RelayUpdate;
  batch: WriteBatch;
  resolve: (activities: Activity[]) => void;
  reject: (err: unknown) => void;
}

/** What an updateAndAppendSql statement's rows say of its write: its activities, or why none. */
function updateOutcome(rows: UpdateAndAppendRow[], write: RelayUpdate, fence: Fence | undefined): Activity[] {
  const [outcome] = rows;
  if (fence && outcome?.fence_epoch !== fence.epoch) throw new FencedError(fence.lease, fence.epoch);
  if (!outcome?.updated) throw new StaleWriteError(write.relay.id);
  return rows.flatMap((r) => (r.id === null ? [] : [fromActivityRow(r)]));
}

/**
 * The PostgreSQL store (`postgres://…`): a `pg` pool whose connections use the installation's
 * schema and a server-side statement timeout. Batches commit in one transaction; unique violations
 * map to StoreConflictError by constraint name, a moved rev to StaleWriteError.
 */
export class PostgresStore implements Store {
  readonly serialCommits = false;
  /** Identifies this store's commits in NOTIFY payloads. */
  readonly instanceId = randomUUID();
  readonly channel: string;
  readonly pool: pg.Pool;
  private readonly appendKey: [number, number];
  /** UPDATE statements by changed-column set: their text and prepared-statement name. */
  private readonly updates = new Map<string, { name: string; text: string }>();
  /** updateAndAppendSql statements by fenced-or-not and changed-column set, likewise. */
  private readonly updatesAndAppends = new Map<string, { name: string; text: string }>();
  private closed = false;
  /** A single-relay update commit is in flight; those arriving meanwhile wait (updateAndAppend). */
  private updating = false;
  private readonly waiting: WaitingUpdate[] = [];

  private constructor(readonly options: PostgresOptions) {
    this.channel = channelFor(options.schema);
    this.appendKey = [LOCK_CLASS.appendActivities, schemaKey(options.schema)];
    this.pool = new pg.Pool({
      ...this.clientConfig({ statementTimeoutMs: options.statementTimeoutMs }),
      max: options.poolSize,
      // A cut network must fail requests, not hang them: bounded waits for a connection and, on
      // top of the server's statement_timeout, for an answer.
      connectionTimeoutMillis: 10_000,
      ...(options.statementTimeoutMs > 0 ? { query_timeout: options.statementTimeoutMs + 5000 } : {}),
      keepAlive: true,
    });
    // An idle client that loses its connection emits here; without a listener it would crash.
    this.pool.on('error', () => {});
    // So does a checked-out one (transaction, migrate): its backend terminated, the server
    // restarting. Every client keeps a listener from connect to removal; the statement in flight
    // fails by itself (a connection failure: 503 storage_unavailable) and the dead client is
    // dropped when released.
    this.pool.on('connect', (client) => client.on('error', () => {}));
  }

  /** Connects, creates the schema if needed and applies pending migrations. */
  static async open(options: PostgresOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end().catch(() => {});
      throw err;
    }
    return store;
  }

  /**
   * Settings for a connection of this installation (pool, listener, lease): the schema first on
   * the search_path, and extra server settings such as `idle_session_timeout`.
   */
  clientConfig(
    settings: { statementTimeoutMs?: number; idleSessionTimeoutMs?: number } = {},
  ): pg.ClientConfig {
    const opts = [`-c search_path=${this.options.schema}`];
    if (settings.statementTimeoutMs !== undefined)
      opts.push(`-c statement_timeout=${settings.statementTimeoutMs}`);
    if (settings.idleSessionTimeoutMs !== undefined) {
      opts.push(`-c idle_session_timeout=${settings.idleSessionTimeoutMs}`);
    }
    return {
      connectionString: this.options.connectionString,
      options: opts.join(' '),
      types,
      application_name: 'bosun',
    };
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Replicas starting together: one migrates, the others wait here and then find it done.
      await client.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [
        LOCK_CLASS.migrate,
        schemaKey(this.options.schema),
      ]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(this.options.schema)}`);
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
      );
      const applied = new Set(
        (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
          (r) => r.version,
        ),
      );
      for (const m of migrations) {
        if (applied.has(m.version)) continue;
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** Runs `work` in one transaction on one pooled connection. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((e: Error) => {
        broken = e;
      });
      throw err;
    } finally {
      // A connection that could not even roll back is discarded, not reused.
      client.release(broken);
    }
  }

  async commit(batch: WriteBatch): Promise<Activity[]> {
    if (
      batch.relays.length === 0 &&
      batch.activities.length === 0 &&
      !batch.fence &&
      !batch.fleetStates?.length &&
      !batch.fleets?.length
    ) {
      return [];
    }
    const [only] = batch.relays;
    if (
      batch.relays.length === 1 &&
      only?.kind === 'update' &&
      !batch.fleetStates?.length &&
      !batch.fleets?.length
    ) {
      return this.updateAndAppend(only, batch);
    }
    return this.transaction(async (client) => {
      if (batch.fence) await this.checkFence(client, batch.fence);
      // The rows it updates, locked first in id order, as a group commit locks its own
      // (commitGroup): the writes themselves go in batch order (a host swap needs it), and two
      // transactions locking several rows in different orders could deadlock.
      const updated = [...new Set(batch.relays.flatMap((w) => (w.kind === 'update' ? [w.relay.id] : [])))];
      if (updated.length > 1) {
        await client.query({
          name: 'bosun_lock_relays',
          text: 'SELECT id FROM relays WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE',
          values: [updated],
        });
      }
      for (const write of batch.fleetStates ?? []) await this.insertFleetState(client, write);
      for (const write of batch.fleets ?? []) await this.setFleet(client, write);
      for (const write of batch.relays) {
        const row = toRow(write.relay, BOOL);
        try {
          if (write.kind === 'insert') {
            await client.query({
              name: 'bosun_insert_relay',
              text: `INSERT INTO relays (${RELAY_COLUMNS.join(', ')}) VALUES (${RELAY_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
              values: RELAY_COLUMNS.map((c) => row[c]),
            });
          } else {
            const res = await client.query(
              this.updateQuery(row, toRow(write.previous, BOOL), write.previous.rev),
            );
            if (res.rowCount !== 1) throw new StaleWriteError(write.relay.id);
          }
        } catch (err) {
          throw conflictFrom(err, write.relay) ?? err;
        }
      }
      if (batch.activities.length === 0) return [];
      const res = await client.query<ActivityRow>({
        name: 'bosun_append_activities',
        text: APPEND_ACTIVITIES,
        values: this.appendValues(batch.activities),
      });
      return res.rows.map(fromActivityRow).sort((x, y) => x.id - y.id);
    });
  }

  /** The values of the appender's parameters $1-$10 (APPENDER, APPEND_INSERT). */
  private appendValues(a: readonly ActivityDraft[]): unknown[] {
    return [
      this.appendKey[0],
      this.appendKey[1],
      this.channel,
      this.instanceId,
      a.map((x) => x.type),
      a.map((x) => x.relayId),
      a.map((x) => x.owner),
      a.map((x) => x.actor),
      a.map((x) => JSON.stringify(x.payload)),
      a.map((x) => x.createdAt),
    ];
  }

  /**
   * `commit` of a batch with exactly one relay update and no fleet states, in one round trip
   * (updateAndAppendSql): same errors, same effects, same ordering guarantees.
   *
   * Group commit: every such commit appends, so they run one at a time in the database anyway
   * (the append lock, held until COMMIT has flushed the WAL: one fsync each, ~1.5 ms here). So one
   * is in flight per store; those that arrive meanwhile wait and then go together in one
   * transaction (commitGroup): one fsync for the group, each write still judged on its own (a
   * stale rev or a superseded fence refuses that write alone, as it commits nothing).
   */
  private updateAndAppend(write: RelayUpdate, batch: WriteBatch): Promise<Activity[]> {
    if (this.updating) {
      return new Promise((resolve, reject) => this.waiting.push({ write, batch, resolve, reject }));
    }
    this.updating = true;
    const done = this.updateAndAppendOn(this.pool, write, batch).then((rows) =>
      updateOutcome(rows, write, batch.fence),
    );
    void done.then(
      () => this.nextGroup(),
      () => this.nextGroup(),
    );
    return done;
  }

  /** Sends the writes that waited, as one group; the store is idle once none waits. */
  private nextGroup(): void {
    const group = this.waiting.splice(0);
    if (group.length === 0) {
      this.updating = false;
      return;
    }
    void this.commitGroup(group).finally(() => this.nextGroup());
  }

  /**
   * One transaction: the rows of every write locked first, in the order of every other writer
   * (lease epoch rows FOR SHARE, then the relay rows by id), so that taking the append lock at the
   * first write cannot deadlock with a transaction holding a later write's row while it waits
   * for that lock; then each write's own statement; then COMMIT, after which each write learns
   * its outcome. A statement that fails (a unique violation) aborts the transaction, which then
   * commits nothing: each write is sent again alone and gets its own answer. A COMMIT that fails
   * may have committed: every write of the group gets its error.
   */
  private async commitGroup(group: WaitingUpdate[]): Promise<void> {
    if (group.length === 1) return this.commitAlone(group[0]!);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      for (const w of group) w.reject(err);
      return;
    }
    let broken: Error | undefined;
    let committing = false;
    try {
      await client.query('BEGIN');
      const fences = [
        ...new Set(group.flatMap((w) => (w.batch.fence ? [leaseEpochKey(w.batch.fence.lease)] : []))),
      ];
      await client.query({
        name: 'bosun_lock_group',
        text: `WITH fences AS MATERIALIZED (
                 SELECT name FROM cursors WHERE name = ANY($1::text[]) ORDER BY name FOR SHARE)
               SELECT id FROM relays WHERE id = ANY($2::text[]) AND (SELECT count(*) FROM fences) >= 0
               ORDER BY id FOR NO KEY UPDATE`,
        values: [fences, [...new Set(group.map((w) => w.write.relay.id))]],
      });
      const rows: UpdateAndAppendRow[][] = [];
      for (const w of group) rows.push(await this.updateAndAppendOn(client, w.write, w.batch));
      committing = true;
      await client.query('COMMIT');
      group.forEach((w, i) => {
        try {
          w.resolve(updateOutcome(rows[i]!, w.write, w.batch.fence));
        } catch (err) {
          w.reject(err);
        }
      });
    } catch (err) {
      if (committing) {
        broken = err as Error;
        for (const w of group) w.reject(err);
        return;
      }
      await client.query('ROLLBACK').catch((e: Error) => {
        broken = e;
      });
      for (const w of group) await this.commitAlone(w);
    } finally {
      client.release(broken);
    }
  }

  /** A waiting write sent on its own (a group of one, or after its group failed). */
  private async commitAlone(w: WaitingUpdate): Promise<void> {
    try {
      w.resolve(
        updateOutcome(await this.updateAndAppendOn(this.pool, w.write, w.batch), w.write, w.batch.fence),
      );
    } catch (err) {
      w.reject(err);
    }
  }

  /** One write's updateAndAppendSql statement, on the pool or inside a group's transaction. */
  private async updateAndAppendOn(
    on: pg.Pool | pg.PoolClient,
    write: RelayUpdate,
    batch: WriteBatch,
  ): Promise<UpdateAndAppendRow[]> {
    const next = toRow(write.relay, BOOL);
    const changed = changedColumns(next, toRow(write.previous, BOOL));
    const { fence } = batch;
    const key = `${fence ? 'fenced' : 'unfenced'}:${changed.join(',')}`;
    let stmt = this.updatesAndAppends.get(key);
    if (stmt === undefined) {
      stmt = {
        name: `bosun_update_and_append_${this.updatesAndAppends.size}`,
        text: updateAndAppendSql(changed, fence !== undefined),
      };
      this.updatesAndAppends.set(key, stmt);
    }
    const values = [
      ...this.appendValues(batch.activities),
      next.id,
      write.previous.rev,
      ...changed.map((c) => next[c]),
      ...(fence ? [leaseEpochKey(fence.lease), fence.epoch] : []),
    ];
    try {
      return (await on.query<UpdateAndAppendRow>({ ...stmt, values })).rows;
    } catch (err) {
      throw conflictFrom(err, write.relay) ?? err;
    }
  }

  /**
   * Inside the commit transaction: the fleet's newest version must still be the one the apply
   * read. Two applies racing past that check both insert the same (fleet, version); the second
   * one's unique violation is the same stale-state error.
   */
  private async insertFleetState(client: pg.PoolClient, { record, previousVersion }: FleetStateWrite) {
    const latest = await client.query<{ version: number }>({
      name: 'bosun_latest_fleet_version',
      text: 'SELECT COALESCE(MAX(version), 0)::int AS version FROM fleet_states WHERE fleet = $1',
      values: [record.fleet],
    });
    const version = latest.rows[0]?.version ?? 0;
    if (version !== previousVersion) throw new StaleFleetStateError(record.fleet, previousVersion, version);
    try {
      await client.query({
        name: 'bosun_insert_fleet_state',
        text: `INSERT INTO fleet_states (fleet, version, config_id, owner, actor, state, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        values: [
          record.fleet,
          record.version,
          record.configId,
          record.owner,
          record.actor,
          JSON.stringify(record.state),
          record.createdAt,
        ],
      });
    } catch (err) {
      const e = err as { code?: string; constraint?: string };
      if (e.code === '23505' && e.constraint === 'fleet_states_pkey') {
        throw new StaleFleetStateError(record.fleet, previousVersion, record.version);
      }
      throw err;
    }
  }

  /** Inside the commit transaction: the foreign key refuses an unknown target. */
  private async setFleet(client: pg.PoolClient, { fleet, target, at }: FleetTargetWrite): Promise<void> {
    const cols = fleetTargetColumns(target);
    try {
      await client.query({
        name: 'bosun_set_fleet',
        text: `INSERT INTO fleets (name, target, pull_only, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
               ON CONFLICT (name) DO UPDATE SET target = excluded.target, pull_only = excluded.pull_only,
                 updated_at = excluded.updated_at`,
        values: [fleet, cols.target, cols.pullOnly, at],
      });
    } catch (err) {
      if ((err as { code?: string }).code === '23503' && cols.target !== null) {
        throw new UnknownTargetError(cols.target);
      }
      throw err;
    }
  }

  async insertTarget(target: Target): Promise<boolean> {
    const row = toTargetRow(target);
    const res = await this.pool.query({
      name: 'bosun_insert_target',
      text: `INSERT INTO targets (${TARGET_COLUMNS.join(', ')})
             VALUES (${TARGET_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')}) ON CONFLICT (name) DO NOTHING`,
      values: TARGET_COLUMNS.map((c) => row[c]),
    });
    return res.rowCount === 1;
  }

  async updateTarget(target: Target, previous: Target): Promise<boolean> {
    const row = toTargetRow(target);
    const res = await this.pool.query({
      name: 'bosun_update_target',
      text: `UPDATE targets SET url = $2, secret_key = $3, verify_url = $4, rev = $5, updated_at = $6
             WHERE name = $1 AND rev = $7`,
      values: [row.name, row.url, row.secret_key, row.verify_url, row.rev, row.updated_at, previous.rev],
    });
    return res.rowCount === 1;
  }

  /**
   * Checks the fleets and deletes in one transaction; a fleet pinned meanwhile by another
   * transaction makes the foreign key refuse the delete, and is then named like the others.
   */
  async deleteTarget(name: string): Promise<{ deleted: boolean; usedBy: string[]; holding: number }> {
    const using = (client: pg.PoolClient) =>
      client
        .query<{ name: string }>({
          name: 'bosun_fleets_using_target',
          text: 'SELECT name FROM fleets WHERE target = $1 ORDER BY name',
          values: [name],
        })
        .then((r) => r.rows.map((x) => x.name));
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.transaction(async (client) => {
          const usedBy = await using(client);
          // A scan: deleting a target is rare, and an index would be written on every move.
          const held = await client.query<{ n: string }>({
            name: 'bosun_relays_on_target',
            text: 'SELECT COUNT(*) AS n FROM relays WHERE pushed_target = $1',
            values: [name],
          });
          const holding = Number(held.rows[0]!.n);
          if (usedBy.length > 0 || holding > 0) return { deleted: false, usedBy, holding };
          const res = await client.query({
            name: 'bosun_delete_target',
            text: 'DELETE FROM targets WHERE name = $1',
            values: [name],
          });
          return { deleted: res.rowCount === 1, usedBy, holding };
        });
      } catch (err) {
        // A fleet pinned after the check: look again (it is named this time).
        if ((err as { code?: string }).code !== '23503' || attempt >= 3) throw err;
      }
    }
  }

  getTarget(name: string): Promise<Target | undefined> {
    return this.oneByName('targets', name, fromTargetRow);
  }

  listTargets(): Promise<Target[]> {
    return this.allByName('targets', fromTargetRow);
  }

  getFleet(name: string): Promise<FleetRecord | undefined> {
    return this.oneByName('fleets', name, fromFleetRow);
  }

  listFleets(): Promise<FleetRecord[]> {
    return this.allByName('fleets', fromFleetRow);
  }

  /** A row of a table keyed by `name` (targets, fleets). */
  private async oneByName<R extends pg.QueryResultRow, T>(
    table: 'targets' | 'fleets',
    name: string,
    from: (row: R) => T,
  ): Promise<T | undefined> {
    const [row] = await this.query<R>(`bosun_get_${table}`, `SELECT * FROM ${table} WHERE name = $1`, [name]);
    return row && from(row);
  }

  /** Every row of a table keyed by `name`, by name. */
  private async allByName<R extends pg.QueryResultRow, T>(
    table: 'targets' | 'fleets',
    from: (row: R) => T,
  ): Promise<T[]> {
    return (await this.query<R>(`bosun_list_${table}`, `SELECT * FROM ${table} ORDER BY name`)).map(from);
  }

  async getRelays(ids: readonly string[]): Promise<Relay[]> {
    if (ids.length === 0) return [];
    const rows = await this.query<RelayRow>(
      'bosun_get_relays',
      'SELECT * FROM relays WHERE id = ANY($1::text[]) ORDER BY id',
      [ids],
    );
    return rows.map(fromRow);
  }

  async relayHeads(fleet: string): Promise<RelayHead[]> {
    return this.query<RelayHead>(
      'bosun_relay_heads',
      'SELECT id, owner, version FROM relays WHERE fleet = $1 AND deleted_at IS NULL ORDER BY id',
      [fleet],
    );
  }

  /** Kept parsed while still the newest (see FleetStateCache): a plan reads one version number. */
  private readonly fleetStates = new FleetStateCache();

  async latestFleetState(fleet: string): Promise<FleetStateRecord | undefined> {
    const [{ version } = { version: 0 }] = await this.query<{ version: number }>(
      'bosun_latest_fleet_version',
      'SELECT COALESCE(MAX(version), 0)::int AS version FROM fleet_states WHERE fleet = $1',
      [fleet],
    );
    const kept = this.fleetStates.get(fleet, version);
    if (kept) return kept;
    const [row] = await this.query<FleetStateRow>(
      'bosun_latest_fleet_state',
      'SELECT * FROM fleet_states WHERE fleet = $1 ORDER BY version DESC LIMIT 1',
      [fleet],
    );
    return row && this.fleetStates.keep(fromFleetStateRow(row));
  }

  private readonly fleetStateLists = new Shapes((mask) => ({
    name: `bosun_list_fleet_states_${mask}`,
    text: numbered(
      `SELECT * FROM fleet_states ${whereOf(['fleet = ?', 'owner = ?', 'version < ?'], mask)} ORDER BY version DESC LIMIT ?`,
    ),
  }));

  async listFleetStates(filter: FleetStateFilter): Promise<FleetStateRecord[]> {
    const { mask, args } = filterShape([filter.fleet, filter.owner, filter.before]);
    const values = [...args, filter.limit];
    const res = await this.run<FleetStateRow>({ ...this.fleetStateLists.get(mask), values });
    return res.rows.map(fromFleetStateRow);
  }

  /**
   * An UPDATE of only the columns that changed, guarded by the rev that was read; prepared once
   * per column set and connection (a handful of shapes in practice).
   */
  private updateQuery(next: RelayRow, previous: RelayRow, expectedRev: number): pg.QueryConfig {
    const changed = changedColumns(next, previous);
    const key = changed.join(',');
    let stmt = this.updates.get(key);
    if (stmt === undefined) {
      // Numbered, not named after the columns: server-side names are cut at 63 bytes.
      stmt = { name: `bosun_update_relay_${this.updates.size}`, text: relayUpdateSql(changed, 1) };
      this.updates.set(key, stmt);
    }
    return { ...stmt, values: [next.id, expectedRev, ...changed.map((c) => next[c])] };
  }

  /**
   * Locks the lease's epoch row for the rest of the transaction (FOR SHARE): a replica taking the
   * lease over bumps the epoch with an UPDATE, which waits for this transaction, or has already
   * committed and this check sees its epoch. Either way no fenced write lands after a takeover.
   */
  private async checkFence(client: pg.PoolClient, fence: Fence): Promise<void> {
    const res = await client.query<{ position: number }>({
      name: 'bosun_check_fence',
      text: fenceSql('$1'),
      values: [leaseEpochKey(fence.lease)],
    });
    if (res.rows[0]?.position !== fence.epoch) throw new FencedError(fence.lease, fence.epoch);
  }

  private async query<R extends pg.QueryResultRow>(
    name: string,
    text: string,
    values: unknown[] = [],
  ): Promise<R[]> {
    return (await this.run<R>({ name, text, values })).rows;
  }

  /**
   * One statement on a pooled connection. A read whose session ended under it (backend
   * terminated, server restarting) is sent once more, on another connection: reading twice is
   * harmless. A write is not: it may have committed before the answer was lost.
   */
  private async run<R extends pg.QueryResultRow>(statement: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(statement);
    } catch (err) {
      if (!READ_ONLY.test(statement.text) || !sessionEnded(err)) throw err;
      return this.pool.query<R>(statement);
    }
  }

  async getRelay(id: string): Promise<Relay | undefined> {
    const [row] = await this.query<RelayRow>('bosun_get_relay', 'SELECT * FROM relays WHERE id = $1', [id]);
    return row && fromRow(row);
  }

  //: ids sort by bytes, as in SQLite, whatever the database's collation.
  private readonly relayLists = new Shapes((mask) => ({
    name: `bosun_list_relays_${mask}`,
    text: numbered(`SELECT * FROM relays ${whereOf(RELAY_FILTERS, mask)} ORDER BY id LIMIT ?`),
  }));

  async listRelays(filter: RelayFilter): Promise<Relay[]> {
    const { mask, args } = relayFilter(filter, (b) => b);
    args.push(filter.limit);
    const res = await this.run<RelayRow>({ ...this.relayLists.get(mask), values: args });
    return res.rows.map(fromRow);
  }

  async relaysNeedingSync(limit: number): Promise<Relay[]> {
    const rows = await this.query<RelayRow>(
      'bosun_needing_sync',
      `SELECT * FROM relays
       WHERE synced_version < version OR sync_status IN ('pending', 'retrying')
       ORDER BY id LIMIT $1`,
      [limit],
    );
    return rows.map(fromRow);
  }

  async relaysDueForRetry(now: number, limit: number): Promise<Relay[]> {
    const rows = await this.query<RelayRow>(
      'bosun_due_retries',
      `SELECT * FROM relays WHERE sync_status = 'retrying' AND next_attempt_at <= $1
       ORDER BY next_attempt_at, id LIMIT $2`,
      [now, limit],
    );
    return rows.map(fromRow);
  }

  async relaysWithExpiredCredentials(now: number, limit: number): Promise<Relay[]> {
    const rows = await this.query<RelayRow>(
      'bosun_expired_credentials',
      `SELECT * FROM relays WHERE expiring_next_at IS NOT NULL AND expiring_next_at <= $1
       ORDER BY expiring_next_at, id LIMIT $2`,
      [now, limit],
    );
    return rows.map(fromRow);
  }

  async relaysUsing(values: { host?: string; schema?: string }): Promise<Relay[]> {
    const rows = await this.query<RelayRow>(
      'bosun_relays_using',
      'SELECT * FROM relays WHERE deleted_at IS NULL AND (host = $1 OR schema = $2) ORDER BY id',
      [values.host ?? null, values.schema ?? null],
    );
    return rows.map(fromRow);
  }

  async countRelaysByStatus(): Promise<Record<SyncStatus, number>> {
    const counts: Record<SyncStatus, number> = { pending: 0, synced: 0, retrying: 0, failed: 0, pull: 0 };
    const rows = await this.query<{ status: SyncStatus; n: number }>(
      'bosun_count_by_status',
      `SELECT ${SHOWN_STATUS} AS status, COUNT(*) AS n FROM relays WHERE deleted_at IS NULL GROUP BY 1`,
    );
    for (const row of rows) counts[row.status] = row.n;
    return counts;
  }

  async relayCounts(): Promise<RelayCount[]> {
    const rows = await this.query<{
      fleet: string;
      status: SyncStatus;
      inactive: boolean;
      deleted: boolean;
      n: number;
      oldest: number;
    }>(
      'bosun_relay_counts',
      `SELECT fleet, ${SHOWN_STATUS} AS status,
              COALESCE((config::jsonb->>'inactive')::boolean, false) AS inactive,
              deleted_at IS NOT NULL AS deleted, COUNT(*) AS n, MIN(updated_at) AS oldest
       FROM relays WHERE deleted_at IS NULL OR sync_status <> 'synced' GROUP BY 1, 2, 3, 4`,
    );
    return rows.map(({ oldest, ...r }) => ({ ...r, oldestChangeAt: oldest }));
  }

  async relaysToVerify(filter: { deletedSince: number; after?: string; limit: number }): Promise<Relay[]> {
    const rows = await this.query<RelayRow>(
      'bosun_relays_to_verify',
      `SELECT * FROM relays
       WHERE id > $1 AND (deleted_at IS NULL OR deleted_at >= $2 OR live_status = 'unexpected')
       ORDER BY id LIMIT $3`,
      [filter.after ?? '', filter.deletedSince, filter.limit],
    );
    return rows.map(fromRow);
  }

  async liveCounts(): Promise<LiveCount[]> {
    return this.query<LiveCount>(
      'bosun_live_counts',
      `SELECT live_status AS status, COALESCE((config::jsonb->>'inactive')::boolean, false) AS inactive,
              deleted_at IS NOT NULL AS deleted, COUNT(*) AS n
       FROM relays WHERE deleted_at IS NULL OR live_status = 'unexpected' GROUP BY 1, 2, 3`,
    );
  }

  private readonly activityLists = new Shapes((mask) => ({
    name: `bosun_activities_after_${mask}`,
    text: numbered(
      `SELECT a.* FROM activities a ${whereOf(['a.id > ?', 'a.relay_id = ?', 'a.owner = ?'], mask)} ORDER BY a.id LIMIT ?`,
    ),
  }));

  async activitiesAfter(filter: ActivityFilter): Promise<Activity[]> {
    const { mask, args } = filterShape([filter.after, filter.relayId, filter.owner]);
    const values = [...args, filter.limit];
    const res = await this.run<ActivityRow>({ ...this.activityLists.get(mask), values });
    return res.rows.map(fromActivityRow);
  }

  async lastActivityId(): Promise<number> {
    const [row] = await this.query<{ id: number }>(
      'bosun_last_activity',
      'SELECT COALESCE(MAX(id), 0)::bigint AS id FROM activities',
    );
    return row?.id ?? 0;
  }

  async insertToken(token: Token, hash: string): Promise<void> {
    await this.query(
      'bosun_insert_token',
      `INSERT INTO tokens (id, hash, name, role, owner, fleet, created_at, expires_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        token.id,
        hash,
        token.name,
        token.role,
        token.owner,
        token.fleet,
        token.createdAt,
        token.expiresAt,
        token.revokedAt,
      ],
    );
  }

  async findTokenByHash(hash: string): Promise<Token | undefined> {
    const [row] = await this.query<TokenRow>('bosun_find_token', 'SELECT * FROM tokens WHERE hash = $1', [
      hash,
    ]);
    return row && fromTokenRow(row);
  }

  async findTokenById(id: string): Promise<Token | undefined> {
    const [row] = await this.query<TokenRow>('bosun_find_token_by_id', 'SELECT * FROM tokens WHERE id = $1', [
      id,
    ]);
    return row && fromTokenRow(row);
  }

  async listTokens(): Promise<Token[]> {
    const rows = await this.query<TokenRow>(
      'bosun_list_tokens',
      'SELECT * FROM tokens ORDER BY created_at, id',
    );
    return rows.map(fromTokenRow);
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    const res = await this.pool.query({
      name: 'bosun_revoke_token',
      text: 'UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
      values: [at, id],
    });
    return res.rowCount === 1;
  }

  async hasTenant(owner: string, now: number): Promise<boolean> {
    const rows = await this.query(
      'bosun_has_tenant',
      `SELECT 1 FROM tokens WHERE role = 'tenant' AND owner = $1 AND revoked_at IS NULL
       AND (expires_at IS NULL OR expires_at > $2) LIMIT 1`,
      [owner, now],
    );
    return rows.length > 0;
  }

  async expireTokens(now: number): Promise<number> {
    const res = await this.pool.query({
      name: 'bosun_expire_tokens',
      text: 'UPDATE tokens SET revoked_at = expires_at WHERE revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1',
      values: [now],
    });
    return res.rowCount ?? 0;
  }

  async pruneActivities(opts: { before: number; maxId: number; limit: number }): Promise<number> {
    const res = await this.pool.query({
      name: 'bosun_prune_activities',
      text: `DELETE FROM activities WHERE id IN (
               SELECT id FROM activities
               WHERE created_at < $1 AND id <= $2 AND id < (SELECT MAX(id) FROM activities)
               ORDER BY id LIMIT $3)`,
      values: [opts.before, opts.maxId, opts.limit],
    });
    return res.rowCount ?? 0;
  }

  async getCursor(name: string): Promise<number> {
    const [row] = await this.query<{ position: number }>(
      'bosun_get_cursor',
      'SELECT position FROM cursors WHERE name = $1',
      [name],
    );
    return row?.position ?? 0;
  }

  async setCursor(name: string, position: number, fence?: Fence): Promise<void> {
    const upsert = 'ON CONFLICT (name) DO UPDATE SET position = excluded.position';
    if (!fence) {
      await this.pool.query({
        name: 'bosun_set_cursor',
        text: `INSERT INTO cursors (name, position) VALUES ($1, $2) ${upsert}`,
        values: [name, position],
      });
      return;
    }
    // One statement (autocommit), in the lock order of every fenced write: the epoch row first. The
    // observers write their cursor after nearly every sync, so this saves BEGIN, COMMIT and a round
    // trip each time over an explicit transaction.
    const [row] = await this.query<{ fence_epoch: number | null }>(
      'bosun_set_cursor_fenced',
      `WITH fence AS MATERIALIZED (${fenceSql('$3')}),
       written AS (INSERT INTO cursors (name, position) SELECT $1, $2 WHERE (SELECT position FROM fence) = $4
                   ${upsert} RETURNING 1)
       SELECT (SELECT position FROM fence) AS fence_epoch`,
      [name, position, leaseEpochKey(fence.lease), fence.epoch],
    );
    if (row?.fence_epoch !== fence.epoch) throw new FencedError(fence.lease, fence.epoch);
  }

  async touchLiveChecks(ids: readonly string[], checkedAt: number, fence?: Fence): Promise<number> {
    if (ids.length === 0) return 0;
    // The rows locked in id order first, as every writer of several relays locks them (commitGroup,
    // commit): a bulk UPDATE locks them in scan order, which could deadlock with a group.
    const touch = `UPDATE relays SET live_checked_at = $2
      WHERE id IN (SELECT id FROM relays WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE)
        AND live_checked_at < $2`;
    if (!fence) {
      const res = await this.pool.query({ name: 'bosun_touch_live', text: touch, values: [ids, checkedAt] });
      return res.rowCount ?? 0;
    }
    // One statement (autocommit), in the lock order of every fenced write: the epoch row first.
    const [row] = await this.query<{ fence_epoch: number | null; touched: number }>(
      'bosun_touch_live_fenced',
      `WITH fence AS MATERIALIZED (${fenceSql('$3')}),
       touched AS (${touch} AND (SELECT position FROM fence) = $4 RETURNING 1)
       SELECT (SELECT position FROM fence) AS fence_epoch, (SELECT count(*) FROM touched)::int AS touched`,
      [ids, checkedAt, leaseEpochKey(fence.lease), fence.epoch],
    );
    if (row?.fence_epoch !== fence.epoch) throw new FencedError(fence.lease, fence.epoch);
    return row.touched;
  }

  async newLeaseEpoch(lease: string): Promise<number> {
    const [row] = await this.query<{ position: number }>('bosun_new_lease_epoch', NEW_LEASE_EPOCH, [
      leaseEpochKey(lease),
    ]);
    return row!.position;
  }

  async sharedSecret(name: string): Promise<string> {
    // Two statements: after a conflict with another process's insert, a fresh snapshot sees it.
    await this.query(
      'bosun_make_shared_secret',
      'INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING',
      [name, randomBytes(32).toString('hex')],
    );
    const [row] = await this.query<{ value: string }>(
      'bosun_shared_secret',
      'SELECT value FROM shared_secrets WHERE name = $1',
      [name],
    );
    return row!.value;
  }

  async spendNonce(nonce: string, expiresAt: number, now: number): Promise<boolean> {
    await this.query('bosun_forget_nonces', 'DELETE FROM spent_nonces WHERE expires_at <= $1', [now]);
    const spent = await this.query(
      'bosun_spend_nonce',
      'INSERT INTO spent_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING RETURNING 1',
      [nonce, expiresAt],
    );
    return spent.length === 1;
  }

  async ping(): Promise<void> {
    await this.run({ text: 'SELECT 1' });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
