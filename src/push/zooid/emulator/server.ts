import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { systemClock, type TimerHandle } from '../../../domain/clock.js';
import { publicKeyOf } from '../../../domain/keys.js';
import { verifyNip98 } from '../../../nostr/nip98.js';
import { makePrivateDir, writePrivateFileSync } from '../../../private-files.js';
import { decodeConfig, deepMerge, isObject, jsonKind, parseJson, sortKeysDeep } from './go-json.js';
import { errorReply, goJson, jsonReply, type Reply, textReply } from './reply.js';
import type {
  ZooidAcceptedChange,
  ZooidEmulator,
  ZooidEmulatorOptions,
  ZooidFaults,
  ZooidMethod,
  ZooidRequestRecord,
  ZooidStoredConfig,
} from './types.js';
import { secretKeyError, validate } from './validate.js';

const BODY_LIMIT = 1 << 20;

const clone = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------------------------------------

export async function startZooidEmulator(options: ZooidEmulatorOptions): Promise<ZooidEmulator> {
  const variant = options.variant ?? 'v2';
  const clock = options.clock ?? systemClock;
  const rng = options.rng ?? Math.random;
  const listenHost = options.host ?? '127.0.0.1';
  const parseWhitelist = (list: readonly string[] | string) =>
    (typeof list === 'string' ? list.split(',') : [...list]).map((s) => s.trim()).filter((s) => s !== '');
  let whitelist = parseWhitelist(options.whitelist);
  let whitelistSet = new Set(whitelist);
  const dir = options.configDir ?? null;
  let faults: ZooidFaults = { ...(options.faults ?? {}) };
  const recording = options.record ?? true;

  const store = new Map<string, ZooidStoredConfig>();
  const accepted = new Map<string, ZooidAcceptedChange[]>();
  const requests: ZooidRequestRecord[] = [];
  const inFlight = new Map<string, number>();
  const maxInFlight = new Map<string, number>();
  const timers = new Set<{ handle: TimerHandle; resolve: () => void }>();
  let apiHost = options.apiHost ?? '';
  let closed = false;

  if (dir) {
    // The files hold relay secrets.
    makePrivateDir(dir);
    for (const name of readdirSync(dir).sort()) {
      if (!name.endsWith('.toml')) continue;
      try {
        const { config, error } = decodeConfig(parseToml(readFileSync(join(dir, name), 'utf8')), variant);
        if (!error) store.set(name.slice(0, -'.toml'.length), config);
      } catch {
        // zooid only logs files it cannot decode.
      }
    }
  }

  const persist = (id: string, config: ZooidStoredConfig | null) => {
    if (dir) {
      const file = join(dir, `${id}.toml`);
      if (config) writePrivateFileSync(file, stringifyToml(config));
      else unlinkSync(file);
    }
    if (config) store.set(id, config);
    else store.delete(id);
  };

  const record = (id: string, method: ZooidAcceptedChange['method'], body: unknown) => {
    if (!recording) return;
    const list = accepted.get(id) ?? [];
    const config = store.get(id);
    list.push({ method, body, config: config ? clone(config) : null, at: clock.now() });
    accepted.set(id, list);
  };

  /** Schema first, then host, file by file in name order; inactive relays count too. */
  const uniquenessError = (id: string | null, c: ZooidStoredConfig): string | null => {
    for (const otherId of [...store.keys()].sort((a, b) => (`${a}.toml` < `${b}.toml` ? -1 : 1))) {
      if (otherId === id) continue;
      const other = store.get(otherId)!;
      if (other.schema === c.schema) return `schema ${JSON.stringify(c.schema)} is already in use`;
      if (other.host === c.host) return `host ${JSON.stringify(c.host)} is already in use`;
    }
    return null;
  };

  const decodeBody = (raw: Buffer, prefix: string): { config: ZooidStoredConfig } | { reply: Reply } => {
    const text = raw.toString('utf8');
    const parsed = parseJson(text);
    if ('error' in parsed) return { reply: errorReply(400, `${prefix}${parsed.error}`) };
    const { config, error } = decodeConfig(parsed.value, variant);
    if (error) return { reply: errorReply(400, `${prefix}${error}`) };
    return { config };
  };

  const create = (id: string, body: Buffer, tooLarge: boolean): Reply => {
    if (store.has(id)) return errorReply(409, 'relay with this id already exists');
    if (tooLarge) return errorReply(400, 'failed to read body: http: request body too large');
    const decoded = decodeBody(body, 'invalid json config: ');
    if ('reply' in decoded) return decoded.reply;
    const invalid = validate(decoded.config, variant);
    if (invalid) return errorReply(400, invalid);
    const conflict = uniquenessError(null, decoded.config);
    if (conflict) return errorReply(409, conflict);
    persist(id, decoded.config);
    return jsonReply(201, { message: 'relay created successfully' });
  };

  const replace = (id: string, body: Buffer, tooLarge: boolean): Reply => {
    if (!store.has(id)) return errorReply(404, 'relay not found');
    if (tooLarge) return errorReply(400, 'failed to read body: http: request body too large');
    const decoded = decodeBody(body, 'invalid json config: ');
    if ('reply' in decoded) return decoded.reply;
    const invalid = validate(decoded.config, variant);
    if (invalid) return errorReply(400, invalid);
    const conflict = uniquenessError(id, decoded.config);
    if (conflict) return errorReply(409, conflict);
    persist(id, decoded.config);
    return jsonReply(200, { message: 'relay updated successfully' });
  };

  const patch = (id: string, body: Buffer, tooLarge: boolean): Reply => {
    const existing = store.get(id);
    if (!existing) return errorReply(404, 'relay not found');
    if (tooLarge) return errorReply(400, 'failed to read body: http: request body too large');
    const parsed = parseJson(body.toString('utf8'));
    if ('error' in parsed) return errorReply(400, `invalid json: ${parsed.error}`);
    if (parsed.value !== null && !isObject(parsed.value)) {
      return errorReply(
        400,
        `invalid json: json: cannot unmarshal ${jsonKind(parsed.value)} into Go value of type map[string]interface {}`,
      );
    }
    const base = clone(existing) as unknown as Record<string, unknown>;
    if (options.patchClearsSecret) base.secret = '';
    if (parsed.value) deepMerge(base, parsed.value);
    const { config, error } = decodeConfig(sortKeysDeep(base), variant);
    if (error) return errorReply(400, error);
    const invalid = validate(config, variant);
    if (invalid) return errorReply(400, invalid);
    const conflict = uniquenessError(id, config);
    if (conflict) return errorReply(409, conflict);
    persist(id, config);
    return jsonReply(200, { message: 'relay patched successfully' });
  };

  const remove = (id: string): Reply => {
    if (!store.has(id)) return errorReply(404, 'relay not found');
    try {
      persist(id, null);
    } catch (err) {
      return errorReply(500, `failed to delete config: ${(err as Error).message}`);
    }
    return jsonReply(200, { message: 'relay deleted successfully' });
  };

  const members = (id: string): Reply => {
    const c = store.get(id);
    if (!c) return errorReply(404, 'relay not found');
    const set = new Set<string>();
    if (c.info.pubkey) set.add(c.info.pubkey);
    for (const [name, role] of Object.entries(c.roles)) {
      if (name === 'member') continue;
      for (const pk of role.pubkeys) if (pk) set.add(pk);
    }
    return jsonReply(200, { members: [...set].sort() });
  };

  const authenticate = (req: IncomingMessage, path: string, rec: ZooidRequestRecord): Reply | null => {
    const scheme = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
    const verdict = verifyNip98(req.headers.authorization, {
      url: `${scheme}://${req.headers.host ?? ''}${path}`,
      method: req.method ?? '',
      now: clock.now(),
      windowSeconds: variant === 'v2' ? 60 : null,
    });
    if (!verdict.ok) return errorReply(verdict.status, verdict.error);
    if (!whitelistSet.has(verdict.pubkey)) return errorReply(403, 'pubkey not in whitelist');
    rec.pubkey = verdict.pubkey;
    return null;
  };

  type Route = { id: string; action: 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'members' } | { reply: Reply };

  const safeDecode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };

  /** V1: auth first (done by the caller), then segment checks. */
  const routeV1 = (method: string, path: string): Route => {
    const parts = safeDecode(path).replace(/^\//, '').split('/');
    if (parts[0] !== 'relay' || parts.length < 2) return { reply: errorReply(404, 'not found') };
    const id = parts[1]!;
    if (id === '') return { reply: errorReply(400, 'relay id is required') };
    if (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE')
      return { id, action: method };
    return { reply: errorReply(405, 'method not allowed') };
  };

  /** V2: Go 1.22 ServeMux patterns; unmatched → plain 404, wrong method → plain 405 + Allow. */
  const routeV2 = (method: string, path: string): Route => {
    const segs = path.split('/');
    if (segs.length === 3 && segs[1] === 'relay' && segs[2] !== '') {
      const id = safeDecode(segs[2]!);
      if (method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE') {
        return { id, action: method };
      }
      return { reply: textReply(405, 'Method Not Allowed', { allow: 'DELETE, PATCH, POST, PUT' }) };
    }
    if (segs.length === 4 && segs[1] === 'relay' && segs[2] !== '' && segs[3] === 'members') {
      if (method === 'GET' || method === 'HEAD') return { id: safeDecode(segs[2]!), action: 'members' };
      return { reply: textReply(405, 'Method Not Allowed', { allow: 'GET, HEAD' }) };
    }
    return { reply: textReply(404, '404 page not found') };
  };

  const guessId = (path: string): string | null => {
    const segs = path.split('/');
    return segs[1] === 'relay' && segs[2] ? safeDecode(segs[2]) : null;
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const entry = {
        handle: clock.setTimeout(() => {
          timers.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      timers.add(entry);
    });

  const readBody = (req: IncomingMessage) =>
    new Promise<{ body: Buffer; tooLarge: boolean }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let ended = false;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= BODY_LIMIT) chunks.push(chunk);
      });
      req.on('end', () => {
        ended = true;
        resolve({ body: Buffer.concat(chunks), tooLarge: size > BODY_LIMIT });
      });
      req.on('error', reject);
      req.on('close', () => {
        if (!ended) reject(new Error('client went away before sending the whole body'));
      });
    });

  const send = (res: ServerResponse, reply: Reply, head: boolean) => {
    res.writeHead(reply.status, {
      'content-type': reply.contentType,
      'content-length': Buffer.byteLength(reply.body),
      ...(reply.headers ?? {}),
    });
    res.end(head ? undefined : reply.body);
  };

  const relayHost = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const host = req.headers.host ?? '';
    const relay = [...store.values()].find((c) => c.host === host && !c.inactive);
    if (!relay) return send(res, textReply(404, 'relay not found'), req.method === 'HEAD');
    const secret = relay.secret.padStart(64, '0');
    send(
      res,
      {
        status: 200,
        contentType: 'application/nostr+json',
        body: goJson({
          name: relay.info.name,
          icon: relay.info.icon,
          description: relay.info.description,
          pubkey: relay.info.pubkey,
          self: secretKeyError(secret) ? '' : publicKeyOf(secret.toLowerCase()),
          software: 'zooid-emulator',
        }),
      },
      req.method === 'HEAD',
    );
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const path = rawUrl.replace(/[?#].*$/, '');
    const id = guessId(path);
    const rec: ZooidRequestRecord = {
      method,
      path,
      id,
      body: null,
      at: clock.now(),
      status: 0,
      pubkey: null,
      fault: null,
    };
    if (recording) requests.push(rec);
    if (id !== null) {
      const n = (inFlight.get(id) ?? 0) + 1;
      inFlight.set(id, n);
      if (n > (maxInFlight.get(id) ?? 0)) maxInFlight.set(id, n);
      res.once('close', () => inFlight.set(id, (inFlight.get(id) ?? 1) - 1));
    }
    const { body, tooLarge } = await readBody(req);
    rec.body = tooLarge ? '<body over 1 MiB>' : body.length === 0 ? null : logBody(body);
    const f = faults;
    if (f.latencyMs && f.latencyMs > 0) await wait(f.latencyMs);
    if (closed) {
      req.socket.destroy();
      return;
    }
    const drop = faults.dropConnections;
    if (drop === true || (typeof drop === 'number' && drop > 0)) {
      if (typeof drop === 'number') faults = { ...faults, dropConnections: drop - 1 };
      rec.fault = 'drop';
      req.socket.destroy();
      return;
    }
    const failStatus = faults.failStatus ?? 500;
    if (
      faults.failAll ||
      (faults.errorRate !== undefined && faults.errorRate > 0 && rng() < faults.errorRate)
    ) {
      rec.fault = 'error';
      rec.status = failStatus;
      return send(res, errorReply(failStatus, 'injected failure'), false);
    }
    const override = faults.statusOverride?.[method as ZooidMethod];
    if (override !== undefined) {
      const o = typeof override === 'number' ? { status: override } : override;
      rec.fault = 'override';
      rec.status = o.status;
      return send(
        res,
        o.body === undefined
          ? errorReply(o.status, 'injected')
          : { status: o.status, body: o.body, contentType: o.contentType ?? 'text/plain; charset=utf-8' },
        false,
      );
    }
    const reply = dispatch(req, method, path, body, tooLarge, rec);
    rec.status = reply.status;
    send(res, reply, method === 'HEAD');
  };

  const dispatch = (
    req: IncomingMessage,
    method: string,
    path: string,
    body: Buffer,
    tooLarge: boolean,
    rec: ZooidRequestRecord,
  ): Reply => {
    let route: Route;
    if (variant === 'v2') {
      route = routeV2(method, path);
      if ('reply' in route) return route.reply;
      const denied = authenticate(req, path, rec);
      if (denied) return denied;
    } else {
      const denied = authenticate(req, path, rec);
      if (denied) return denied;
      route = routeV1(method, path);
      if ('reply' in route) return route.reply;
    }
    const { id, action } = route;
    let reply: Reply;
    try {
      switch (action) {
        case 'POST':
          reply = create(id, body, tooLarge);
          break;
        case 'PUT':
          reply = replace(id, body, tooLarge);
          break;
        case 'PATCH':
          reply = patch(id, body, tooLarge);
          break;
        case 'DELETE':
          reply = remove(id);
          break;
        case 'members':
          return members(id);
      }
    } catch (err) {
      return errorReply(500, `failed to write config: ${(err as Error).message}`);
    }
    if (reply.status >= 200 && reply.status < 300) {
      record(id, action, rec.body);
    }
    return reply;
  };

  const server = createServer((req, res) => {
    if (apiHost !== '' && req.headers.host === apiHost) {
      handleApi(req, res).catch(() => {
        if (!res.headersSent) send(res, errorReply(500, 'internal error'), false);
        else res.destroy();
      });
    } else {
      relayHost(req, res);
    }
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, listenHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  if (apiHost === '') apiHost = `${hostForUrl}:${port}`;

  return {
    url: `http://${hostForUrl}:${port}`,
    port,
    apiHost,
    variant,
    get pubkeysAllowed() {
      return [...whitelist];
    },
    dir,
    requests,
    relays: () => new Map([...store].map(([id, c]) => [id, clone(c)])),
    accepted: (id) => clone(accepted.get(id) ?? []),
    maxConcurrentPerRelay: (id) =>
      id === undefined ? Math.max(0, ...maxInFlight.values()) : (maxInFlight.get(id) ?? 0),
    setFaults(next) {
      faults = { ...next };
    },
    setWhitelist(next) {
      whitelist = parseWhitelist(next);
      whitelistSet = new Set(whitelist);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) {
        clock.clearTimeout(t.handle);
        t.resolve();
      }
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function logBody(body: Buffer): unknown {
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
