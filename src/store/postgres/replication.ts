import { defaultReplicaId } from '../lease.js';
import { leaseGauges, type Replication, type ReplicationOptions } from '../replication.js';
import { ChangeFeed } from './change-feed.js';
import { PgAdvisoryLease } from './lease.js';
import type { PostgresStore } from './pg-store.js';

/**
 * Replicas on one PostgreSQL database: the worker lease is an advisory lock plus an epoch, and the
 * change feed (LISTEN/NOTIFY) turns other replicas' commits into in-process notifications.
 */
export async function pgReplication(store: PostgresStore, o: ReplicationOptions): Promise<Replication> {
  const replicaId = o.replicaId ?? defaultReplicaId();
  const show = leaseGauges(o.registry, replicaId);
  const feed = await ChangeFeed.start({
    store,
    notifier: o.notifier,
    logger: o.logger.child({ component: 'change-feed' }),
  });
  const lease = new PgAdvisoryLease({
    store,
    ttlMs: o.ttlMs,
    logger: o.logger.child({ component: 'lease' }),
    replicaId,
    onChange: (isHeld, fence) => show(isHeld, fence?.epoch),
  });
  return { lease, close: () => feed.stop() };
}
