import { describe, expect, it } from 'vitest';
import { toBosunError } from '../../src/http/errors.js';
import type { Store } from '../../src/store/port.js';
import {
  connectionFailure,
  retryAfterSeconds,
  StorageHealth,
  sessionEnded,
  storageFailure,
  WatchedStore,
} from '../../src/store/storage-errors.js';
import { FakeClock } from '../support/clock.js';
import { captureLogger } from '../support/env.js';

/** A driver error as better-sqlite3 (SqliteError) and pg (DatabaseError) raise them: a `code`. */
const driverError = (code: string, message = 'driver says no') => Object.assign(new Error(message), { code });

describe('storage errors', () => {
  it('classifies disk full and I/O errors of both drivers, nothing else', () => {
    expect(storageFailure(driverError('SQLITE_FULL'))).toEqual({
      code: 'storage_full',
      driverCode: 'SQLITE_FULL',
    });
    expect(storageFailure(driverError('53100'))).toEqual({ code: 'storage_full', driverCode: '53100' });
    for (const code of ['SQLITE_IOERR', 'SQLITE_IOERR_WRITE', 'SQLITE_IOERR_FSYNC', '58030']) {
      expect(storageFailure(driverError(code))).toEqual({ code: 'storage_unavailable', driverCode: code });
    }
    for (const err of [
      driverError('SQLITE_CONSTRAINT_UNIQUE'),
      driverError('SQLITE_BUSY'),
      driverError('23505'),
      driverError('ENOSPC'),
      new Error('plain'),
      undefined,
      null,
      'SQLITE_FULL',
    ]) {
      expect(storageFailure(err)).toBeUndefined();
    }
  });

  it('answers 503 with a clear message and no driver internals', () => {
    const full = toBosunError(driverError('SQLITE_FULL', 'database or disk is full'));
    expect(full.status).toBe(503);
    expect(full.toJSON()).toEqual({
      error: {
        code: 'storage_full',
        message: expect.stringMatching(/disk is full: the change was not saved/),
      },
    });
    const io = toBosunError(driverError('SQLITE_IOERR_WRITE', 'disk I/O error'));
    expect(io.status).toBe(503);
    expect(io.toJSON().error.code).toBe('storage_unavailable');
    expect(JSON.stringify([full.toJSON(), io.toJSON()])).not.toMatch(/SQLITE|database or disk|disk I\/O/);
    expect(toBosunError(driverError('SQLITE_BUSY')).code).toBe('internal');
  });

  it('classifies a lost or refused database connection as storage_unavailable, to retry shortly', () => {
    const ended = [
      driverError('57P01', 'terminating connection due to administrator command'),
      driverError('57P02', 'terminating connection due to crash of another server process'),
      driverError('ECONNRESET', 'read ECONNRESET'),
      new Error('Connection terminated unexpectedly'),
      new Error('Client has encountered a connection error and is not queryable'),
    ];
    const refused = [
      driverError('57P03', 'the database system is starting up'),
      driverError('08006', 'connection failure'),
      driverError('53300', 'sorry, too many clients already'),
      driverError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'),
      new Error('timeout exceeded when trying to connect'),
    ];
    for (const err of [...ended, ...refused]) {
      expect(connectionFailure(err), err.message).toBeDefined();
      const be = toBosunError(err);
      expect(be.status).toBe(503);
      expect(be.toJSON().error).toEqual({
        code: 'storage_unavailable',
        message: expect.stringMatching(/connection to its database failed/),
      });
      expect(retryAfterSeconds(err)).toBe(2);
      // Transient: not a storage condition for /readyz.
      expect(storageFailure(err)).toBeUndefined();
    }
    // Only a session that died under a statement is worth sending a read again on another one.
    expect(ended.every(sessionEnded)).toBe(true);
    expect(refused.some(sessionEnded)).toBe(false);
    for (const err of [
      driverError('57014', 'canceling statement due to statement timeout'),
      driverError('23505'),
      // A code-less text match is pg's own error, never a server error with a code.
      driverError('XX000', 'Connection terminated unexpectedly'),
      new Error('plain'),
      null,
    ]) {
      expect(connectionFailure(err)).toBeUndefined();
    }
    expect(retryAfterSeconds(driverError('SQLITE_FULL'))).toBe(30);
  });

  it('tracks the condition through the store: set by any failure, cleared by the next write', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const { logger, lines } = captureLogger();
    const health = new StorageHealth(clock, logger);
    let full = true;
    const fake = {
      serialCommits: true,
      commit: async () => {
        if (full) throw driverError('SQLITE_FULL', 'database or disk is full');
        return [];
      },
      getRelay: async () => {
        throw driverError('SQLITE_CONSTRAINT_UNIQUE');
      },
      lastActivityId: async () => 7,
    };
    const store = new WatchedStore(fake as unknown as Store, health);
    let recoveries = 0;
    health.onRecovered(() => recoveries++);
    expect(store.serialCommits).toBe(true);
    expect(health.status()).toBe('ok');

    // Other errors pass through untouched and change nothing.
    await expect(store.getRelay('x')).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_UNIQUE' });
    expect(health.status()).toBe('ok');

    await expect(store.commit({ relays: [], activities: [] })).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    await clock.advance(5_000);
    await expect(store.commit({ relays: [], activities: [] })).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(health.status()).toBe(
      'disk full since 2026-01-01T00:00:00.000Z (SQLITE_FULL): changes are refused until space is freed',
    );
    // A read succeeding proves nothing about writes.
    expect(await store.lastActivityId()).toBe(7);
    expect(health.status()).not.toBe('ok');

    full = false;
    await clock.advance(5_000);
    expect(await store.commit({ relays: [], activities: [] })).toEqual([]);
    expect(health.status()).toBe('ok');
    // Listeners hear of the recovery once, not of every later write.
    expect(await store.commit({ relays: [], activities: [] })).toEqual([]);
    expect(recoveries).toBe(1);

    // One line when it starts (however many failures), one when it ends.
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.map((l) => l.msg)).toEqual([
      'database disk full: changes are refused (503 storage_full) until disk space is freed',
      'database storage writable again',
    ]);
    expect(logged[1]).toMatchObject({ code: 'storage_full', driverCode: 'SQLITE_FULL', durationMs: 10_000 });
  });
});

