import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, it } from 'vitest';
import { tempDir } from '../support/env.js';
import { chaosRounds, chaosSeed, runCrashMatrix } from './crash-workload.js';

/**
 * Crash matrix on SQLite: the seeded workload of crash-workload.ts against a `bosun serve` that is
 * SIGKILLed at a random moment, round after round, with two `bosun agent`s following it; the
 * invariants are listed there. On top, after every kill, the file passes `integrity_check`
 * (read-only, as nothing else has it open for writing then).
 *
 * BOSUN_CHAOS_SEED replays a run; BOSUN_CHAOS_ROUNDS sets the number of kill/restart rounds (50).
 * crash-matrix-postgres.test.ts runs the same on PostgreSQL.
 */
const SEED = chaosSeed();
const ROUNDS = chaosRounds();

describe('crash matrix (SQLite)', () => {
  const dir = tempDir('bosun-chaos-');
  afterAll(() => dir.cleanup());

  it(`survives ${ROUNDS} SIGKILL/restart rounds with 0 invariant violations`, async () => {
    const dbFile = join(dir.path, 'bosun.db');
    await runCrashMatrix(
      {
        name: 'SQLite',
        databaseUrl: `sqlite:${dbFile}`,
        // Rowids: max(id)+1, so a rolled-back (or killed) transaction leaves no gap.
        gapFreeActivityIds: true,
        offlineCheck: () => {
          const db = new Database(dbFile, { readonly: true });
          try {
            const result = db.pragma('integrity_check', { simple: true });
            return result === 'ok' ? [] : [`integrity_check: ${String(result)}`];
          } finally {
            db.close();
          }
        },
      },
      { seed: SEED, rounds: ROUNDS, dir: dir.path, file: 'test/chaos/crash-matrix.test.ts' },
    );
  }, 240_000);
});
