import pg from 'pg';
import type { Logger } from 'pino';
import { defaultReplicaId, LeaseBase, type RelayLocks, WORKER_LEASE, type WorkerLease } from '../lease.js';
import { type Fence, leaseEpochKey } from '../port.js';
import { LOCK_CLASS, schemaKey } from './options.js';
import { NEW_LEASE_EPOCH, type PostgresStore } from './pg-store.js';

export interface PgLeaseOptions {
  store: PostgresStore;
  /** Longest time from the holder dying (SIGKILL, network cut, freeze) to another replica taking over. */
  ttlMs: number;
  logger: Pick<Logger, 'info' | 'warn' | 'debug'>;
  replicaId?: string;
  name?: string;
  onChange?: (held: boolean, fence: Fence | null) => void;
  /**
   * The advisory lock: the two-int4 form `[class, schema]` (default: the worker lease's), or one
   * bigint (as a decimal string: the per-target push leases, src/store/postgres/target-leases.ts).
   * The two forms are separate key spaces in PostgreSQL, so a bigint key never meets a lock class.
   */
  key?: [number, number] | string;
  /** A shared lock (every replica holds it at once: presence); no epoch is started for it. */
  shared?: boolean;
  /**
   * No background polling: acquisitions are only tried by `tryAcquire()`, and a lost term is not
   * retried on its own (the target balancer decides which leases this replica should hold).
   */
  manual?: boolean;
  /** The lock session's application_name prefix (default `bosun-lease`). */
  appName?: string;
}

/** Timings derived from the TTL (see PgAdvisoryLease). */
export function leaseTimings(ttlMs: number) {
  const pollMs = Math.round(Math.min(1000, Math.max(50, ttlMs / 10)));
  return {
    pollMs,
    beatMs: Math.round(ttlMs / 6),
    giveUpMs: Math.round(ttlMs / 2),
    idleSessionTimeoutMs: ttlMs - pollMs,
  };
}

/**
 * The relay locks and unlocks (RelayLocks) waiting for one turn of a lease's lock session, sent
 * together as ONE statement (RELAY_LOCK_BATCH_SQL) instead of one round trip each.
 *
 * Invariant: the session runs its statements one at a time, in the order they were asked for
 * (onSession), and a batch is one of them. A relay lock or unlock joins the batch still waiting
 * for its turn, if any and if it is for the same connection; otherwise it opens a new batch at the
 * end of the queue. Any other statement of the session (lease lock, epoch, heartbeat, lease
 * unlock) closes the waiting batch to newcomers, and a batch closes when its turn comes. So every
 * request runs after everything asked for before it on the session, and before everything after
 * it, as when each was a statement of its own: only neighbouring relay requests are merged, and
 * within the statement they run in the order they were asked for (WITH ORDINALITY, answers matched
 * by position). Each caller gets its own answer (the lock taken or not; the unlock's result); a
 * failed statement rejects every caller of the batch (a tryLock throws, an unlock is swallowed as
 * before); a lost session fails its pending batch like any statement of it, and the session's end
 * frees its locks on the server.
 */
interface RelayLockBatch {
  conn: pg.Client;
  /** The relays' lock keys (second int4; the class is LOCK_CLASS.relay), in request order. */
  keys: number[];
  /** Per request: an unlock (true) or a try-lock (false). */
  unlocks: boolean[];
  waiters: { resolve: (ok: boolean) => void; reject: (err: unknown) => void }[];
}

/**
 * A batch of relay locks and unlocks, row by row in array order: $1 the class, $2 the keys,
 * $3 which are unlocks. `i` is the request's position (1-based), `ok` its function's result.
 */
const RELAY_LOCK_BATCH_SQL = `SELECT t.i, CASE WHEN t.u THEN pg_advisory_unlock($1::int, t.k)
  ELSE pg_try_advisory_lock($1::int, t.k) END AS ok
  FROM unnest($2::int[], $3::bool[]) WITH ORDINALITY AS t(k, u, i)`;

