import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { BosunError, type ErrorCode } from '../domain/errors.js';
import {
  connectionFailure,
  retryAfterSeconds,
  storageError,
  storageFailure,
} from '../store/storage-errors.js';

/** Every error leaves as `{"error":{"code","message"}}`; internals are logged, never returned. */
export function toBosunError(err: unknown): BosunError {
  if (err instanceof BosunError) return err;
  const storage = storageError(err);
  if (storage) return storage;
  const fe = err as Partial<FastifyError>;
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BosunError('body_too_large', 'request body is larger than the 1 MiB limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new BosunError('unsupported_media_type', 'send JSON with Content-Type: application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BosunError('invalid_request', 'Content-Length does not match the body');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new BosunError('uri_too_long', 'a path segment of the URL is longer than 100 characters');
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new BosunError('invalid_request', fe.message ?? 'bad request');
  }
  return new BosunError('internal', 'internal error');
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply) {
  const be = toBosunError(err);
  if (be.code === 'internal') request.log.error({ err }, 'request failed');
  if (be.code === 'storage_full' || be.code === 'storage_unavailable') {
    // One line, no stack: the disk or the connection is the problem, not the code.
    const driverCode = storageFailure(err)?.driverCode ?? connectionFailure(err);
    request.log.warn({ code: be.code, driverCode }, 'request refused');
    void reply.header('retry-after', String(retryAfterSeconds(err)));
  }
  void reply.status(be.status).send(be.toJSON());
}

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (too-large headers or URL, garbage,
 * a request that never finished): answered on the socket in bosun's shape, then closed.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const be =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new BosunError('request_timeout', 'the request did not arrive in time')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new BosunError(
            'headers_too_large',
            `the request line and headers are larger than ${maxHeaderSize / 1024} KiB`,
          )
        : new BosunError('invalid_request', 'malformed HTTP request');
  if (socket.writable) {
    const body = JSON.stringify(be.toJSON());
    socket.write(
      `HTTP/1.1 ${be.status} ${STATUS_CODES[be.status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** Refuses a request for now (a limit is reached): the error, with when to try again. */
export function refuseForNow(
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  retryAfterSeconds: number,
): FastifyReply {
  const err = new BosunError(code, message);
  return reply.status(err.status).header('retry-after', String(retryAfterSeconds)).send(err.toJSON());
}
