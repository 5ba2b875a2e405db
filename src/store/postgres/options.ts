import { BosunError } from '../../domain/errors.js';

/** How the PostgreSQL adapter connects; parsed from `postgres://…` plus serve configuration. */
export interface PostgresOptions {
  /** The connection string handed to `pg`, without bosun's own query parameters. */
  connectionString: string;
  /** The schema bosun's tables live in (created when missing). Default `public`. */
  schema: string;
  /** Connections in the pool (API requests and workers share it). Default 10. */
  poolSize: number;
  /** Server-side `statement_timeout` for every pooled statement, in ms (0 = none). Default 30000. */
  statementTimeoutMs: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Reads bosun's own parameter out of the URL: `?schema=<name>` puts every table in that schema (one
 * database can hold several bosun installations, and tests isolate themselves this way). Every
 * other parameter (sslmode, application_name, …) is left for `pg`.
 */
export function parsePostgresUrl(
  url: string,
  opts: { poolSize?: number; statementTimeoutMs?: number } = {},
): PostgresOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BosunError('invalid_request', 'BOSUN_DATABASE_URL: not a valid postgres:// URL');
  }
  const schema = parsed.searchParams.get('schema') ?? 'public';
  if (!SCHEMA_NAME.test(schema)) {
    throw new BosunError(
      'invalid_request',
      `BOSUN_DATABASE_URL: schema must match ${SCHEMA_NAME.source}, got ${JSON.stringify(schema)}`,
    );
  }
  parsed.searchParams.delete('schema');
  return {
    connectionString: parsed.toString(),
    schema,
    poolSize: opts.poolSize ?? 10,
    statementTimeoutMs: opts.statementTimeoutMs ?? 30_000,
  };
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.split(':')[0] ?? 'postgres';
  }
}

/** FNV-1a: a stable 32-bit key for a schema, used in advisory lock keys (signed, as PG int4). */
export function schemaKey(schema: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < schema.length; i++) {
    h ^= schema.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/**
 * Advisory lock classes (the first int4 of the two-key form; the second is the schema's key), so
 * bosun installations in different schemas of one database never contend.
 */
export const LOCK_CLASS = {
  migrate: 0x626f7301,
  appendActivities: 0x626f7302,
  workerLease: 0x626f7303,
  /** Held shared by every live replica (its presence), counted by the target balancer. */
  replicas: 0x626f7304,
  /** One relay's push work (src/store/lease.ts, RelayLocks), keyed by schema and relay id. */
  relay: 0x626f7305,
} as const;
