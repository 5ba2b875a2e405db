import { BosunError } from '../domain/errors.js';
import { exposedMode } from '../private-files.js';
import type { Store } from './port.js';
import { parsePostgresUrl } from './postgres/options.js';
import { PostgresStore } from './postgres/pg-store.js';
import { pgReplication } from './postgres/replication.js';
import { localReplication, type Replication, type ReplicationOptions } from './replication.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

export interface OpenStoreOptions {
  /** PostgreSQL: connections in the pool. */
  poolSize?: number;
  /** PostgreSQL: server-side statement_timeout in ms (0 = none). */
  statementTimeoutMs?: number;
  /** Where start-up warnings go (e.g. a database file others can read). */
  warn?: (fields: Record<string, unknown>, msg: string) => void;
}

/** A connection pool's counts, for its gauges. */
export interface PoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

/** What a database's dialect provides. Only this file knows which dialect it is. */
export interface OpenedStore {
  store: Store;
  /** Starts what replicas need to share the database: the worker lease and, if any, the change feed. */
  startReplication(options: ReplicationOptions): Promise<Replication>;
  /** The connection pool, where the dialect has one. */
  pool: PoolStats | null;
}

/**
 * Opens the store named by BOSUN_DATABASE_URL — `sqlite:<file>` or `postgres://…[?schema=<name>]`
 * — and applies pending migrations.
 */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<OpenedStore> {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (!file) throw new BosunError('invalid_request', 'BOSUN_DATABASE_URL: sqlite: needs a file path');
    warnExposed(file, opts.warn);
    const store = new SqliteStore(file);
    return { store, startReplication: async (o) => localReplication(store, o), pool: null };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const store = await PostgresStore.open(parsePostgresUrl(url, opts));
    return { store, startReplication: (o) => pgReplication(store, o), pool: store.pool };
  }
  throw new BosunError(
    'invalid_request',
    `BOSUN_DATABASE_URL: expected sqlite:<file> or postgres://…, got ${JSON.stringify(url.split(':')[0] + ':…')}`,
  );
}

/**
 * bosun creates its files 0600 but leaves an existing file's mode alone (the operator may share it on
 * purpose): it says so at start instead, since the database holds every relay's secret key.
 */
function warnExposed(file: string, warn: OpenStoreOptions['warn']): void {
  if (!warn || file === ':memory:') return;
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    const mode = exposedMode(f);
    if (mode !== undefined) {
      warn(
        { file: f, mode: mode.toString(8), fix: `chmod 600 ${f}` },
        'a file holding secrets is readable by others',
      );
    }
  }
}
