/**
 * The zooid management API client (docs/zooid-contract.md §1, §4). Every request is signed anew with
 * NIP-98. HTTP outcomes are returned as typed results, never thrown, so the push syncer can decide:
 * `id_exists` → PUT with the secret, `not_found` (any 404) → POST with the secret,
 * `conflict`/`invalid`/`auth`/`forbidden` → stored error, `transient` → retry later. Kinds follow
 * the status; zooid's text only tells its 409s apart. Network errors that happen before any
 * response are retried a few times inside one call ("weak retries").
 */
import { backoffDelay } from '../../domain/backoff.js';
import { type Clock, sleep, systemClock } from '../../domain/clock.js';
import type { Nip98Signer } from '../../nostr/nip98.js';
import {
  AnswerTooLarge,
  MAX_ANSWER_BYTES,
  poolTransport,
  type ZooidHttpResponse,
  type ZooidTransport,
} from './transport.js';

export type ZooidErrorKind =
  | 'id_exists'
  | 'conflict'
  | 'not_found'
  | 'invalid'
  | 'auth'
  | 'forbidden'
  | 'transient';

export type ZooidResult =
  | { ok: true; status: number; attempts: number }
  | {
      ok: false;
      kind: ZooidErrorKind;
      status?: number;
      message: string;
      attempts: number;
      /**
       * The request reached zooid and may still be processed there (timeout, abort, or a broken
       * answer): a retry sent too soon could overlap it, so the caller waits longer.
       */
      inDoubt?: boolean;
      /**
       * For a timeout: settles when the abandoned request is really over — zooid answered it, or the
       * connection closed. Until then zooid may still apply it, so nothing else is sent for the relay.
       */
      settled?: Promise<void>;
    };

export type ZooidFailure = Extract<ZooidResult, { ok: false }>;

export interface ZooidClientOptions {
  /** zooid's API origin as bosun reaches it, e.g. `https://zooid.example.com` (no query). */
  apiUrl: string;
  signer: Nip98Signer;
  /** The HTTP below the client, which it owns (closes). Default: a keep-alive pool to `apiUrl`. */
  transport?: ZooidTransport;
  /** Per attempt, headers and body included. Default 10 000 ms. */
  timeoutMs?: number;
  clock?: Clock;
  /** Extra attempts after a network error before any response. Default 5. */
  weakRetries?: number;
  /** Backoff before weak retry n is `retryDelayMs · 2^(n−1)`, capped at 1 s. Default 50 ms. */
  retryDelayMs?: number;
  /** How long a timed-out request is left running before it is cut off. Default 10 × timeoutMs. */
  abandonMs?: number;
}

export interface ZooidRequestOptions {
  /** Aborts the call (e.g. on shutdown); the result is then `transient`. */
  signal?: AbortSignal;
}

/** zooid does not sanitise `{id}` (it becomes a file name): bosun only ever sends these. */
export const ZOOID_RELAY_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;

const MAX_MESSAGE = 200;
const MAX_BACKOFF_MS = 1000;

type Attempt =
  | { type: 'response'; status: number; text: string; location: string | null }
  | { type: 'network'; detail: string }
  | { type: 'timeout'; settled?: Promise<void> }
  | { type: 'aborted' }
  | { type: 'broken'; status: number }
  | { type: 'oversized'; status: number };

export class ZooidClient {
  readonly apiUrl: string;
  private readonly signer: Nip98Signer;
  private readonly transport: ZooidTransport;
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  private readonly weakRetries: number;
  private readonly retryDelayMs: number;
  private readonly abandonMs: number;

