/**
 * `startZooidEmulator`: one HTTP listener, as zooid has, routed by the request's `Host` header:
 *
 * - `Host` equal to the API host (`apiHost`; default `<listen address>:<port>`, the host of `url`)
 *   reaches the management API, and nothing else does: a relay whose `host` equals the API host is
 *   never served, and a management request sent with a relay's host is answered by that relay (a
 *   404 or its NIP-11 document), never by the API.
 * - Every other `Host` reaches the relay whose `host` is exactly that string (port included when
 *   the config has one), see `nip11.ts`; no relay there → 404 `Not Found`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../../domain/clock.js';
import { systemRandom } from '../../../domain/random.js';
import { ManagementApi } from './api.js';
import { parseWhitelist } from './auth.js';
import { Delays, FaultInjector } from './faults.js';
import { send } from './io.js';
import { ServedRelays, serveRelayHost } from './nip11.js';
import { RequestLog } from './record.js';
import { errorReply } from './reply.js';
import { clone, RelayConfigs } from './state.js';
import type { ZooidEmulator, ZooidEmulatorOptions, ZooidStoredConfig } from './types.js';

export async function startZooidEmulator(options: ZooidEmulatorOptions): Promise<ZooidEmulator> {
  const variant = options.variant ?? 'v2';
  const clock = options.clock ?? systemClock;
  const listenHost = options.host ?? '127.0.0.1';
  let whitelist = parseWhitelist(options.whitelist ?? []);
  let whitelistSet: ReadonlySet<string> = new Set(whitelist);
  const served = new ServedRelays(clock, {
    ...(options.failLoad ? { failLoad: options.failLoad } : {}),
    ...(options.reloadDelayMs !== undefined ? { reloadDelayMs: options.reloadDelayMs } : {}),
    ...(options.servedSecret ? { servedSecret: options.servedSecret } : {}),
  });
  const configs = new RelayConfigs(variant, options.configDir ?? null, (id, config) =>
    served.changed(id, config),
  );
  configs.loadDir();
  for (const [id, config] of configs.entries()) served.changed(id, config, true);
  const log = new RequestLog(options.record ?? true);
  const faults = new FaultInjector(options.faults ?? {}, options.rng ?? systemRandom);
  const delays = new Delays(clock);
  let closed = false;
  const api = new ManagementApi({
    configs,
    variant,
    patchClearsSecret: options.patchClearsSecret ?? false,
    clock,
    log,
    faults,
    delays,
    whitelist: () => whitelistSet,
    isClosed: () => closed,
  });

  let apiHost = options.apiHost ?? '';
  const server = createServer((req, res) => {
    if (apiHost !== '' && req.headers.host === apiHost) {
      api.handle(req, res).catch(() => {
        if (!res.headersSent) send(res, errorReply(500, 'internal error'), false);
        else res.destroy();
      });
    } else {
      serveRelayHost(req, res, served);
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

  const editRelay = (id: string, edit: (config: ZooidStoredConfig) => void) => {
    const config = configs.get(id);
    if (!config) throw new Error(`no relay ${JSON.stringify(id)}`);
    const edited = clone(config);
    edit(edited);
    configs.write(id, edited);
  };

  return {
    url: `http://${hostForUrl}:${port}`,
    port,
    apiHost,
    variant,
    get pubkeysAllowed() {
      return [...whitelist];
    },
    dir: configs.dir,
    requests: log.requests,
    relays: () => configs.snapshot(),
    accepted: (id) => log.acceptedFor(id),
    maxConcurrentPerRelay: (id) => log.maxConcurrent(id),
    served: (id) => served.document(id),
    setFaults: (next) => faults.set(next),
    setServing: (next) => served.setKnobs(next),
    editRelay,
    editRelayName: (id, name) =>
      editRelay(id, (c) => {
        c.info.name = name;
      }),
    reload() {
      const before = [...configs.entries()].map(([id]) => id);
      configs.loadDir();
      for (const id of new Set([...before, ...[...configs.entries()].map(([id]) => id)])) {
        served.changed(id, configs.get(id) ?? null);
      }
    },
    setWhitelist(next) {
      whitelist = parseWhitelist(next);
      whitelistSet = new Set(whitelist);
    },
    async close() {
      if (closed) return;
      closed = true;
      delays.cancelAll();
      served.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
