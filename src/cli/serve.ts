import { createServer } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { loadServeConfig } from '../config.js';
import { loadFleetAtStart } from '../fleet/load.js';
import { Peer, StartupError } from '../peer.js';
import { shownDatabaseUrl } from '../store/database-url.js';

/**
 * `bosun serve`: a thin shell over the Peer. SIGTERM/SIGINT close it in order (in-flight syncs
 * drain up to BOSUN_SHUTDOWN_GRACE) and exit 0; a fatal service error exits 1. A start that cannot
 * succeed (port in use, database unreachable) fails with one line before anything is written.
 */
export async function serve(flags: {
  port?: string;
  host?: string;
  databaseUrl?: string;
  logLevel?: string;
  fleet?: string;
}) {
  limitHeapGrowth();
  const config = loadServeConfig(process.env, flags);
  // Checked before the database is opened: a second `bosun serve` on the same port changes nothing.
  if (config.port !== 0) await assertCanListen(config.host, config.port);
  const peer = await Peer.create(config).catch((err) => {
    throw new StartupError(
      `cannot open the database ${shownDatabaseUrl(config.databaseUrl)}: ${(err as Error).message}`,
    );
  });
  if (config.fleetDir) {
    // --fleet: apply the fleet directory (DB syncer) before serving; invalid files stop bosun.
    await loadFleetAtStart(peer, config.fleetDir).catch(async (err) => {
      await peer.close();
      throw err;
    });
  }
  const stop = (signal: string) => {
    peer.logger.info({ signal }, 'shutting down');
    void peer.close();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  try {
    await peer.run();
    peer.logger.info('bosun stopped');
  } catch (err) {
    const listen = listenError(err, config.host, config.port);
    if (listen) throw listen;
    if (err instanceof StartupError) throw err;
    peer.logger.fatal({ err }, 'bosun stopped after a fatal error');
    process.exitCode = 1;
  }
}

/**
 * V8 lets its old space grow to up to 4x the live heap between full collections when the heap
 * limit is large (≥ 2 GiB, the default on a machine with 16 GiB or more), and keeps what it grew.
 * bosun's garbage is mostly short-lived per-request and per-sync objects that outlive a scavenge
 * or two: after seeding and catching up 20,000 relays, the live heap was ~70 MB and the old space
 * ~300 MB (bench/load). 1.5x between collections holds RSS near the live set, for a few more full
 * collections of a heap that is small. The flag is read at every collection, so setting it here
 * works; an operator's own --heap-growing-percent (NODE_OPTIONS or node's arguments) wins.
 */
function limitHeapGrowth(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' ');
  if (!/heap[-_]growing[-_]percent/.test(given)) setFlagsFromString('--heap-growing-percent=50');
}

async function assertCanListen(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  }).catch((err) => {
    throw listenError(err, host, port) ?? err;
  });
}

/** A listen failure, found in an error or its causes, as one line naming what to change. */
function listenError(err: unknown, host: string, port: number): StartupError | null {
  for (let e = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE')
      return new StartupError(
        `cannot listen on ${host}:${port}: the address is in use (another bosun?); choose another with --port or PORT`,
      );
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES' || code === 'ENOTFOUND')
      return new StartupError(
        `cannot listen on ${host}:${port}: ${code}; check --host/BOSUN_HOST and --port/PORT`,
      );
  }
  return null;
}
