import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { Store } from '../../src/store/port.js';

/** The PostgreSQL server probed by test/postgres-setup.ts, or null (the PostgreSQL tests skip). */
export const postgresUrl: string | null = inject('postgresUrl');

/**
 * A fresh schema for one test: the bosun URL selects it with `?schema=`; `drop()` removes it and
 * everything in it (and ends connections still using it, e.g. a SIGKILLed child's).
 */
export function freshSchema(prefix = 'bosun_t'): { url: string; schema: string; drop: () => Promise<void> } {
  if (!postgresUrl) throw new Error('PostgreSQL is not available');
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  const u = new URL(postgresUrl);
  u.searchParams.set('schema', schema);
  return {
    url: u.toString(),
    schema,
    drop: async () => {
      const client = new pg.Client({ connectionString: postgresUrl });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Runs SQL against the test server directly (setup, assertions, fault injection). */
export async function withPg<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresUrl! });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Follows the activity log like the observer: reads `id > cursor` and moves the cursor to the last
 * id it saw, until `writing()` turns false and the log is drained. Resolves with every id seen, in
 * order: an id that became visible after a larger one would be skipped, and missing here.
 */
export async function followActivities(reader: Store, writing: () => boolean): Promise<number[]> {
  const seen: number[] = [];
  let cursor = 0;
  for (;;) {
    const done = !writing();
    const page = await reader.activitiesAfter({ after: cursor, limit: 1000 });
    for (const a of page) {
      seen.push(a.id);
      cursor = a.id;
    }
    if (done && page.length === 0) return seen;
  }
}
