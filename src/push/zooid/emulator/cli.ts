import { publicKeyOf } from '../../../domain/keys.js';
import { startZooidEmulator } from './server.js';
import type { ZooidEmulator, ZooidVariant } from './types.js';
import { secretKeyError } from './validate.js';

export interface ZooidEmulatorCliOptions {
  port?: number | string;
  /** Hex pubkeys, as an array or one comma-separated string. */
  whitelist: readonly string[] | string;
  configDir?: string;
  host?: string;
  apiHost?: string;
  variant?: ZooidVariant;
  /** Relay ids whose file "fails to load" (`--fail-load a,b`). */
  failLoad?: readonly string[] | string;
  /** `--reload-delay-ms`: how long a changed relay's old document is still served. */
  reloadDelayMs?: number | string;
  /** `--served-secret id=hex,...`: relays served under another key. */
  servedSecret?: Readonly<Record<string, string>> | string;
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
  const failLoad = listOf(options.failLoad ?? []);
  const reloadDelayMs = options.reloadDelayMs === undefined ? 0 : Number(options.reloadDelayMs);
  if (!Number.isInteger(reloadDelayMs) || reloadDelayMs < 0)
    throw new Error('--reload-delay-ms: must be a whole number of milliseconds, 0 or more');
  const servedSecret = parseServedSecrets(options.servedSecret ?? {});
  const emulator = await startZooidEmulator({
    port,
    whitelist,
    ...(options.configDir ? { configDir: options.configDir } : {}),
    ...(options.host ? { host: options.host } : {}),
    ...(options.apiHost ? { apiHost: options.apiHost } : {}),
    variant,
    ...(failLoad.length > 0 ? { failLoad } : {}),
    ...(reloadDelayMs > 0 ? { reloadDelayMs } : {}),
    ...(Object.keys(servedSecret).length > 0 ? { servedSecret } : {}),
  });
  const line = JSON.stringify({
    level: 'info',
    msg: 'zooid emulator listening',
    url: emulator.url,
    api_host: emulator.apiHost,
    variant: emulator.variant,
    whitelist,
    config_dir: emulator.dir,
    ...(failLoad.length > 0 ? { fail_load: failLoad } : {}),
    ...(reloadDelayMs > 0 ? { reload_delay_ms: reloadDelayMs } : {}),
    // The pubkeys the relays are served under, never the secrets.
    ...(Object.keys(servedSecret).length > 0
      ? {
          served_under: Object.fromEntries(
            Object.entries(servedSecret).map(([id, secret]) => [id, publicKeyOf(secret)]),
          ),
        }
      : {}),
  });
  (options.log ?? ((l: string) => process.stdout.write(`${l}\n`)))(line);
  return emulator;
}

const listOf = (value: readonly string[] | string): string[] =>
  (typeof value === 'string' ? value.split(',') : [...value]).map((s) => s.trim()).filter((s) => s !== '');

/** `id=hex` pairs, comma-separated, or a record; each secret a valid 64-hex Nostr key. */
function parseServedSecrets(value: Readonly<Record<string, string>> | string): Record<string, string> {
  const pairs: Array<[string, string]> =
    typeof value === 'string'
      ? listOf(value).map((pair) => {
          const eq = pair.indexOf('=');
          if (eq <= 0) throw new Error('--served-secret: give id=<64-hex secret> pairs, comma-separated');
          return [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
        })
      : Object.entries(value);
  for (const [id, secret] of pairs) {
    if (!/^[0-9a-f]{64}$/.test(secret) || secretKeyError(secret)) {
      throw new Error(
        `--served-secret: the secret for ${JSON.stringify(id.slice(0, 80))} is not a valid 64-hex Nostr key`,
      );
    }
  }
  return Object.fromEntries(pairs);
}
