/**
 * How the zooid client's requests reach zooid: one undici `Pool` per API origin, whose keep-alive
 * connections are reused across syncs. `fetch` cost about a quarter of the main thread under load
 * (WHATWG streams, Request/Response/Headers objects per call); `pool.request` does the same HTTP/1.1
 * exchange with none of them. Like bosun's `fetch` before it, the pool follows no redirect (there is
 * no redirect interceptor), so a 3xx comes back to the client as an answer.
 */
import type { Dispatcher, Pool } from 'undici';

export interface ZooidHttpRequest {
  method: string;
  /** The full URL, exactly as signed: the transport sends its path unchanged. */
  url: string;
  headers: Record<string, string>;
  body: Uint8Array | undefined;
  signal: AbortSignal;
}

export interface ZooidHttpResponse {
  status: number;
  location: string | null;
  /**
   * The whole body; rejects if the connection breaks (or the signal aborts) while it is read, and
   * with AnswerTooLarge (the connection cut) once it passes MAX_ANSWER_BYTES.
   */
  text(): Promise<string>;
}

/**
 * zooid's answers are a line of JSON; a body past this is not zooid's, or not a sane one, and is
 * not read on: whoever answers at the API URL cannot make bosun buffer without end.
 */
export const MAX_ANSWER_BYTES = 65_536;

export class AnswerTooLarge extends Error {
  constructor() {
    super(`body over ${MAX_ANSWER_BYTES} bytes`);
  }
}

export interface ZooidTransport {
  /** Rejects on a network error or an abort before the response headers. */
  request(req: ZooidHttpRequest): Promise<ZooidHttpResponse>;
  /** Ends the connections, cutting any request still running; idempotent. */
  close(): Promise<void>;
}

/** A keep-alive pool to `apiUrl`'s origin (http or https). */
export function poolTransport(apiUrl: string): ZooidTransport {
  const origin = new URL(apiUrl).origin;
  // Loaded when a transport is made, not when the CLI starts: only `serve` with push sync needs it,
  // and loading undici costs ~0.25 s of CPU that every command and agent process would pay.
  let pool: Pool | undefined;
  const loading = import('undici').then(({ Pool }) => {
    pool = new Pool(origin);
    return pool;
  });
  let closed: Promise<void> | undefined;
  return {
    async request({ method, url, headers, body, signal }) {
      // The signed URL must be the one requested: only a URL on the pool's origin is sent, path as is.
      if (!url.startsWith(`${origin}/`)) throw new Error(`not a URL on ${origin}: ${url.slice(0, 80)}`);
      const res = await (pool ?? (await loading)).request({
        origin,
        path: url.slice(origin.length),
        method: method as Dispatcher.HttpMethod,
        headers,
        body: body ?? null,
        signal,
      });
      const location = res.headers.location;
      return {
        status: res.statusCode,
        location: (Array.isArray(location) ? location[0] : location) ?? null,
        text: () => readCapped(res.body),
      };
    },
    close() {
      // Destroyed, not drained: by now the observer has drained its syncs, and a request still
      // running was abandoned after a timeout; it must not hold the shutdown open.
      closed ??= loading.then((p) => p.destroy());
      return closed;
    },
  };
}

/** The body as text, up to MAX_ANSWER_BYTES; past it the body is destroyed (the connection cut). */
async function readCapped(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      body.destroy();
      throw new AnswerTooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
