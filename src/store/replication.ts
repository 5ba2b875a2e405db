import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { Notifier } from '../notifier.js';
import { defaultReplicaId, LocalLease, type WorkerLease } from './lease.js';
import type { Store } from './port.js';
import { ChangeFeed } from './postgres/change-feed.js';
import { PgAdvisoryLease } from './postgres/lease.js';
import { PostgresStore } from './postgres/pg-store.js';

/**
 * What a replica needs to share one database with others: the worker lease (PostgreSQL: advisory
 * lock + epoch; SQLite: held by the one process) and, on PostgreSQL, the change feed that turns
 * other replicas' commits into in-process notifications. The Peer hooks its workers to the lease.
 */
export interface Replication {
  lease: WorkerLease;
  feed: ChangeFeed | null;
  /** Stops the change feed (the lease is stopped with the workers). */
  close(): Promise<void>;
}

export async function startReplication(o: {
  store: Store;
  notifier: Notifier;
  logger: Logger;
  ttlMs: number;
  registry: Registry;
  replicaId?: string;
}): Promise<Replication> {
  const replicaId = o.replicaId ?? defaultReplicaId();
  const held = new Gauge({
    name: 'bosun_worker_lease_held',
    help: 'Whether this replica holds the worker lease and runs the observer, push sync and chores (1) or stands by (0)',
    labelNames: ['replica'] as const,
    registers: [o.registry],
  });
  const epoch = new Gauge({
    name: 'bosun_worker_lease_epoch',
    help: 'Epoch of the worker lease term this replica holds or last held (fences worker writes)',
    registers: [o.registry],
  });
  held.set({ replica: replicaId }, 0);
  const logger = o.logger.child({ component: 'lease' });
  const show = (isHeld: boolean, e: number | undefined) => {
    held.set({ replica: replicaId }, isHeld ? 1 : 0);
    if (e !== undefined) epoch.set(e);
  };

  if (o.store instanceof PostgresStore) {
    const feed = await ChangeFeed.start({
      store: o.store,
      notifier: o.notifier,
      logger: o.logger.child({ component: 'change-feed' }),
    });
    const lease = new PgAdvisoryLease({
      store: o.store,
      ttlMs: o.ttlMs,
      logger,
      replicaId,
      onChange: (isHeld, fence) => show(isHeld, fence?.epoch),
    });
    return { lease, feed, close: () => feed.stop() };
  }
  const lease = new LocalLease(o.store, replicaId);
  lease.onAcquired((fence) => show(true, fence.epoch));
  lease.onLost(() => show(false, undefined));
  return { lease, feed: null, close: async () => {} };
}