describe('WatchedStore', () => {
  it('counts every port write, by method: a failed target insert marks storage unhealthy', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const { logger } = captureLogger();
    const health = new StorageHealth(clock, logger);
    let full = true;
    let inserted = false;
    const fake = {
      insertTarget: async () => {
        if (full) throw driverError('SQLITE_FULL', 'database or disk is full');
        return inserted;
      },
      revokeToken: async () => false,
    };
    const store = new WatchedStore(fake as unknown as Store, health);
    const target = { name: 'eu' } as never;

    await expect(store.insertTarget(target)).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(health.status()).toMatch(/^disk full since/);
    // Writes that found nothing to write (name taken, token unknown) prove nothing.
    full = false;
    expect(await store.insertTarget(target)).toBe(false);
    expect(await store.revokeToken('t', 1)).toBe(false);
    expect(health.status()).not.toBe('ok');
    inserted = true;
    expect(await store.insertTarget(target)).toBe(true);
    expect(health.status()).toBe('ok');
  });

  it('keeps the retry policy the adapter owns: the wrapper sends neither a read nor a write twice', async () => {
    const health = new StorageHealth(new FakeClock(0), captureLogger().logger);
    const ended = () => driverError('57P01', 'terminating connection due to administrator command');
    const calls = { getRelay: 0, commit: 0 };
    const fake = {
      getRelay: async () => {
        calls.getRelay++;
        throw ended();
      },
      commit: async () => {
        calls.commit++;
        throw ended();
      },
    };
    const store = new WatchedStore(fake as unknown as Store, health);
    expect(sessionEnded(ended())).toBe(true);
    await expect(store.getRelay('x')).rejects.toMatchObject({ code: '57P01' });
    await expect(store.commit({ relays: [], activities: [] })).rejects.toMatchObject({ code: '57P01' });
    expect(calls).toEqual({ getRelay: 1, commit: 1 });
    // A lost session is transient, not the storage failing.
    expect(health.status()).toBe('ok');
  });
});