  constructor(options: ZooidClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.apiUrl);
    } catch {
      throw new Error(`zooid API URL is not a URL: ${JSON.stringify(options.apiUrl)}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new Error('zooid API URL must start with http:// or https://');
    }
    if (parsed.search || parsed.hash || parsed.username || parsed.password) {
      throw new Error('zooid API URL must not have a query, fragment or credentials');
    }
    this.apiUrl = parsed.origin + parsed.pathname.replace(/\/+$/, '');
    this.signer = options.signer;
    this.transport = options.transport ?? poolTransport(this.apiUrl);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.clock = options.clock ?? systemClock;
    this.weakRetries = options.weakRetries ?? 5;
    this.retryDelayMs = options.retryDelayMs ?? 50;
    this.abandonMs = options.abandonMs ?? 10 * this.timeoutMs;
  }

  /** The key zooid must whitelist. */
  get pubkey(): string {
    return this.signer.pubkey;
  }

  /** Closes the transport's connections (at shutdown, once the syncs drained). */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** POST /relay/:id with the full config (including `secret`). */
  create(id: string, body: object, options?: ZooidRequestOptions): Promise<ZooidResult> {
    return this.request('POST', id, body, options);
  }

  /** PUT /relay/:id: full replacement (zooid requires `secret`). */
  replace(id: string, body: object, options?: ZooidRequestOptions): Promise<ZooidResult> {
    return this.request('PUT', id, body, options);
  }

  /** PATCH /relay/:id: deep merge; `null` deletes a key. */
  patch(id: string, body: object, options?: ZooidRequestOptions): Promise<ZooidResult> {
    return this.request('PATCH', id, body, options);
  }

  /** DELETE /relay/:id: zooid removes the config file only (data stays). */
  remove(id: string, options?: ZooidRequestOptions): Promise<ZooidResult> {
    return this.request('DELETE', id, undefined, options);
  }

  private async request(
    method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    id: string,
    body: object | undefined,
    options: ZooidRequestOptions = {},
  ): Promise<ZooidResult> {
    if (!ZOOID_RELAY_ID.test(id)) {
      return {
        ok: false,
        kind: 'invalid',
        message: `relay id ${JSON.stringify(id.slice(0, 80))} is not a safe zooid id (${ZOOID_RELAY_ID.source})`,
        attempts: 0,
      };
    }
    const url = `${this.apiUrl}/relay/${id}`;
    const bytes = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const secrets = body === undefined ? [] : collectSecrets(body);
    const { signal } = options;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.once(method, url, bytes, signal);
      if (outcome.type === 'network' && attempt <= this.weakRetries && !signal?.aborted) {
        try {
          const wait = backoffDelay({ baseMs: this.retryDelayMs, capMs: MAX_BACKOFF_MS }, attempt);
          await sleep(this.clock, wait, signal);
          continue;
        } catch {
          return { ok: false, kind: 'transient', message: 'zooid request aborted', attempts: attempt };
        }
      }
      return this.classify(method, outcome, attempt, secrets);
    }
  }

  private async once(
    method: string,
    url: string,
    body: Uint8Array | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Attempt> {
    if (signal?.aborted) return { type: 'aborted' };
    const controller = new AbortController();
    let timedOut = false;
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    // On timeout the request is left running, not aborted: zooid may have read it already and will
    // apply it whatever the client does, so only its answer (or the connection closing) shows when it
    // can no longer land. It is cut off after `abandonMs` to bound what is kept open.
    let cutoff: ReturnType<Clock['setTimeout']> | undefined;
    const attempt = this.attempt(method, url, body, controller, signal, () => timedOut).finally(() => {
      if (cutoff !== undefined) this.clock.clearTimeout(cutoff);
      signal?.removeEventListener('abort', onAbort);
    });
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const timeout = new Promise<Attempt>((resolve) => {
      timer = this.clock.setTimeout(() => {
        timedOut = true;
        cutoff = this.clock.setTimeout(() => controller.abort(), this.abandonMs);
        resolve({ type: 'timeout', settled: attempt.then(() => undefined) });
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([attempt, timeout]);
    } finally {
      if (timer !== undefined) this.clock.clearTimeout(timer);
    }
  }

  private async attempt(
    method: string,
    url: string,
    body: Uint8Array | undefined,
    controller: AbortController,
    signal: AbortSignal | undefined,
    timedOut: () => boolean,
  ): Promise<Attempt> {
    try {
      const headers: Record<string, string> = {
        authorization: await this.signer.sign(url, method, body),
        accept: 'application/json',
      };
      if (body !== undefined) headers['content-type'] = 'application/json';
      let res: ZooidHttpResponse;
      try {
        res = await this.transport.request({ method, url, headers, body, signal: controller.signal });
      } catch (err) {
        if (timedOut()) return { type: 'timeout' };
        if (signal?.aborted) return { type: 'aborted' };
        return { type: 'network', detail: describeNetworkError(err) };
      }
      try {
        const text = await res.text();
        return { type: 'response', status: res.status, text, location: res.location };
      } catch (err) {
        if (err instanceof AnswerTooLarge) return { type: 'oversized', status: res.status };
        if (timedOut()) return { type: 'timeout' };
        if (signal?.aborted) return { type: 'aborted' };
        return { type: 'broken', status: res.status };
      }
    } catch (err) {
      return { type: 'network', detail: describeNetworkError(err) };
    }
  }

  private classify(method: string, outcome: Attempt, attempts: number, secrets: string[]): ZooidResult {
    const failure = (
      kind: ZooidErrorKind,
      message: string,
      status?: number,
      inDoubt = false,
      settled?: Promise<void>,
    ): ZooidResult => ({
      ok: false,
      kind,
      ...(status === undefined ? {} : { status }),
      message: redact(message, secrets),
      attempts,
      ...(inDoubt ? { inDoubt } : {}),
      ...(settled ? { settled } : {}),
    });
    switch (outcome.type) {
      case 'aborted':
        return failure('transient', 'zooid request aborted', undefined, true);
      case 'timeout':
        return failure(
          'transient',
          `zooid did not answer ${method} within ${this.timeoutMs} ms`,
          undefined,
          true,
          outcome.settled,
        );
      case 'network': {
        const tries = attempts === 1 ? '' : ` (${attempts} attempts)`;
        return failure('transient', `cannot reach zooid at ${this.apiUrl}: ${outcome.detail}${tries}`);
      }
      case 'broken':
        return failure(
          'transient',
          `zooid answered ${outcome.status} but the connection broke`,
          outcome.status,
        );
      case 'oversized':
        return failure(
          'transient',
          `zooid answered ${outcome.status} with a body over ${MAX_ANSWER_BYTES} bytes (not read)`,
          outcome.status,
        );
    }
    const { status, text } = outcome;
    const parsed = parseJsonObject(text);
    if (status >= 200 && status < 300) {
      if (parsed) return { ok: true, status, attempts };
      return failure('transient', `zooid answered ${status} with a non-JSON body: ${snippet(text)}`, status);
    }
    const said = typeof parsed?.error === 'string' ? clean(parsed.error) : snippet(text);
    if (status >= 500) return failure('transient', `zooid answered ${status}: ${said}`, status);
    switch (status) {
      case 400:
        return failure('invalid', said, status);
      case 401: {
        const hint = said.includes('time window') ? ' (check this host clock)' : '';
        return failure('auth', `zooid rejected bosun's NIP-98 signature: ${said}${hint}`, status);
      }
      case 403:
        return failure(
          'forbidden',
          `zooid rejected bosun's key: add ${this.signer.pubkey} to API_WHITELIST`,
          status,
        );
      case 404:
        // By status alone: zooid says `relay not found`, a proxy or another build `Not Found` or
        // anything else. A POST never answers 404 from zooid's API, so there it means the URL.
        if (method === 'POST') {
          return failure(
            'not_found',
            `zooid answered 404 to a POST: check that ${this.apiUrl} reaches zooid's API_HOST (${said})`,
            status,
          );
        }
        return failure('not_found', `zooid has no such relay: ${method} answered 404 (${said})`, status);
      case 409:
        return failure(conflictKind(method, said), said, status);
      case 408:
      case 425:
      case 429:
        return failure('transient', `zooid answered ${status}: ${said}`, status);
    }
    if (status >= 300 && status < 400) {
      const to = outcome.location ? ` to ${snippet(outcome.location)}` : '';
      return failure(
        'invalid',
        `zooid answered ${status} redirect${to}: point the API URL at zooid itself`,
        status,
      );
    }
    return failure('invalid', `zooid answered ${status}: ${said}`, status);
  }
}