/**
 * The worker lease on PostgreSQL: a session-level advisory lock held on a dedicated connection
 * (not from the pool), plus a fencing epoch bumped in the database by every new holder.
 *
 * Liveness, with T = ttlMs and P = poll interval (≤ T/10, ≤ 1 s):
 * - standbys try `pg_try_advisory_lock` every P;
 * - a holder that dies with its socket (SIGKILL, crash) frees the lock at once: takeover ≤ P;
 * - a holder that goes silent (network cut, frozen process) is disconnected by the server's
 *   `idle_session_timeout` = T − P, set on the lock connection: takeover ≤ T. (No TCP keepalive
 *   tuning needed: the server side times out on its own clock.)
 *
 * Safety (no two replicas working at once): the holder heartbeats (`SELECT 1`) every T/6 and
 * gives up at its own deadline — T/2 after the start of its last successful heartbeat — or at the
 * first failed one. The server cannot free the lock earlier than T − P after the end of that
 * heartbeat, so the holder stops its workers at least T/2 − P (≥ 0.4·T) before anyone else can
 * start. On top, every worker write is fenced by epoch in the database, and `held` is checked
 * against the deadline before each sync, so a process frozen past its deadline starts nothing
 * and writes nothing when it wakes.
 *
 * Requires a direct session (not a transaction-pooling proxy), as advisory session locks do.
 */
export class PgAdvisoryLease extends LeaseBase implements WorkerLease {
  readonly name: string;
  readonly replicaId: string;
  readonly timings: ReturnType<typeof leaseTimings>;
  private readonly keyArgs: (number | string)[];
  private readonly lockSql: string;
  private readonly unlockSql: string;
  private conn: pg.Client | null = null;
  private state: 'idle' | 'standby' | 'held' | 'stopped' = 'idle';
  private term: Fence | null = null;
  private deadline = 0;
  /** A held term being given up (release): `held` is false, the session still heartbeats. */
  private releasing = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  /** The lock session's queries, one at a time (onSession). */
  private sessionQueries: Promise<unknown> = Promise.resolve();
  /** The relay locks and unlocks waiting for the session's next turn, open to more (RelayLockBatch). */
  private relayBatch: RelayLockBatch | null = null;
  /** Acquisitions, releases and stop run one at a time. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly options: PgLeaseOptions) {
    super();
    this.name = options.name ?? WORKER_LEASE;
    this.replicaId = options.replicaId ?? defaultReplicaId();
    this.timings = leaseTimings(options.ttlMs);
    const key = options.key ?? [LOCK_CLASS.workerLease, schemaKey(options.store.options.schema)];
    this.keyArgs = typeof key === 'string' ? [key] : key;
    const args = typeof key === 'string' ? '$1::bigint' : '$1::int, $2::int';
    const mode = options.shared ? '_shared' : '';
    this.lockSql = `SELECT pg_try_advisory_lock${mode}(${args}) AS ok`;
    this.unlockSql = `SELECT pg_advisory_unlock${mode}(${args})`;
  }

  /** How logs name it: `worker lease`, or `lease push:<target>`. */
  private get label(): string {
    return this.name === WORKER_LEASE ? 'worker lease' : `lease ${this.name}`;
  }

  readonly relayLocks: RelayLocks = {
    tryLock: async (relayId) => {
      const conn = this.conn;
      if (!this.held || !conn) return null;
      // Every schema shares the class: ids hashed with their schema, a collision only serializes.
      const key = schemaKey(`${this.options.store.options.schema}\0${relayId}`);
      if (!(await this.relayLockTurn(conn, key, false))) return null;
      // Unlocked on the session that locked it: a session since replaced took its locks with it.
      return async () => {
        if (this.conn === conn) await this.relayLockTurn(conn, key, true).catch(() => {});
      };
    },
  };

  /** The lock session's backend pid (as pg_locks shows it); null without a session. */
  get backendPid(): number | null {
    return (this.conn as (pg.Client & { processID: number | null }) | null)?.processID ?? null;
  }

  /** Manual mode: one attempt to take the lease (awaiting the workers' start); whether it is held. */
  async tryAcquire(): Promise<boolean> {
    if (this.state === 'idle') this.state = 'standby';
    await this.serial(() => this.poll());
    return this.held;
  }

  /**
   * Gives a held lease up on purpose (rebalancing), keeping the replica a standby: the onLost
   * handlers run (reason `released`) and are awaited, then the lock is unlocked so another replica
   * can take it at its next attempt. In manual mode nothing retakes it until `tryAcquire()`.
   */
  async release(): Promise<void> {
    if (this.state !== 'held' || this.releasing) return;
    // The workers drain first while the session keeps heartbeating: the lock is not freed (by the
    // server's idle timeout) before they are done. A failed heartbeat meanwhile is a loss as usual
    // (lose(): in-flight work aborted, the lock let go after the safety margin).
    this.releasing = true;
    this.options.onChange?.(false, this.term);
    await this.runLost('released');
    if (this.state !== 'held') return;
    this.state = 'standby';
    this.releasing = false;
    this.clearTimers();
    await this.serial(async () => {
      if (this.state === 'held') return;
      if (this.conn)
        await this.onSession(this.conn, this.unlockSql, this.keyArgs).catch(() => this.dropConnection());
    });
    this.options.logger.info({ replica: this.replicaId }, `${this.label} released for rebalancing`);
    this.schedulePoll();
  }

