import type { Logger } from 'pino';
import { defaultReplicaId, type PushLeases, type WorkerLease } from '../lease.js';
import type { Fence } from '../port.js';
import { leaseTimings, PgAdvisoryLease } from './lease.js';
import { LOCK_CLASS, schemaKey } from './options.js';
import type { PostgresStore } from './pg-store.js';

/** The lease of one target's push work. */
export const pushLeaseName = (target: string): string => `push:${target}`;

export interface TargetLeasesOptions {
  store: PostgresStore;
  /** As the worker lease's: the longest time from a replica dying to its targets being taken over. */
  ttlMs: number;
  logger: Pick<Logger, 'info' | 'warn' | 'debug'>;
  replicaId?: string;
  /** Every push target's name (the table's targets and `default`); read at every balancing pass. */
  targets: () => Promise<readonly string[]>;
  /** A target's lease was made (before it is first tried): hook its workers to it here. */
  onLease?: (target: string, lease: WorkerLease) => void;
  /** A target's lease was taken (true) or ended (false). */
  onChange?: (target: string, held: boolean, fence: Fence | null) => void;
}

/**
 * Push work leased per target (issue 17): of the replicas on one database, each target's push
 * sync runs on exactly one at a time, and the targets are spread evenly over the live replicas.
 *
 * - Every target has its own lease `push:<target>`: a PgAdvisoryLease (same liveness and fencing as
 *   the worker lease) on the bigint lock `schema key << 32 | n`, where n numbers the lease's name
 *   in the `lease_keys` table, so no two targets share a lock.
 * - Every replica holds the shared presence lock `[replicas, schema key]` on a session of its own:
 *   pg_locks lists the live replicas' presence sessions, and dies with a replica like its leases.
 * - Every poll interval each replica balances: with T targets and N live replicas, the replica of
 *   rank r (its presence session's pid among them) should hold floor(T/N) + (r < T mod N ? 1 : 0)
 *   leases. The quotas sum to T, so while one replica is below quota some lease is free. It
 *   releases leases above its quota (a replica joined: graceful hand-over) and tries free ones up
 *   to it (a replica left or died: takeover at its next pass, within the lease TTL).
 */
export class TargetLeases implements PushLeases {
  readonly replicaId: string;
  private readonly leases = new Map<string, PgAdvisoryLease>();
  private readonly presence: PgAdvisoryLease;
  private readonly pollMs: number;
  private readonly presenceKey: [number, number];
  private timer: NodeJS.Timeout | undefined;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private pass: Promise<void> = Promise.resolve();
  /** The quota this replica computed at its last balancing pass (null: not known yet). */
  quota: number | null = null;

  constructor(private readonly options: TargetLeasesOptions) {
    this.replicaId = options.replicaId ?? defaultReplicaId();
    this.pollMs = leaseTimings(options.ttlMs).pollMs;
    this.presenceKey = [LOCK_CLASS.replicas, schemaKey(options.store.options.schema)];
    this.presence = new PgAdvisoryLease({
      store: options.store,
      ttlMs: options.ttlMs,
      logger: options.logger,
      replicaId: this.replicaId,
      name: 'replicas',
      key: this.presenceKey,
      shared: true,
      appName: 'bosun-replica',
    });
  }

  /** The targets whose lease this replica holds now, by name. */
  held(): string[] {
    return [...this.leases]
      .filter(([, l]) => l.held)
      .map(([t]) => t)
      .sort();
  }

  /** A target's lease (made at the first pass that saw the target). */
  lease(target: string): WorkerLease | undefined {
    return this.leases.get(target);
  }

  /** Joins (presence), runs a first balancing pass, then balances every poll interval. */
  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    await this.presence.start();
    await this.balanceNow();
  }

  /** Stops balancing, gives every held lease up (their workers stop first) and leaves. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    clearTimeout(this.timer);
    await this.pass.catch(() => {});
    await Promise.all([...this.leases.values()].map((l) => l.stop()));
    await this.presence.stop();
  }

  /** One balancing pass now (also what the timer runs); passes never overlap. */
  balanceNow(): Promise<void> {
    const run = async () => {
      if (this.state !== 'running') return;
      try {
        await this.balance();
      } catch (err) {
        this.options.logger.warn({ err }, 'target balancing failed; trying again');
      }
      this.schedule();
    };
    this.pass = this.pass.then(run, run);
    return this.pass;
  }

  private schedule(): void {
    if (this.state !== 'running') return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.balanceNow(), this.pollMs);
    this.timer.unref();
  }

  private async balance(): Promise<void> {
    const targets = [...new Set(await this.options.targets())].sort();
    // A target that is gone (deleted) is no one's work any more.
    for (const [name, lease] of this.leases) {
      if (targets.includes(name)) continue;
      this.leases.delete(name);
      await lease.stop();
    }
    const me = this.presence.held ? this.presence.backendPid : null;
    if (me === null) {
      this.quota = null;
      return;
    }
    const pids = await this.livePids();
    const rank = pids.indexOf(me);
    if (rank < 0) return;
    const n = pids.length;
    const quota = Math.floor(targets.length / n) + (rank < targets.length % n ? 1 : 0);
    this.quota = quota;
    const held = targets.filter((t) => this.leases.get(t)?.held);
    if (held.length > quota) {
      for (const t of held.slice(quota)) await this.leases.get(t)?.release();
      return;
    }
    // Starting at an offset by rank, replicas mostly try different targets first.
    let count = held.length;
    for (let i = 0; i < targets.length && count < quota; i++) {
      const t = targets[(i + rank) % targets.length]!;
      if (this.leases.get(t)?.held) continue;
      const lease = await this.leaseOf(t);
      if (this.state !== 'running') return;
      if (await lease.tryAcquire()) count++;
    }
  }

  /** The backend pids of the live replicas' presence sessions, in order. */
  private async livePids(): Promise<number[]> {
    const [cls, schema] = this.presenceKey;
    const { rows } = await this.options.store.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = $2::bigint::oid
          AND objsubid = 2 AND mode = 'ShareLock' AND granted
        ORDER BY pid`,
      [cls >>> 0, schema >>> 0],
    );
    return rows.map((r) => r.pid);
  }

  private async leaseOf(target: string): Promise<PgAdvisoryLease> {
    const existing = this.leases.get(target);
    if (existing) return existing;
    const name = pushLeaseName(target);
    const n = await this.lockNumber(name);
    const key = ((BigInt(schemaKey(this.options.store.options.schema)) << 32n) | BigInt(n)).toString();
    const lease = new PgAdvisoryLease({
      store: this.options.store,
      ttlMs: this.options.ttlMs,
      logger: this.options.logger,
      replicaId: this.replicaId,
      name,
      key,
      manual: true,
      appName: 'bosun-push',
      onChange: (held, fence) => this.options.onChange?.(target, held, fence),
    });
    this.leases.set(target, lease);
    this.options.onLease?.(target, lease);
    return lease;
  }

  /** The number of a lease name in `lease_keys`, given to it by the first replica that asked. */
  private async lockNumber(name: string): Promise<number> {
    for (;;) {
      // A concurrent first insert by another replica makes this one's insert a no-op whose
      // snapshot cannot see the row yet: the next round does.
      const { rows } = await this.options.store.pool.query<{ key: number }>(
        `WITH added AS (INSERT INTO lease_keys (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING key)
         SELECT key FROM added UNION ALL SELECT key FROM lease_keys WHERE name = $1`,
        [name],
      );
      if (rows[0]) return rows[0].key;
    }
  }
}