/**
 * zooid's 409s differ only in their text (docs/zooid-contract.md §4), so the text is read, tolerantly:
 * one that names a host or schema is a real conflict; one that says the relay is missing is the
 * `relay not found` of an old V2; on POST anything else is the id (checked before the body, so it
 * comes first) — push sync then PUTs, and a 404 to that PUT shows the 409 was a conflict after all.
 */
function conflictKind(method: string, said: string): ZooidErrorKind {
  if (/\b(host|hostname|schema)\b/i.test(said)) return 'conflict';
  if (/not found|missing|no such|does not exist/i.test(said)) return 'not_found';
  return method === 'POST' ? 'id_exists' : 'conflict';
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function clean(text: string): string {
  // zooid's hex errors quote the offending character of the secret: keep only the verdict.
  if (text.startsWith('invalid secret key')) return 'invalid secret key';
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length <= MAX_MESSAGE ? oneLine : `${oneLine.slice(0, MAX_MESSAGE - 1)}…`;
}

function snippet(text: string): string {
  const s = clean(text);
  return s === '' ? '(empty body)' : s;
}

const SECRET_KEYS = new Set(['secret', 'api_secret', 'secret_key', 'access_key']);

/** Values of secret-bearing keys in a request body, so no message ever echoes them. */
function collectSecrets(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) collectSecrets(v, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_KEYS.has(k) && typeof v === 'string' && v.length >= 4) out.push(v);
      else collectSecrets(v, out);
    }
  }
  return out;
}

function redact(message: string, secrets: string[]): string {
  let out = message;
  for (const s of secrets) out = out.split(s).join('[redacted]');
  return out;
}

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed while sending',
  UND_ERR_SOCKET: 'connection closed before a response',
  UND_ERR_CLOSED: 'connection closed before a response',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connect timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
};

function describeNetworkError(err: unknown): string {
  let cur: unknown = err;
  for (let depth = 0; depth < 4 && cur; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return `${NETWORK_CODES[code] ?? 'network error'} (${code})`;
    cur = (cur as { cause?: unknown }).cause;
  }
  const msg = err instanceof Error ? err.message : String(err);
  return clean(msg || 'network error');
}