  get held(): boolean {
    return this.state === 'held' && !this.releasing && performance.now() < this.deadline;
  }

  get fence(): Fence | null {
    return this.term;
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'standby';
    if (this.options.manual) return;
    await this.serial(() => this.poll());
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    const wasHeld = this.state === 'held';
    this.state = 'stopped';
    this.clearTimers();
    if (wasHeld) {
      this.options.onChange?.(false, this.term);
      await this.runLost('stopping');
    }
    await this.serial(async () => {
      // Unlock explicitly (a graceful hand-over is then immediate), then close the session.
      if (wasHeld && this.conn) {
        await this.onSession(this.conn, this.unlockSql, this.keyArgs).catch(() => {});
      }
      await this.dropConnection();
    });
    if (wasHeld)
      this.options.logger.info(
        { replica: this.replicaId, epoch: this.term?.epoch },
        `${this.label} released`,
      );
  }

  /**
   * A query on the lock session, after the ones before it: the session's own (lock, heartbeat) and
   * the relay locks of many workers share it, and pg deprecates overlapping queries on one client.
   */
  private onSession<T extends pg.QueryResultRow = pg.QueryResultRow>(
    conn: pg.Client,
    sql: string,
    args: unknown[] = [],
  ): Promise<pg.QueryResult<T>> {
    // Relay locks asked for after this statement go after it: the waiting batch takes no more.
    this.relayBatch = null;
    return this.sessionTurn(() => conn.query<T>(sql, args));
  }

  /** Runs `step` on the lock session once every statement queued before it has settled. */
  private sessionTurn<T>(step: () => Promise<T>): Promise<T> {
    const next = this.sessionQueries.then(step);
    this.sessionQueries = next.catch(() => {});
    return next;
  }

  /**
   * One relay lock (`unlock` false: pg_try_advisory_lock, whether it was taken) or unlock
   * (pg_advisory_unlock, whether it was held) on the lock session, in the batch waiting for the
   * session's next turn (RelayLockBatch): one statement for every relay lock and unlock asked for
   * meanwhile, instead of one round trip each.
   */
  private relayLockTurn(conn: pg.Client, key: number, unlock: boolean): Promise<boolean> {
    let batch = this.relayBatch;
    if (!batch || batch.conn !== conn) {
      const opened: RelayLockBatch = { conn, keys: [], unlocks: [], waiters: [] };
      batch = this.relayBatch = opened;
      void this.sessionTurn(() => this.sendRelayBatch(opened)).catch(() => {});
    }
    const b = batch;
    return new Promise<boolean>((resolve, reject) => {
      b.keys.push(key);
      b.unlocks.push(unlock);
      b.waiters.push({ resolve, reject });
    });
  }

  /** A batch's turn: closed to new requests, sent as one statement, each waiter answered. */
  private async sendRelayBatch(batch: RelayLockBatch): Promise<void> {
    if (this.relayBatch === batch) this.relayBatch = null;
    let rows: { i: string; ok: boolean }[];
    try {
      ({ rows } = await batch.conn.query<{ i: string; ok: boolean }>(RELAY_LOCK_BATCH_SQL, [
        LOCK_CLASS.relay,
        batch.keys,
        batch.unlocks,
      ]));
    } catch (err) {
      for (const w of batch.waiters) w.reject(err);
      return;
    }
    const ok: boolean[] = new Array(batch.waiters.length).fill(false);
    for (const r of rows) ok[Number(r.i) - 1] = r.ok === true;
    for (const [i, w] of batch.waiters.entries()) w.resolve(ok[i]!);
  }

  private serial(step: () => Promise<void>): Promise<void> {
    const next = this.chain.then(step, step);
    this.chain = next.catch(() => {});
    return next;
  }

