// What code outside src/store/ may know of database URLs, without loading an adapter.
import { parsePostgresUrl } from './postgres/options.js';

export { redactUrl } from './postgres/options.js';

/**
 * Throws (a BosunError naming BOSUN_DATABASE_URL) when a `postgres://` URL cannot be used, e.g. a
 * bad `?schema=`; connects nowhere. `sqlite:` URLs are checked when opened.
 */
export function checkDatabaseUrl(url: string): void {
  if (!url.startsWith('sqlite:')) parsePostgresUrl(url);
}
