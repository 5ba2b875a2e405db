/**
 * Every error bosun reports to a caller carries a stable machine code, an HTTP status, and a
 * message that names the field or resource. Anything else that escapes is an internal error and
 * is reported without its details (they may hold secrets or stack traces).
 */
export type ErrorCode =
  | 'invalid_request'
  | 'invalid_json'
  | 'body_too_large'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'relay_not_found'
  | 'token_not_found'
  | 'id_conflict'
  | 'host_conflict'
  | 'schema_conflict'
  | 'conflict'
  | 'unsupported_media_type'
  | 'request_timeout'
  | 'uri_too_long'
  | 'headers_too_large'
  | 'too_many_requests'
  | 'unavailable'
  | 'storage_full'
  | 'storage_unavailable'
  | 'internal';

export const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_json: 400,
  body_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  relay_not_found: 404,
  token_not_found: 404,
  id_conflict: 409,
  host_conflict: 409,
  schema_conflict: 409,
  conflict: 409,
  unsupported_media_type: 415,
  request_timeout: 408,
  uri_too_long: 414,
  headers_too_large: 431,
  too_many_requests: 429,
  unavailable: 503,
  // The database's disk is full (nothing was changed; the request works again once space is
  // freed) or its storage fails with I/O errors: src/store/storage-errors.ts.
  storage_full: 503,
  storage_unavailable: 503,
  internal: 500,
};

export class BosunError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly resource: string | undefined;

  constructor(code: ErrorCode, message: string, resource?: string) {
    super(message);
    this.name = 'BosunError';
    this.code = code;
    this.status = STATUS[code];
    this.resource = resource;
  }

  toJSON(): { error: { code: ErrorCode; message: string; resource?: string } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.resource ? { resource: this.resource } : {}),
      },
    };
  }
}

export const invalid = (message: string, resource?: string) =>
  new BosunError('invalid_request', message, resource);

export const relayNotFound = (id: string) =>
  new BosunError('relay_not_found', `relay ${JSON.stringify(id)} not found`, `relay/${id}`);

/** Truncates an error message for storage, as the observer's stored errors are bounded. */
export function truncateError(message: string, max = 120): string {
  const oneLine = message.replace(/\s+/g, ' ').trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}
