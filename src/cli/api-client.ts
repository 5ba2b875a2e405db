import { existsSync, readFileSync } from 'node:fs';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ClientOptions {
  server?: string;
  token?: string;
}

/**
 * The CLI's view of a running bosun. The token comes from --token, BOSUN_TOKEN, the file named by
 * BOSUN_TOKEN_FILE, or the admin token a fresh local install wrote to ./data/admin-token.
 */
export class ApiClient {
  readonly server: string;
  private readonly token: string | undefined;

  constructor(opts: ClientOptions, env: Record<string, string | undefined> = process.env) {
    this.server = (opts.server || env.BOSUN_SERVER || 'http://127.0.0.1:8080').replace(/\/+$/, '');
    this.token =
      opts.token ||
      env.BOSUN_TOKEN ||
      readTokenFile(env.BOSUN_TOKEN_FILE) ||
      readTokenFile('data/admin-token');
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.read<T>(await this.send(method, path, body));
  }

  /** A GET whose body is read as it arrives (Server-Sent Events); an error answer throws as request's do. */
  async stream(path: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.send('GET', path, undefined, { accept: 'text/event-stream' });
    if (!res.ok || !res.body) return this.read(res);
    return res.body;
  }

  private async read<T>(res: Response): Promise<T> {
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError(
        res.status,
        'bad_response',
        `unexpected non-JSON answer (HTTP ${res.status}) from ${this.server}`,
      );
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: string; message?: string } })?.error;
      throw new ApiError(res.status, e?.code ?? 'error', e?.message ?? `HTTP ${res.status}`);
    }
    return json as T;
  }

  private async send(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    if (!this.token) {
      throw new ApiError(
        0,
        'no_token',
        'no token: pass --token, or set BOSUN_TOKEN or BOSUN_TOKEN_FILE (a local install writes data/admin-token)',
      );
    }
    try {
      return await fetch(this.server + path, {
        method,
        headers: {
          ...headers,
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ApiError(
        0,
        'unreachable',
        `cannot reach bosun at ${this.server} (${cause}); is \`bosun serve\` running?`,
      );
    }
  }
}

function readTokenFile(path: string | undefined): string | undefined {
  if (!path || !existsSync(path)) return undefined;
  const value = readFileSync(path, 'utf8').trim();
  return value || undefined;
}
