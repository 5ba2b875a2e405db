import { defaultReplicaId } from '../lease.js';
import { leaseGauges, type Replication, type ReplicationOptions } from '../replication.js';
import { ChangeFeed } from './change-feed.js';
import { PgAdvisoryLease } from './lease.js';
import type { PostgresStore } from './pg-store.js';
import { TargetLeases } from './target-leases.js';

/**
 * Replicas on one PostgreSQL database: the worker lease is an advisory lock plus an epoch, and the
 * change feed (LISTEN/NOTIFY) turns other replicas' commits into in-process notifications.
 */
export async function pgReplication(store: PostgresStore, options: ReplicationOptions): Promise<Replication> {
  const replicaId = options.replicaId ?? defaultReplicaId();
  const show = leaseGauges(options.registry, replicaId);
  const feed = await ChangeFeed.start({
    store,
    notifier: options.notifier,
    logger: options.logger.child({ component: 'change-feed' }),
  });
  const lease = new PgAdvisoryLease({
    store,
    ttlMs: options.ttlMs,
    logger: options.logger.child({ component: 'lease' }),
    replicaId,
    onChange: (isHeld, fence) => show(isHeld, fence?.epoch),
  });
  return {
    lease,
    pushLeases: (o) =>
      new TargetLeases({
        store,
        ttlMs: options.ttlMs,
        logger: options.logger.child({ component: 'target-leases' }),
        replicaId,
        ...o,
      }),
    close: () => feed.stop(),
  };
}
