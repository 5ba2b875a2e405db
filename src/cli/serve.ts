import { loadServeConfig } from '../config.js';
import { loadFleetAtStart } from '../fleet/load.js';
import { Peer } from '../peer.js';

/**
 * `bosun serve`: a thin shell over the Peer. SIGTERM/SIGINT close it in order (in-flight syncs
 * drain up to BOSUN_SHUTDOWN_GRACE) and exit 0; a fatal service error exits 1.
 */
export async function serve(flags: {
  port?: string;
  host?: string;
  databaseUrl?: string;
  logLevel?: string;
  fleet?: string;
}) {
  const config = loadServeConfig(process.env, flags);
  const peer = await Peer.create(config);
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
    peer.logger.fatal({ err }, 'bosun stopped after a fatal error');
    process.exitCode = 1;
  }
}
