import { hostname } from 'node:os';
import type { Fence, Store } from './port.js';

export type LeaseAcquired = (fence: Fence) => Promise<void> | void;
export type LeaseLost = (reason: string) => Promise<void> | void;

/**
 * The worker lease: of all replicas on one database, exactly one at a time holds it and runs the
 * workers (observer, push sync, chores). Every term starts a new epoch (Store.newLeaseEpoch); the
 * workers' writes carry it as a Fence, so a replica that lost the lease can no longer write sync
 * state or the observer cursor once another took over.
 *
 * - `onAcquired` handlers run (in order, awaited) when a term starts; they start the workers.
 * - `onLost` handlers run as soon as a term ends — lease lost, or `stop()` — and must stop the
 *   workers: the PostgreSQL lease gives them a bounded time before it lets the lock go, so they
 *   should abort in-flight work at once, synchronously, before awaiting anything.
 * - `held` is checked synchronously against the term's local deadline: a worker asks it before
 *   starting each unit of work, so even a process that was frozen past its deadline starts nothing.
 */
export interface WorkerLease {
  readonly name: string;
  /** This replica's identity (`BOSUN_REPLICA_ID`, default hostname:pid). */
  readonly replicaId: string;
  readonly held: boolean;
  /** The current (or last) term's fence; null before the first term. */
  readonly fence: Fence | null;
  onAcquired(handler: LeaseAcquired): void;
  onLost(handler: LeaseLost): void;
  /** Tries to acquire once (awaiting the workers' start if it did), then keeps trying in the background. */
  start(): Promise<void>;
  /** Ends the term if held (awaits onLost handlers), releases, and stops trying. Idempotent. */
  stop(): Promise<void>;
  /**
   * Push leased per target: locks that keep one relay's push work to one target's holder at a
   * time (see Peer.createObserver). Absent where one observer does all push work (its work queue
   * alone keeps a relay's syncs one at a time).
   */
  readonly relayLocks?: RelayLocks;
}

/**
 * One lock per relay, across every replica and every target: a sync takes its relay's lock before
 * it sends anything, and gives it back once nothing it sent can still land in zooid. Held on the
 * lease's own session, so a lock ends with the term that took it (a dead replica's at once), as
 * its work does (a lost lease aborts its syncs).
 */
export interface RelayLocks {
  /** The relay's lock, or null while another session holds it; the answer unlocks it. */
  tryLock(relayId: string): Promise<(() => Promise<void>) | null>;
}

export const WORKER_LEASE = 'worker';

/**
 * Push work leased per target (several replicas on PostgreSQL): each target's lease is a
 * WorkerLease of its own, and the replicas spread the targets between them.
 */
export interface PushLeases {
  /** The targets whose lease this replica holds now. */
  held(): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface PushLeasesOptions {
  /** Every push target's name; read at every balancing pass. */
  targets: () => Promise<readonly string[]>;
  /** A target's lease was made (before it is first tried): hook the target's workers to it. */
  onLease: (target: string, lease: WorkerLease) => void;
  onChange?: (target: string, held: boolean) => void;
}

export function defaultReplicaId(): string {
  return `${hostname()}:${process.pid}`;
}

/** Shared handler bookkeeping for lease implementations. */
export abstract class LeaseBase {
  protected readonly acquiredHandlers: LeaseAcquired[] = [];
  protected readonly lostHandlers: LeaseLost[] = [];

  onAcquired(handler: LeaseAcquired): void {
    this.acquiredHandlers.push(handler);
  }

  onLost(handler: LeaseLost): void {
    this.lostHandlers.push(handler);
  }

  protected async runAcquired(fence: Fence): Promise<void> {
    for (const h of this.acquiredHandlers) await h(fence);
  }

  /** Runs every onLost handler at once; a handler that throws does not stop the others. */
  protected runLost(reason: string): Promise<unknown> {
    return Promise.allSettled(this.lostHandlers.map(async (h) => h(reason)));
  }
}

/**
 * The lease of a single-process store (SQLite): the one bosun process holds it from start to stop.
 * It still starts a new epoch per run, so writes of a previous process on the same file are fenced.
 */
export class LocalLease extends LeaseBase implements WorkerLease {
  readonly name: string;
  private term: Fence | null = null;
  private state: 'idle' | 'held' | 'stopped' = 'idle';

  constructor(
    private readonly store: Store,
    readonly replicaId: string = defaultReplicaId(),
    name = WORKER_LEASE,
  ) {
    super();
    this.name = name;
  }

  get held(): boolean {
    return this.state === 'held';
  }

  get fence(): Fence | null {
    return this.term;
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.term = { lease: this.name, epoch: await this.store.newLeaseEpoch(this.name) };
    this.state = 'held';
    await this.runAcquired(this.term);
  }

  async stop(): Promise<void> {
    const wasHeld = this.state === 'held';
    this.state = 'stopped';
    if (wasHeld) await this.runLost('stopping');
  }
}
