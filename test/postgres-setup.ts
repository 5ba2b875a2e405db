import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A reachable PostgreSQL server for the PostgreSQL tests, or null when there is none. */
    postgresUrl: string | null;
  }
}

/**
 * Probes PostgreSQL once per run (BOSUN_TEST_POSTGRES_URL, default the local server). Unreachable:
 * the PostgreSQL tests skip with ONE line saying so — unless BOSUN_REQUIRE_POSTGRES=1 (CI), which
 * turns the skip into a failure of the whole run.
 */
export default async function setup(project: TestProject) {
  const url = process.env.BOSUN_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  let reason: string | null = null;
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    reason = err instanceof Error ? err.message || err.name : String(err);
  } finally {
    await client.end().catch(() => {});
  }
  const shown = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  if (reason === null) {
    project.provide('postgresUrl', url);
    return;
  }
  if (process.env.BOSUN_REQUIRE_POSTGRES === '1') {
    throw new Error(`BOSUN_REQUIRE_POSTGRES=1 but PostgreSQL at ${shown} is unreachable: ${reason}`);
  }
  console.warn(
    `PostgreSQL tests SKIPPED: no server at ${shown} (${reason}); set BOSUN_TEST_POSTGRES_URL, or BOSUN_REQUIRE_POSTGRES=1 to fail instead`,
  );
  project.provide('postgresUrl', null);
}
