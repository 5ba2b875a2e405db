import { basename, dirname, extname, join } from 'node:path';
import { parsePostgresUrl, redactUrl } from './postgres/options.js';

/**
 * Where a fresh installation writes the admin token it generates: one file per database, so a
 * second installation in the same directory (another SQLite file, PostgreSQL, another `?schema=`)
 * never overwrites the first one's.
 * - `sqlite:<dir>/bosun.db` → `<dir>/admin-token` (the default; the CLI reads ./data/admin-token)
 * - `sqlite:<dir>/<name>.db` → `<dir>/<name>.admin-token`
 * - `postgres://…@<host>:<port>/<db>?schema=<s>` → `data/postgres-<host>-<port>-<db>-<s>.admin-token`
 */
export function adminTokenFile(databaseUrl: string): string {
  if (databaseUrl.startsWith('sqlite:')) {
    const file = databaseUrl.slice('sqlite:'.length);
    const name = basename(file, extname(file));
    return join(dirname(file), name === 'bosun' ? 'admin-token' : `${safe(name)}.admin-token`);
  }
  const u = new URL(databaseUrl);
  const parts = [
    u.hostname.replace(/^\[|\]$/g, '') || 'localhost',
    u.port || '5432',
    decodeURIComponent(u.pathname.slice(1)) || decodeURIComponent(u.username) || 'postgres',
    u.searchParams.get('schema') ?? 'public',
  ];
  return join('data', `postgres-${parts.map(safe).join('-')}.admin-token`);
}

const safe = (part: string) => part.replace(/[^A-Za-z0-9._-]/g, '_');

/** The database URL as logs and messages show it: a PostgreSQL password is masked. */
export function shownDatabaseUrl(databaseUrl: string): string {
  return databaseUrl.startsWith('sqlite:') ? databaseUrl : redactUrl(databaseUrl);
}

/**
 * Checks a `postgres://` URL the way opening it will (a URL, a valid `?schema=`), so configuration
 * can reject it at start; throws a BosunError naming BOSUN_DATABASE_URL.
 */
export function checkPostgresUrl(url: string): void {
  parsePostgresUrl(url);
}
