/**
 * `startZooidEmulator`: one HTTP listener, as zooid has, that routes by the `Host` header — the API
 * host reaches the management API, every other host reaches the relays.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../../domain/clock.js';
import { systemRandom } from '../../../domain/random.js';
import { ManagementApi } from './api.js';
import { parseWhitelist } from './auth.js';
import { Delays, FaultInjector } from './faults.js';
import { send } from './io.js';
import { serveRelayHost } from './nip11.js';
import { RequestLog } from './record.js';
import { errorReply } from './reply.js';
import { RelayConfigs } from './state.js';
import type { ZooidEmulator, ZooidEmulatorOptions } from './types.js';

export async function startZooidEmulator(options: ZooidEmulatorOptions): Promise<ZooidEmulator> {
  const variant = options.variant ?? 'v2';
  const clock = options.clock ?? systemClock;
  const listenHost = options.host ?? '127.0.0.1';
  let whitelist = parseWhitelist(options.whitelist);
  let whitelistSet: ReadonlySet<string> = new Set(whitelist);
  const configs = new RelayConfigs(variant, options.configDir ?? null);
  configs.loadDir();
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
      serveRelayHost(req, res, configs);
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
    dir: configs.dir,
    requests: log.requests,
    relays: () => configs.snapshot(),
    accepted: (id) => log.acceptedFor(id),
    maxConcurrentPerRelay: (id) => log.maxConcurrent(id),
    setFaults: (next) => faults.set(next),
    setWhitelist(next) {
      whitelist = parseWhitelist(next);
      whitelistSet = new Set(whitelist);
    },
    async close() {
      if (closed) return;
      closed = true;
      delays.cancelAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
