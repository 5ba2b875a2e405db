import pg from 'pg';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PgAdvisoryLease } from '../../../src/store/postgres/lease.js';
import { LOCK_CLASS, parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { useCleanups } from '../../support/cleanups.js';
import { freshSchema, postgresUrl, withPg } from '../../support/postgres.js';

const quiet = { info() {}, warn() {}, debug() {} };
const { defer } = useCleanups();

afterEach(() => {
  vi.restoreAllMocks();
});

type Unlock = () => Promise<void>;

/**
 * Two push-target leases held at once on one schema (two sessions): relay locks are keyed by
 * schema and relay, not by lease, so they contend like the leases of two targets.
 */
async function twoSessions(): Promise<[PgAdvisoryLease, PgAdvisoryLease]> {
  const s = freshSchema();
  defer(s.drop);
  const leases: PgAdvisoryLease[] = [];
  for (const [i, key] of ['41', '42'].entries()) {
    const store = await PostgresStore.open(parsePostgresUrl(s.url, { poolSize: 1 }));
    const lease = new PgAdvisoryLease({
      store,
      ttlMs: 10_000,
      logger: quiet,
      replicaId: `r${i}`,
      name: `push:t${i}`,
      key,
      manual: true,
    });
    defer(async () => {
      await lease.stop();
      await store.close();
    });
    expect(await lease.tryAcquire()).toBe(true);
    leases.push(lease);
  }
  return leases as [PgAdvisoryLease, PgAdvisoryLease];
}

/** How many relay locks the session of `lease` holds, as the server sees them (pg_locks). */
async function relayLocksHeld(lease: PgAdvisoryLease): Promise<number> {
  return withPg(async (c) => {
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks
       WHERE locktype = 'advisory' AND pid = $1 AND classid = $2::bigint::oid AND objsubid = 2 AND granted`,
      [lease.backendPid, LOCK_CLASS.relay],
    );
    return rows[0]!.n;
  });
}

/** The statements sent on `lease`'s session from now on (a wrapped pg.Client#query). */
function sessionStatements(lease: PgAdvisoryLease) {
  const query = pg.Client.prototype.query;
  const sent: string[] = [];
  let failNext: Error | null = null;
  vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (
    this: pg.Client & { processID: number | null },
    ...args: unknown[]
  ) {
    if (this.processID === lease.backendPid) {
      const q = args[0] as string | { text: string };
      sent.push(typeof q === 'string' ? q : q.text);
      if (failNext) {
        const err = failNext;
        failNext = null;
        return Promise.reject(err);
      }
    }
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query);
  return {
    sent,
    failNextWith(err: Error) {
      failNext = err;
    },
  };
}

const ids = (n: number, prefix = 'relay') => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe.skipIf(!postgresUrl)('PostgreSQL relay locks (on the lease session)', () => {
  it('a relay locked by one session is busy for the other until unlocked; then it can be relocked', async () => {
    const [a, b] = await twoSessions();
    const unlockA = await a.relayLocks.tryLock('r1');
    expect(unlockA).toBeTypeOf('function');
    expect(await b.relayLocks.tryLock('r1')).toBeNull();
    // Another relay is free for the other session meanwhile.
    const unlockB2 = await b.relayLocks.tryLock('r2');
    expect(unlockB2).toBeTypeOf('function');
    expect(await a.relayLocks.tryLock('r2')).toBeNull();

    await unlockA!();
    expect(await relayLocksHeld(a)).toBe(0);
    const unlockB1 = await b.relayLocks.tryLock('r1');
    expect(unlockB1).toBeTypeOf('function');
    expect(await a.relayLocks.tryLock('r1')).toBeNull();
    await unlockB1!();
    await unlockB2!();
    expect(await relayLocksHeld(b)).toBe(0);
    // Unlock then relock, by the session that had it and by the other.
    const again = await a.relayLocks.tryLock('r1');
    expect(again).toBeTypeOf('function');
    await again!();
    expect(await b.relayLocks.tryLock('r2')).toBeTypeOf('function');
  });

  it('many locks and unlocks issued together: each caller gets its own answer, and exactly the locks taken are released', async () => {
    const [a, b] = await twoSessions();
    // b holds the odd relays.
    const relays = ids(20);
    const bUnlocks = (await Promise.all(
      relays.filter((_, i) => i % 2).map((r) => b.relayLocks.tryLock(r)),
    )) as Unlock[];
    expect(bUnlocks.every((u) => typeof u === 'function')).toBe(true);
    const got = await Promise.all(relays.map((r) => a.relayLocks.tryLock(r)));
    expect(got.map((u) => u !== null)).toEqual(relays.map((_, i) => i % 2 === 0));
    expect(await relayLocksHeld(a)).toBe(10);
    expect(await relayLocksHeld(b)).toBe(10);

    // b unlocks its relays while a asks for them again, all issued together: whatever the order
    // within the session turn, a's answers are one per call and b ends with nothing held.
    const [, second] = await Promise.all([
      Promise.all(bUnlocks.map((u) => u())),
      Promise.all(relays.filter((_, i) => i % 2).map((r) => a.relayLocks.tryLock(r))),
    ]);
    expect(await relayLocksHeld(b)).toBe(0);
    const aHeld = [...got, ...second].filter((u): u is Unlock => u !== null);
    expect(await relayLocksHeld(a)).toBe(aHeld.length);
    // An unlock and a relock of the same relay by the same session, issued together.
    const [firstUnlock] = aHeld.splice(0, 1);
    const [, relocked] = await Promise.all([firstUnlock!(), a.relayLocks.tryLock('relay-0')]);
    expect(relocked).toBeTypeOf('function');
    aHeld.push(relocked!);
    expect(await relayLocksHeld(a)).toBe(aHeld.length);
    expect(await b.relayLocks.tryLock('relay-0')).toBeNull();
    await Promise.all(aHeld.map((u) => u()));
    expect(await relayLocksHeld(a)).toBe(0);
    // All free for b now.
    const bAll = await Promise.all(relays.map((r) => b.relayLocks.tryLock(r)));
    expect(bAll.every((u) => u !== null)).toBe(true);
  });

  it('a session lock taken twice (same session) needs both unlocks, as PostgreSQL counts them', async () => {
    const [a, b] = await twoSessions();
    const [u1, u2] = await Promise.all([a.relayLocks.tryLock('r'), a.relayLocks.tryLock('r')]);
    expect(u1).toBeTypeOf('function');
    expect(u2).toBeTypeOf('function');
    await u1!();
    expect(await b.relayLocks.tryLock('r')).toBeNull();
    await u2!();
    expect(await b.relayLocks.tryLock('r')).toBeTypeOf('function');
  });

  it('50 locks and then 50 unlocks with 50 more locks, issued together, take one statement each turn', async () => {
    const [a] = await twoSessions();
    const statements = sessionStatements(a);
    const unlocks = (await Promise.all(ids(50).map((r) => a.relayLocks.tryLock(r)))) as Unlock[];
    expect(unlocks.every((u) => typeof u === 'function')).toBe(true);
    expect(await relayLocksHeld(a)).toBe(50);
    const [, more] = await Promise.all([
      Promise.all(unlocks.map((u) => u())),
      Promise.all(ids(50, 'other').map((r) => a.relayLocks.tryLock(r))),
    ]);
    expect(more.every((u) => typeof u === 'function')).toBe(true);
    expect(await relayLocksHeld(a)).toBe(50);
    // One statement for the 50 locks, one for the 50 unlocks and 50 locks (a heartbeat may fall
    // between them: it is the only other statement the session sends).
    const relayStatements = () => statements.sent.filter((q) => q.includes('pg_try_advisory_lock')).length;
    expect(relayStatements()).toBe(2);
    expect(statements.sent.length).toBeLessThanOrEqual(3);
    await Promise.all(more.map((u) => u!()));
    expect(relayStatements()).toBe(3);
    expect(await relayLocksHeld(a)).toBe(0);
  });

  it("relay locks keep their place among the session's own statements", async () => {
    const [a] = await twoSessions();
    const statements = sessionStatements(a);
    // The session's own statement (as a heartbeat): relay locks asked before it go before it,
    // those asked after it go after it, not into the batch still waiting before it.
    const onSession = (
      a as unknown as { onSession(c: unknown, sql: string): Promise<unknown> }
    ).onSession.bind(a);
    const conn = (a as unknown as { conn: unknown }).conn;
    const first = [a.relayLocks.tryLock('x1'), a.relayLocks.tryLock('x2')];
    const beat = onSession(conn, 'SELECT 1 AS beat');
    const after = [a.relayLocks.tryLock('x3')];
    await Promise.all([...first, beat, ...after]);
    expect(statements.sent.length).toBe(3);
    expect(statements.sent[1]).toBe('SELECT 1 AS beat');
  });

  it('a failed statement reaches every caller of its turn; unlocks swallow it; the session goes on', async () => {
    const [a, b] = await twoSessions();
    const held = (await a.relayLocks.tryLock('kept')) as Unlock;
    const statements = sessionStatements(a);
    statements.failNextWith(new Error('boom'));
    const results = await Promise.allSettled([...ids(10).map((r) => a.relayLocks.tryLock(r)), held()]);
    expect(results.slice(0, 10).map((r) => r.status)).toEqual(Array(10).fill('rejected'));
    for (const r of results.slice(0, 10)) expect((r as PromiseRejectedResult).reason.message).toBe('boom');
    expect(results[10]).toEqual({ status: 'fulfilled', value: undefined });
    // The unlock did not reach the server: the lock is still held. The session still works.
    expect(await b.relayLocks.tryLock('kept')).toBeNull();
    expect(await a.relayLocks.tryLock('relay-0')).toBeTypeOf('function');
    expect(a.held).toBe(true);
  });

  it('a lost session: no new locks, its unlocks do nothing, and the server freed its locks for the other', async () => {
    const [a, b] = await twoSessions();
    const unlocks = (await Promise.all(ids(5).map((r) => a.relayLocks.tryLock(r)))) as Unlock[];
    expect(await b.relayLocks.tryLock('relay-0')).toBeNull();
    const pid = a.backendPid;
    await withPg((c) => c.query('SELECT pg_terminate_backend($1)', [pid]));
    await vi.waitFor(() => expect(a.held).toBe(false), { timeout: 3000 });
    expect(await a.relayLocks.tryLock('relay-9')).toBeNull();
    await Promise.all(unlocks.map((u) => u()));
    const bAll = await Promise.all(ids(5).map((r) => b.relayLocks.tryLock(r)));
    expect(bAll.every((u) => u !== null)).toBe(true);
  });
});
