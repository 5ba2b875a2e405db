/**
 * Reading a relay's NIP-11 document back from zooid (docs/zooid-contract.md §5), for live
 * verification. The answer comes from a server bosun does not control, so everything about it is
 * bounded: one total deadline (connect, headers and body together, so a slow-loris drip cannot hold
 * a check open), a body cap, no redirects, a content-type check, and a JSON-object check. Nothing
 * secret is sent: no credentials, no cookies, only `Host` and `Accept`.
 *
 * node:http/https directly, because the request must carry the relay's host in `Host` while it
 * connects somewhere else (a zooid instance's own address), which fetch() does not allow.
 */
import { type Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { type Clock, systemClock } from '../domain/clock.js';

export interface FetchRelayInfoOptions {
  /**
   * Where to connect: `https://<host>/` for a relay's public name, or a zooid instance's own
   * address such as `http://10.0.0.5:3334`. Its path is the path asked (usually `/`).
   */
  baseUrl: string;
  /** The relay's host as its config writes it (port included when it has one), sent as `Host`. */
  host: string;
  /** The whole exchange, from connecting to the last byte. */
  timeoutMs: number;
  /** Largest body read; a larger one is abandoned. Default 64 KiB. */
  maxBytes?: number;
  signal?: AbortSignal;
  /** Connection reuse, e.g. a keep-alive agent per zooid instance. Default: Node's global agent. */
  agent?: HttpAgent | HttpsAgent;
  clock?: Clock;
}

export type FetchRelayInfoResult = { ok: true; doc: Record<string, unknown> } | { ok: false; error: string };

export const NIP11_MAX_BYTES = 65_536;
const MAX_ERROR = 120;
const NIP11_TYPES = new Set(['application/nostr+json', 'application/json']);

const clip = (s: string) => (s.length <= MAX_ERROR ? s : `${s.slice(0, MAX_ERROR - 1)}…`);
const quote = (s: string, max = 40) => JSON.stringify(s.length <= max ? s : `${s.slice(0, max)}…`);

/** A host as the `Host` header may carry it: a name or address, an optional port, nothing else. */
const HOST_RE = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** Fetches the NIP-11 document served for `host`; never throws. */
export function fetchRelayInfo(options: FetchRelayInfoOptions): Promise<FetchRelayInfoResult> {
  const fail = (error: string): FetchRelayInfoResult => ({ ok: false, error: clip(error) });
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    return Promise.resolve(fail(`not a URL: ${quote(options.baseUrl)}`));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.resolve(fail(`URL scheme ${quote(url.protocol)} is not http or https`));
  }
  if (url.username !== '' || url.password !== '') {
    return Promise.resolve(fail('URL carries credentials; verification never sends any'));
  }
  if (!HOST_RE.test(options.host)) return Promise.resolve(fail(`not a host: ${quote(options.host)}`));
  if (!(options.timeoutMs > 0)) return Promise.resolve(fail('timeoutMs must be a positive number'));
  if (options.signal?.aborted) return Promise.resolve(fail('aborted'));
  const maxBytes = options.maxBytes ?? NIP11_MAX_BYTES;
  const clock = options.clock ?? systemClock;

  return new Promise<FetchRelayInfoResult>((resolve) => {
    let settled = false;
    const finish = (result: FetchRelayInfoResult) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      // Whatever is left of the exchange is abandoned, so a hostile server holds nothing open.
      if (!result.ok) req.destroy();
      resolve(result);
    };
    const timer = clock.setTimeout(
      () => finish(fail(`no complete answer within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    const onAbort = () => finish(fail('aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const sniName = options.host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send({
      protocol: url.protocol,
      hostname,
      port: url.port === '' ? undefined : Number(url.port),
      method: 'GET',
      path: `${url.pathname}${url.search}`,
      headers: { host: options.host, accept: 'application/nostr+json', 'user-agent': 'bosun-live-verify' },
      ...(options.agent ? { agent: options.agent } : {}),
      // TLS is checked against the relay's name, not the address connected to.
      ...(url.protocol === 'https:' && isIP(sniName) === 0 ? { servername: sniName } : {}),
    });
    req.on('error', (err) => finish(fail(describeError(err))));
    req.on('response', (res) => {
      const verdict = checkHead(res, maxBytes);
      if (verdict) {
        res.resume();
        finish(fail(verdict));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          finish(fail(`body over ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(fail(describeError(err))));
      res.on('aborted', () => finish(fail('connection closed before the body ended')));
      res.on('end', () => finish(parseBody(Buffer.concat(chunks))));
    });
    req.end();
  });
}

/** Status, content type, encoding and declared length; null when the body is worth reading. */
function checkHead(res: IncomingMessage, maxBytes: number): string | null {
  const status = res.statusCode ?? 0;
  if (status >= 300 && status < 400) {
    const location = typeof res.headers.location === 'string' ? ` to ${quote(res.headers.location)}` : '';
    return `HTTP ${status} redirect${location} not followed`;
  }
  if (status !== 200) return `HTTP ${status}${status === 404 ? ' (not served)' : ''}`;
  const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (!NIP11_TYPES.has(type)) {
    return `content type ${quote(type || 'none')} is not NIP-11 (application/nostr+json)`;
  }
  const encoding = (res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') return `content encoding ${quote(encoding)} not accepted`;
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes)
    return `body of ${declared} bytes is over ${maxBytes}`;
  return null;
}

function parseBody(body: Buffer): FetchRelayInfoResult {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return { ok: false, error: 'body is not UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: clip(`body is not JSON: ${quote(text.trim(), 40)}`) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
    return { ok: false, error: `body is ${kind}, not a JSON object` };
  }
  return { ok: true, doc: value as Record<string, unknown> };
}

const ERROR_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host name not found (DNS)',
  EAI_AGAIN: 'host name lookup failed (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  HPE_INVALID_CONSTANT: 'not an HTTP answer',
};

function describeError(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  const known = ERROR_TEXT[code];
  if (known) return known;
  if (code.startsWith('HPE_')) return `malformed HTTP answer (${code})`;
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || /certificate|SSL|TLS/i.test(err.message)) {
    return `TLS: ${err.message}`;
  }
  if (err.message === 'socket hang up') return 'connection closed before an answer';
  return err.message || code || 'request failed';
}
