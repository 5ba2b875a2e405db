import { startZooidEmulator } from './server.js';
import type { ZooidEmulator, ZooidVariant } from './types.js';

export interface ZooidEmulatorCliOptions {
  port?: number | string;
  /** Hex pubkeys, as an array or one comma-separated string. */
  whitelist: readonly string[] | string;
  configDir?: string;
  host?: string;
  apiHost?: string;
  variant?: ZooidVariant;
  /** Where the one JSON line goes. Default stdout. */
  log?: (line: string) => void;
}

/** `bosun zooid-emulator`: starts the emulator and prints one JSON line with its URL. */
export async function runZooidEmulatorCli(options: ZooidEmulatorCliOptions): Promise<ZooidEmulator> {
  const whitelist = (
    typeof options.whitelist === 'string' ? options.whitelist.split(',') : [...options.whitelist]
  )
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (whitelist.length === 0) throw new Error('--whitelist: give at least one hex pubkey (bosun key pubkey)');
  for (const pk of whitelist) {
    if (!/^[0-9a-f]{64}$/.test(pk)) {
      throw new Error(
        `--whitelist: ${JSON.stringify(pk.slice(0, 80))} is not a 64-character lowercase hex pubkey (zooid matches exact strings; npub never matches)`,
      );
    }
  }
  const port = options.port === undefined ? 0 : Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error('--port: must be an integer 0-65535');
  const variant = options.variant ?? 'v2';
  if (!['v1', 'v1p', 'v2'].includes(variant)) throw new Error('--variant: must be v1, v1p or v2');
  const emulator = await startZooidEmulator({
    port,
    whitelist,
    ...(options.configDir ? { configDir: options.configDir } : {}),
    ...(options.host ? { host: options.host } : {}),
    ...(options.apiHost ? { apiHost: options.apiHost } : {}),
    variant,
  });
  const line = JSON.stringify({
    level: 'info',
    msg: 'zooid emulator listening',
    url: emulator.url,
    api_host: emulator.apiHost,
    variant: emulator.variant,
    whitelist,
    config_dir: emulator.dir,
  });
  (options.log ?? ((l: string) => process.stdout.write(`${l}\n`)))(line);
  return emulator;
}