  private async connection(): Promise<pg.Client> {
    if (this.conn) return this.conn;
    const client = new pg.Client({
      ...this.options.store.clientConfig({ idleSessionTimeoutMs: this.timings.idleSessionTimeoutMs }),
      application_name: `${this.options.appName ?? 'bosun-lease'}:${this.replicaId}`.slice(0, 63),
      connectionTimeoutMillis: Math.max(1000, this.timings.giveUpMs),
      query_timeout: this.timings.giveUpMs,
    });
    client.on('error', (err) => {
      if (this.conn !== client) return;
      this.conn = null;
      client.end().catch(() => {});
      if (this.state === 'held') this.lose(`lease connection failed: ${err.message}`);
    });
    this.conn = client;
    try {
      await client.connect();
    } catch (err) {
      if (this.conn === client) this.conn = null;
      throw err;
    }
    return client;
  }

  private async dropConnection(): Promise<void> {
    const c = this.conn;
    this.conn = null;
    // end() waits for the server's goodbye; a cut network would make it hang, so don't wait long.
    if (c) await Promise.race([c.end().catch(() => {}), delay(1000)]);
  }

  /** One attempt to take the lease; schedules the next one unless it succeeded. */
  private async poll(): Promise<void> {
    if (this.state !== 'standby') return;
    try {
      const conn = await this.connection();
      const started = performance.now();
      const { rows } = await this.onSession<{ ok: boolean }>(conn, this.lockSql, this.keyArgs);
      if (rows[0]?.ok) {
        // Bumped on the lock's own session: no other replica can be between lock and epoch. A
        // shared lock (presence) fences nothing and starts no epoch.
        const epoch = this.options.shared
          ? 0
          : (await this.onSession<{ position: number }>(conn, NEW_LEASE_EPOCH, [leaseEpochKey(this.name)]))
              .rows[0]!.position;
        if (this.state !== 'standby') return;
        this.term = { lease: this.name, epoch };
        this.state = 'held';
        this.releasing = false;
        this.extend(started);
        this.scheduleBeat();
        this.options.logger.info(
          { replica: this.replicaId, epoch: this.term.epoch },
          `${this.label} acquired`,
        );
        this.options.onChange?.(true, this.term);
        try {
          await this.runAcquired(this.term);
        } catch (err) {
          this.options.logger.warn({ err }, 'workers failed to start; giving the lease up');
          this.lose('workers failed to start');
        }
        return;
      }
    } catch (err) {
      this.options.logger.debug({ err }, 'worker lease attempt failed');
      await this.dropConnection();
    }
    this.schedulePoll();
  }

  private schedulePoll(): void {
    if (this.state !== 'standby' || this.options.manual) return;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => void this.serial(() => this.poll()), this.timings.pollMs);
    this.pollTimer.unref();
  }

  /** A heartbeat that started at `at` succeeded: the term lasts until at + giveUp. */
  private extend(at: number): void {
    this.deadline = at + this.timings.giveUpMs;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(
      () => this.lose('lease deadline passed without a heartbeat'),
      Math.max(0, this.deadline - performance.now()),
    );
    this.watchdog.unref();
  }

  private scheduleBeat(): void {
    clearTimeout(this.beatTimer);
    this.beatTimer = setTimeout(() => void this.beat(), this.timings.beatMs);
    this.beatTimer.unref();
  }

  private async beat(): Promise<void> {
    const conn = this.conn;
    if (this.state !== 'held' || !conn) return;
    const started = performance.now();
    try {
      await this.onSession(conn, 'SELECT 1');
    } catch (err) {
      if (this.state === 'held') this.lose(`heartbeat failed: ${(err as Error).message}`);
      return;
    }
    if (this.state !== 'held' || this.conn !== conn) return;
    this.extend(started);
    this.scheduleBeat();
  }

  /**
   * Ends the term now: `held` turns false at once and the onLost handlers start (they abort
   * in-flight work synchronously); the lock is let go after they finished, or after the safety
   * margin at the latest, and the replica goes back to standby.
   */
  private lose(reason: string): void {
    if (this.state !== 'held') return;
    this.state = 'standby';
    this.releasing = false;
    this.clearTimers();
    this.options.logger.warn(
      { replica: this.replicaId, epoch: this.term?.epoch, reason },
      `${this.label} lost`,
    );
    this.options.onChange?.(false, this.term);
    const stopped = this.runLost(reason);
    const margin = Math.max(0, this.timings.idleSessionTimeoutMs - this.timings.giveUpMs);
    void this.serial(async () => {
      await Promise.race([stopped, delay(margin)]);
      await this.dropConnection();
    }).then(() => this.schedulePoll());
  }

  private clearTimers(): void {
    clearTimeout(this.pollTimer);
    clearTimeout(this.beatTimer);
    clearTimeout(this.watchdog);
  }
}

const delay = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });
