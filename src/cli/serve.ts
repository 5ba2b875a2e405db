import { loadServeConfig } from '../config.js';
import { Peer } from '../peer.js';

/** `bosun serve`: a thin shell over the Peer, with graceful shutdown on SIGTERM/SIGINT. */
export async function serve(flags: {
  port?: string;
  host?: string;
  databaseUrl?: string;
  logLevel?: string;
}) {
  const config = loadServeConfig(process.env, flags);
  const peer = await Peer.create(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    peer.logger.info({ signal }, 'shutting down');
    peer.close().then(
      () => process.exit(0),
      (err) => {
        peer.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await peer.listen();
}
