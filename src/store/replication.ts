import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { Notifier } from '../notifier.js';
import {
  defaultReplicaId,
  LocalLease,
  type PushLeases,
  type PushLeasesOptions,
  type WorkerLease,
} from './lease.js';
import type { Store } from './port.js';

/**
 * What a replica needs to share one database with others: the worker lease and, where other
 * processes can write, whatever turns their commits into in-process notifications. Each dialect
 * provides its own (src/store/open.ts); the Peer hooks its workers to the lease.
 */
export interface Replication {
  lease: WorkerLease;
  /**
   * Where replicas share the push work per target (PostgreSQL): makes the balancer of this
   * replica's target leases. Absent (SQLite: one process), the worker lease holder pushes to all.
   */
  pushLeases?: (options: PushLeasesOptions) => PushLeases;
  /** Stops what the dialect started for it (the lease is stopped with the workers). */
  close(): Promise<void>;
}

export interface ReplicationOptions {
  notifier: Notifier;
  logger: Logger;
  ttlMs: number;
  registry: Registry;
  replicaId?: string;
}

/** The lease's gauges; returns what shows a change of term on them. */
export function leaseGauges(
  registry: Registry,
  replicaId: string,
): (held: boolean, epoch: number | undefined) => void {
  const held = new Gauge({
    name: 'bosun_worker_lease_held',
    help: 'Whether this replica holds the worker lease and runs the observer, push sync and chores (1) or stands by (0)',
    labelNames: ['replica'] as const,
    registers: [registry],
  });
  const epoch = new Gauge({
    name: 'bosun_worker_lease_epoch',
    help: 'Epoch of the worker lease term this replica holds or last held (fences worker writes)',
    registers: [registry],
  });
  held.set({ replica: replicaId }, 0);
  return (isHeld, e) => {
    held.set({ replica: replicaId }, isHeld ? 1 : 0);
    if (e !== undefined) epoch.set(e);
  };
}

/** One process owns the database (SQLite): the lease is held from start to stop. */
export function localReplication(store: Store, o: ReplicationOptions): Replication {
  const replicaId = o.replicaId ?? defaultReplicaId();
  const show = leaseGauges(o.registry, replicaId);
  const lease = new LocalLease(store, replicaId);
  lease.onAcquired((fence) => show(true, fence.epoch));
  lease.onLost(() => show(false, undefined));
  return { lease, close: async () => {} };
}
