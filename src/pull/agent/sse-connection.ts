/**
 * One request to the autoconfig stream: yields its SSE events (framed by eventsource-parser) or
 * throws a StreamFailure saying why the connection ended (docs/stream-protocol.md §1, §2). Bytes are
 * read only when the consumer asks for the next event, so a slow handler holds the stream back.
 * The read timeout runs on the injected clock and counts only time spent waiting for bytes.
 */
import { createParser } from 'eventsource-parser';
import type { Clock, TimerHandle } from '../../domain/clock.js';

export type SseItem =
  | { type: 'event'; event: string | undefined; data: string }
  | { type: 'retry'; ms: number };

/**
 * - `http`: a non-200 status; `network`: connect/transport error; `tls`: certificate error;
 * - `timeout`: no byte for the read timeout; `eof`: the server closed the stream;
 * - `not_sse`: a 200 that is not text/event-stream; `malformed`: a bad event;
 * - `callback`: a handler callback threw; `refused`: a refused patch; `reconnects`: too many
 *   `reconnect` events; `aborted`: close(); `internal`: an unexpected error in the client.
 */
export type FailureKind =
  | 'http'
  | 'network'
  | 'tls'
  | 'timeout'
  | 'eof'
  | 'not_sse'
  | 'malformed'
  | 'callback'
  | 'refused'
  | 'reconnects'
  | 'aborted'
  | 'internal';

export class StreamFailure extends Error {
  readonly kind: FailureKind;
  readonly status: number | undefined;
  /** Raw Retry-After header of the response, if any. */
  readonly retryAfter: string | undefined;

  constructor(
    kind: FailureKind,
    message: string,
    opts: { status?: number; retryAfter?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'StreamFailure';
    this.kind = kind;
    this.status = opts.status;
    this.retryAfter = opts.retryAfter;
  }
}

export interface SseRequest {
  url: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  clock: Clock;
  /** Aborting ends the request at once (close()). */
  signal: AbortSignal;
  readTimeoutMs: number;
  /** Upper bound on an event being assembled, in characters. */
  maxEventChars?: number;
}

const DEFAULT_MAX_EVENT_CHARS = 64 * 1024 * 1024;
const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME_MISMATCH/;

/** Whether an error (or one of its causes) is a TLS certificate failure. */
export function isCertificateError(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CERT_ERROR.test(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Kinds whose cause is the transport's or the server's own words (never event data). */
const CAUSED: ReadonlySet<FailureKind> = new Set(['http', 'network', 'tls', 'timeout', 'eof', 'not_sse']);

/**
 * Why a connection failed, in words an operator can act on: `HTTP 502`, or the innermost error of
 * fetch's cause chain (`connect ECONNREFUSED 127.0.0.1:8080`, `getaddrinfo ENOTFOUND bosun.example`,
 * `DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate`) — fetch itself only says `fetch failed`.
 */
export function failureCause(f: StreamFailure): string | undefined {
  if (!CAUSED.has(f.kind)) return undefined;
  if (f.kind === 'http' && f.status !== undefined) return `HTTP ${f.status}`;
  let inner: unknown = f;
  for (let e = f.cause, depth = 0; e && depth < 5; depth++) {
    inner = e;
    e = (e as { cause?: unknown }).cause;
  }
  const err = inner as { message?: unknown; code?: unknown; errors?: unknown };
  let msg = typeof err.message === 'string' ? err.message : '';
  // Connecting to every address of a name fails as an AggregateError with an empty message.
  if (!msg && Array.isArray(err.errors) && typeof err.errors[0]?.message === 'string')
    msg = err.errors[0].message;
  const code = typeof err.code === 'string' ? err.code : undefined;
  if (code && !msg.includes(code)) msg = msg ? `${code}: ${msg}` : code;
  return (msg || f.message).slice(0, 300);
}

function isEventStream(contentType: string | null): boolean {
  return contentType?.split(';')[0]?.trim().toLowerCase() === 'text/event-stream';
}

export async function* openSse(req: SseRequest): AsyncGenerator<SseItem, never, undefined> {
  const local = new AbortController();
  const onOuterAbort = () => local.abort(req.signal.reason);
  if (req.signal.aborted) local.abort(req.signal.reason);
  else req.signal.addEventListener('abort', onOuterAbort, { once: true });

  let timer: TimerHandle | undefined;
  let timedOut = false;
  const disarm = () => {
    if (timer) req.clock.clearTimeout(timer);
    timer = undefined;
  };
  const arm = () => {
    disarm();
    timer = req.clock.setTimeout(() => {
      timer = undefined;
      timedOut = true;
      local.abort(new StreamFailure('timeout', `no data for ${req.readTimeoutMs} ms`));
    }, req.readTimeoutMs);
  };
  const interrupted = (err: unknown): StreamFailure => {
    if (timedOut) return new StreamFailure('timeout', `no data for ${req.readTimeoutMs} ms`);
    if (req.signal.aborted) return new StreamFailure('aborted', 'closed');
    if (err instanceof StreamFailure) return err;
    if (isCertificateError(err)) return new StreamFailure('tls', 'TLS certificate error', { cause: err });
    return new StreamFailure('network', err instanceof Error ? err.message : 'network error', { cause: err });
  };

  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const cancelReader = () => {
    reader?.cancel().catch(() => {});
  };
  try {
    arm();
    let res: Response;
    try {
      res = await req.fetch(req.url, {
        method: 'GET',
        headers: req.headers,
        redirect: 'manual',
        signal: local.signal,
      });
    } catch (err) {
      throw interrupted(err);
    } finally {
      disarm();
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new StreamFailure('http', `HTTP ${res.status}`, {
        status: res.status,
        ...(res.headers.get('retry-after') !== null ? { retryAfter: res.headers.get('retry-after')! } : {}),
      });
    }
    if (!isEventStream(res.headers.get('content-type')) || !res.body) {
      await res.body?.cancel().catch(() => {});
      throw new StreamFailure('not_sse', 'the response is not text/event-stream', { status: 200 });
    }

    reader = res.body.getReader();
    // Some fetch implementations do not tie the body to the signal; cancel the read ourselves.
    local.signal.addEventListener('abort', cancelReader, { once: true });

    const decoder = new TextDecoder('utf-8');
    const queue: SseItem[] = [];
    let overflow = false;
    const parser = createParser({
      onEvent: (m) => queue.push({ type: 'event', event: m.event, data: m.data }),
      onRetry: (ms) => queue.push({ type: 'retry', ms }),
      // Unknown fields, `id:` and unparseable `retry:` values are ignored (§2).
      onError: (err) => {
        if (err.type === 'max-buffer-size-exceeded') overflow = true;
      },
      maxBufferSize: req.maxEventChars ?? DEFAULT_MAX_EVENT_CHARS,
    });

    for (;;) {
      for (let i = 0; i < queue.length; i++) yield queue[i]!;
      queue.length = 0;
      if (overflow) throw new StreamFailure('malformed', 'event too large');
      arm();
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw interrupted(err);
      } finally {
        disarm();
      }
      if (local.signal.aborted) throw interrupted(local.signal.reason);
      if (chunk.done) throw new StreamFailure('eof', 'the server closed the stream');
      parser.feed(decoder.decode(chunk.value, { stream: true }));
    }
  } finally {
    disarm();
    req.signal.removeEventListener('abort', onOuterAbort);
    local.signal.removeEventListener('abort', cancelReader);
    local.abort();
    cancelReader();
  }
}
