import { BosunError } from '../domain/errors.js';
import type { Store } from './port.js';
import { parsePostgresUrl } from './postgres/options.js';
import { PostgresStore } from './postgres/pg-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

export interface OpenStoreOptions {
  /** PostgreSQL: connections in the pool. */
  poolSize?: number;
  /** PostgreSQL: server-side statement_timeout in ms (0 = none). */
  statementTimeoutMs?: number;
}

/**
 * Opens the store named by BOSUN_DATABASE_URL — `sqlite:<file>` or `postgres://…[?schema=<name>]`
 * — and applies pending migrations.
 */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (!file) throw new BosunError('invalid_request', 'BOSUN_DATABASE_URL: sqlite: needs a file path');
    return new SqliteStore(file);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    return PostgresStore.open(parsePostgresUrl(url, opts));
  }
  throw new BosunError(
    'invalid_request',
    `BOSUN_DATABASE_URL: expected sqlite:<file> or postgres://…, got ${JSON.stringify(url.split(':')[0] + ':…')}`,
  );
}
