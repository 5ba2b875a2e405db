import type { Logger } from 'pino';
import type { Clock } from '../domain/clock.js';
import { BosunError } from '../domain/errors.js';
import { DelegatingStore } from './delegating-store.js';
import type { Store } from './port.js';

/**
 * The database's storage failing under bosun: its disk is full (SQLite `SQLITE_FULL`, PostgreSQL
 * SQLSTATE 53100 `disk_full`) or it returns I/O errors (`SQLITE_IOERR*`, SQLSTATE 58030). Both
 * drivers roll the transaction back, so a write refused this way changed nothing; the API answers
 * 503 `storage_full` / `storage_unavailable` instead of an internal error, and the same request
 * works again once the disk is fixed, without a restart.
 */
export interface StorageFailure {
  code: 'storage_full' | 'storage_unavailable';
  /** The driver's code, for logs: `SQLITE_FULL`, `SQLITE_IOERR_WRITE`, `53100`, … */
  driverCode: string;
}

export function storageFailure(err: unknown): StorageFailure | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_FULL' || code === '53100') return { code: 'storage_full', driverCode: code };
  if (code.startsWith('SQLITE_IOERR') || code === '58030') {
    return { code: 'storage_unavailable', driverCode: code };
  }
  return undefined;
}

/**
 * SQLSTATEs of a session the server ended or would not start: class 08 (connection exception),
 * 53300 too_many_connections, 57P01 admin_shutdown (pg_terminate_backend, a fast shutdown), 57P02
 * crash_shutdown, 57P03 cannot_connect_now (starting up, shutting down).
 */
const SQLSTATE_CONNECTION = /^(08[0-9A-Z]{3}|53300|57P0[123])$/;
/** Socket errors reaching the database. */
const ERRNO_CONNECTION = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** `pg`'s own errors for a lost or unobtainable connection carry no code, only these texts. */
const PG_CONNECTION_TEXT =
  /^(Connection terminated|Client has encountered a connection error|Client was closed|timeout exceeded when trying to connect|Query read timeout)/;
/** Of those, the ones that mean an established session died: a fresh connection likely works. */
const SESSION_ENDED =
  /^(57P01|57P02|ECONNRESET|EPIPE|Connection terminated unexpectedly|Client has encountered a connection error)/;

/**
 * The database cannot be reached, or ended the session under bosun (a backend terminated, a
 * server restart, a cut network): transient, unlike a full disk. The statement in flight failed;
 * one that was committing may or may not have committed. Returns the driver's code (SQLSTATE,
 * errno, or pg's message), or undefined for any other error.
 */
export function connectionFailure(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (SQLSTATE_CONNECTION.test(code) || ERRNO_CONNECTION.has(code))) return code;
  if (code === undefined && typeof message === 'string' && PG_CONNECTION_TEXT.test(message)) return message;
  return undefined;
}

/** Whether `err` ended an established session: a read that failed so is worth sending once more. */
export function sessionEnded(err: unknown): boolean {
  return SESSION_ENDED.test(connectionFailure(err) ?? '');
}

/** Seconds a client should wait before retrying after a storage or connection failure. */
export function retryAfterSeconds(err: unknown): number {
  return connectionFailure(err) ? 2 : 30;
}

/** The API error for a storage or connection failure, or undefined for any other error. */
export function storageError(err: unknown): BosunError | undefined {
  if (connectionFailure(err)) {
    return new BosunError(
      'storage_unavailable',
      "bosun's connection to its database failed: the request may not have completed; retry shortly",
    );
  }
  const failure = storageFailure(err);
  if (!failure) return undefined;
  return failure.code === 'storage_full'
    ? new BosunError(
        'storage_full',
        "bosun's database disk is full: the change was not saved; retry once disk space has been freed",
      )
    : new BosunError(
        'storage_unavailable',
        "bosun's database storage is failing (I/O error): the request could not be completed; retry later",
      );
}

/**
 * Whether the database currently refuses writes, for `/readyz` and the logs: set by the first
 * storage failure of any caller (API request, push sync, chore), cleared by the next write that
 * succeeds. One log line when it starts, one when it ends.
 */
export class StorageHealth {
  private failure: (StorageFailure & { since: number }) | undefined;
  private readonly recoveryListeners = new Set<() => void>();

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  observe(err: unknown): void {
    const failure = storageFailure(err);
    if (!failure || this.failure) return;
    this.failure = { ...failure, since: this.clock.now() };
    this.logger.error(
      failure,
      failure.code === 'storage_full'
        ? 'database disk full: changes are refused (503 storage_full) until disk space is freed'
        : 'database storage failing: requests get 503 storage_unavailable until it works again',
    );
  }

  recovered(): void {
    if (!this.failure) return;
    const { code, driverCode, since } = this.failure;
    this.failure = undefined;
    this.logger.info(
      { code, driverCode, durationMs: this.clock.now() - since },
      'database storage writable again',
    );
    for (const listener of this.recoveryListeners) {
      try {
        listener();
      } catch (err) {
        this.logger.error({ err }, 'a storage recovery listener failed');
      }
    }
  }

  /** Calls `listener` each time the storage takes writes again after a failure. */
  onRecovered(listener: () => void): () => void {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }

  /** `ok`, or what is wrong since when (a readiness check's text). */
  status(): string {
    const f = this.failure;
    if (!f) return 'ok';
    const since = new Date(f.since).toISOString();
    return f.code === 'storage_full'
      ? `disk full since ${since} (${f.driverCode}): changes are refused until space is freed`
      : `I/O errors since ${since} (${f.driverCode})`;
  }
}

/**
 * The store, reporting to `health`: every failure is classified, and each successful call that
 * wrote clears the condition (a read succeeding proves nothing about writes). Which calls write is
 * decided per method in DelegatingStore. No retry here: a PostgreSQL read whose session ended is
 * sent once more by the adapter itself, a write never (it may have committed).
 */
export class WatchedStore extends DelegatingStore {
  constructor(
    store: Store,
    private readonly health: StorageHealth,
  ) {
    super(store);
  }

  protected override read<T>(call: () => Promise<T>): Promise<T> {
    return this.watched(call, () => false);
  }

  protected override write<T>(call: () => Promise<T>, wrote: (result: T) => boolean): Promise<T> {
    return this.watched(call, wrote);
  }

  private async watched<T>(call: () => Promise<T>, wrote: (result: T) => boolean): Promise<T> {
    let result: T;
    try {
      result = await call();
    } catch (err) {
      this.health.observe(err);
      throw err;
    }
    if (wrote(result)) this.health.recovered();
    return result;
  }
}
