import { BosunError } from '../domain/errors.js';
import type { Store } from './port.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

/** Opens the store named by BOSUN_DATABASE_URL (`sqlite:<file>`; `postgres://…` comes later). */
export function openStore(url: string): Store {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (!file) throw new BosunError('invalid_request', 'BOSUN_DATABASE_URL: sqlite: needs a file path');
    return new SqliteStore(file);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    throw new BosunError(
      'invalid_request',
      'BOSUN_DATABASE_URL: PostgreSQL is not supported by this build yet; use sqlite:<file>',
    );
  }
  throw new BosunError(
    'invalid_request',
    `BOSUN_DATABASE_URL: expected sqlite:<file> or postgres://…, got ${JSON.stringify(url.split(':')[0] + ':…')}`,
  );
}
