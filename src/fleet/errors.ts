import { BosunError } from '../domain/errors.js';

/**
 * The three ways a fleet sync fails (after the seed's SyncAPIErr, SyncErr and SyncInternalErr).
 * Each names what it is about, so the CLI can print it as one line and `--json` as one object.
 */

/** The API (or, for the DB syncer, the Command) refused or failed a request about `resource`. */
export class SyncApiError extends Error {
  override readonly name = 'SyncApiError';
  constructor(
    readonly resource: string,
    override readonly cause: Error & { code?: string; status?: number },
  ) {
    super(`${resource}: ${cause.message}`);
  }
}

/** The fleet's files are wrong: `resource` is a file (with its line when known) or a relay. */
export class SyncError extends Error {
  override readonly name = 'SyncError';
  constructor(
    readonly resource: string,
    readonly description: string,
  ) {
    super(`${resource}: ${description}`);
  }
}

/** Something broke that is neither the files' nor the API's fault (a bug, an I/O failure). */
export class SyncInternalError extends Error {
  override readonly name = 'SyncInternalError';
  constructor(
    readonly description: string,
    override readonly cause?: unknown,
  ) {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    super(`${description}${detail}`);
  }
}

export type AnySyncError = SyncApiError | SyncError | SyncInternalError;

/** API error codes that mean "the fleet's content is wrong" rather than "the request failed". */
const CONTENT_CODES = new Set([
  'invalid_request',
  'invalid_json',
  'id_conflict',
  'host_conflict',
  'schema_conflict',
  'body_too_large',
]);

/**
 * Maps an error answered by bosun (over HTTP: `{code, message, resource}`; in process: a
 * BosunError) to the sync error both syncers report, so the same bad fleet fails the same way.
 */
export function syncErrorFrom(
  e: { code: string; message: string; resource?: string | undefined; status?: number },
  fallbackResource: string,
): SyncApiError | SyncError {
  const resource = e.resource ?? fallbackResource;
  if (CONTENT_CODES.has(e.code)) return new SyncError(resource, e.message);
  const cause = Object.assign(new Error(e.message), { code: e.code, status: e.status });
  return new SyncApiError(resource, cause);
}

/** Whatever a syncer caught, as one of the three sync errors. */
export function toSyncError(err: unknown, fallbackResource: string, doing: string): AnySyncError {
  if (err instanceof SyncApiError || err instanceof SyncError || err instanceof SyncInternalError) return err;
  if (err instanceof BosunError) {
    if (err.code === 'internal') return new SyncInternalError(doing, err);
    return syncErrorFrom(
      { code: err.code, message: err.message, resource: err.resource, status: err.status },
      fallbackResource,
    );
  }
  return new SyncInternalError(doing, err);
}

/** One line for humans: `bosun: <resource>: <what> [code]`. Never carries a stack trace. */
export function formatSyncError(err: AnySyncError): string {
  if (err instanceof SyncApiError) {
    const code = err.cause.code ? ` [${err.cause.code}]` : '';
    return `${err.resource}: ${err.cause.message}${code}`;
  }
  if (err instanceof SyncError) return `${err.resource}: ${err.description}`;
  return `internal error: ${err.message}`;
}

/** The structured form `--json` prints. */
export function syncErrorJson(err: AnySyncError): Record<string, unknown> {
  if (err instanceof SyncApiError) {
    return {
      type: 'sync_api_error',
      resource: err.resource,
      code: err.cause.code ?? null,
      status: err.cause.status ?? null,
      message: err.cause.message,
    };
  }
  if (err instanceof SyncError) {
    return { type: 'sync_error', resource: err.resource, description: err.description };
  }
  return {
    type: 'sync_internal_error',
    description: err.description,
    cause:
      err.cause instanceof Error ? err.cause.message : err.cause === undefined ? null : String(err.cause),
  };
}
