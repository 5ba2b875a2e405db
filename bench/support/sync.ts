/**
 * Push-sync machinery shared by bench/sync and bench/live: a no-op zooid that notes when each
 * relay's PATCH arrives, and the commit -> PATCH latency run of the bench:sync workload.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { publicKeyOf } from '../../src/domain/keys.js';
import type { Principal } from '../../src/domain/principal.js';
import type { Peer } from '../../src/peer.js';
import { now } from './child.js';

export interface NoopZooid {
  url: string;
  server: Server;
  arrivals: Map<string, number>;
  /**
   * While true, API requests are read and never answered (a zooid that accepts connections and
   * hangs): bosun's requests time out. Held requests end when the server closes.
   */
  hang: boolean;
}

/**
 * A zooid that answers every API request at once; it notes when each relay's PATCH arrived. With
 * `nip11`, a request whose Host is not the API's is answered with the relay's NIP-11 document built
 * from the bodies it was sent (name, description, icon, pubkey, self), as zooid serves it, so live
 * verification finds the relay live; otherwise every request gets the API's 2xx.
 */
export async function noopZooid({ nip11 = false }: { nip11?: boolean } = {}): Promise<NoopZooid> {
  const arrivals = new Map<string, number>();
  let zooid: NoopZooid | undefined;
  const docs = new Map<string, Record<string, string>>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (zooid?.hang) return;
      const served = nip11 && req.method === 'GET' ? docs.get(req.headers.host ?? '') : undefined;
      if (nip11 && req.method === 'GET') {
        if (!served) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('Not Found');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/nostr+json' });
        res.end(JSON.stringify(served));
        return;
      }
      if (req.method === 'PATCH') arrivals.set(req.url!.split('/')[2]!, now());
      if (nip11 && req.method !== 'DELETE') remember(docs, Buffer.concat(chunks).toString('utf8'));
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
      res.end('{"message":"ok"}\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  zooid = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    arrivals,
    hang: false,
  };
  return zooid;
}

/** Folds a POST/PUT/PATCH body into the document served for its host (PATCH merges `info`). */
function remember(docs: Map<string, Record<string, string>>, text: string): void {
  let body: { host?: string; secret?: string; info?: Record<string, string> };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return;
  }
  if (typeof body.host !== 'string') return;
  const doc = { ...(docs.get(body.host) ?? {}) };
  for (const k of ['name', 'description', 'icon', 'pubkey'] as const) {
    const v = body.info?.[k];
    if (typeof v === 'string') {
      if (v === '') delete doc[k];
      else doc[k] = v;
    }
  }
  if (typeof body.secret === 'string' && body.secret !== '') doc.self = publicKeyOf(body.secret);
  docs.set(body.host, doc);
}

export const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/**
 * bench:sync's latency workload: one change every 5 ms to relays r0..r(L-1) while bosun runs; the
 * time from each change's commit returning to its PATCH arriving at `zooid`, sorted (ms). `zooid`
 * runs in this process, or in another one that `arrivals()` asks (times are wall-clock `now()`,
 * comparable across processes).
 */
export async function commitToPatchLatencies(
  peer: Peer,
  zooid: Pick<NoopZooid, 'arrivals'> | { arrivals: () => Promise<Map<string, number>> },
  admin: Principal,
  L: number,
): Promise<number[]> {
  const committedAt = new Map<string, number>();
  for (let i = 0; i < L; i++) {
    await peer.command.updateRelay(admin, `r${i}`, { info: { name: `changed-${i}` } });
    committedAt.set(`r${i}`, now());
    await new Promise((r) => setTimeout(r, 5));
  }
  await peer.pushQueue!.idle();
  const arrivals = typeof zooid.arrivals === 'function' ? await zooid.arrivals() : zooid.arrivals;
  const latencies: number[] = [];
  for (const [id, at] of committedAt) latencies.push(arrivals.get(id)! - at);
  return latencies.sort((a, b) => a - b);
}

/** Env that switches off the periodic chores, so a bench measures push sync alone. */
export const CHORES_OFF: Record<string, string> = Object.fromEntries(
  ['RETRY_SWEEPER', 'DRIFT_REPAIR', 'RESYNC', 'CREDENTIAL_EXPIRY', 'ACTIVITY_RETENTION', 'TARGET_HEALTH'].map(
    (c) => [`BOSUN_CHORE_${c}_ENABLED`, 'false'],
  ),
);
