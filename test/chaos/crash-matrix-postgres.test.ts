import { afterAll, describe, it } from 'vitest';
import { tempDir } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { chaosRounds, chaosSeed, runCrashMatrix } from './crash-workload.js';

/**
 * Crash matrix on PostgreSQL: the same seeded workload and invariants as the SQLite one
 * (crash-workload.ts), with bosun on a fresh schema of the test server. Only bosun is SIGKILLed;
 * PostgreSQL rolls back the transactions the killed connections had open, while a single-statement
 * write already sent still runs to its commit (the checks read until the log stands still).
 * Skipped with one line when no server is reachable, unless BOSUN_REQUIRE_POSTGRES=1 (CI), which
 * fails the run instead (test/postgres-setup.ts).
 *
 * Activity ids come from an identity sequence: a transaction that drew ids and then rolled back —
 * which a kill mid-commit does — leaves a gap, so gap-free is not promised here (migrations.ts).
 * What the design promises is ids that increase and become visible in increasing order (appenders
 * serialised by an advisory lock, pg-store.ts): the workload's cursor reader checks exactly that.
 *
 * BOSUN_CHAOS_SEED replays a run; BOSUN_CHAOS_ROUNDS sets the number of kill/restart rounds (50).
 */
const SEED = chaosSeed();
const ROUNDS = chaosRounds();

describe.skipIf(!postgresUrl)('crash matrix (PostgreSQL)', () => {
  const dir = tempDir('bosun-chaos-pg-');
  const schema = postgresUrl ? freshSchema('bosun_chaos') : null;
  afterAll(async () => {
    await schema?.drop();
    dir.cleanup();
  });

  it(`survives ${ROUNDS} SIGKILL/restart rounds with 0 invariant violations`, async () => {
    await runCrashMatrix(
      {
        name: 'PostgreSQL',
        databaseUrl: schema!.url,
        gapFreeActivityIds: false,
        // Requests take longer on PostgreSQL (a fresh pool, a round trip per statement): a longer
        // life per round gives about as many commits between kills as SQLite's 30-330 ms.
        killWindowMs: [50, 650],
        env: {
          // A killed holder's session lock goes with its socket; the restarted bosun polls for it
          // every TTL/10, so 3 s makes the new process take the workers over within ~0.3 s.
          BOSUN_LEASE_TTL_MS: '3000',
        },
      },
      { seed: SEED, rounds: ROUNDS, dir: dir.path, file: 'test/chaos/crash-matrix-postgres.test.ts' },
    );
  }, 240_000);
});
