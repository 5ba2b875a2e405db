import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config.js';
import { generateSecretKey, publicKeyOf } from '../domain/keys.js';
import { runZooidEmulatorCli } from '../push/zooid/emulator.js';
import { VERSION } from '../version.js';
import { registerAgentCommand } from './agent-command.js';
import { ApiError } from './api-client.js';
import { registerRelayCommands } from './relay-commands.js';
import { serve } from './serve.js';
import { registerSyncCommand } from './sync-command.js';
import { registerTargetCommands } from './target-commands.js';
import { registerTokenCommands } from './token-commands.js';

export function buildProgram(): Command {
  const program = new Command('bosun')
    .description('bosun keeps a fleet of zooid Nostr relays configured')
    .option(
      '--server <url>',
      'bosun server for client commands (env BOSUN_SERVER, default http://127.0.0.1:8080)',
    )
    .option('--token <token>', 'API token (prefer env BOSUN_TOKEN or BOSUN_TOKEN_FILE)')
    .option('--json', 'machine-readable output')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('run the bosun server (API, push sync, agent stream)')
    .option('--port <port>', 'listen port (env PORT, default 8080)')
    .option('--host <host>', 'listen address (env BOSUN_HOST, default 127.0.0.1)')
    .option(
      '--database-url <url>',
      'sqlite:<file> (default sqlite:./data/bosun.db) or postgres://… (env BOSUN_DATABASE_URL)',
    )
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env BOSUN_LOG_LEVEL)')
    .option('--fleet <dir>', 'apply this fleet directory at start (env BOSUN_FLEET_DIR)')
    .action(serve);

  program
    .command('zooid-emulator')
    .description('run a local stand-in for zooid: its management API and each relay’s NIP-11 document')
    .requiredOption('--whitelist <pubkeys>', "comma-separated hex pubkeys allowed to manage it (bosun's key)")
    .option('--port <port>', 'listen port (0 picks a free one)', '3334')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--api-host <host>', 'Host header that reaches the management API (default <host>:<port>)')
    .option('--config-dir <dir>', 'write each relay as <id>.toml here (default: memory only)')
    .option('--variant <variant>', 'zooid API variant to emulate: v1 | v1p | v2', 'v2')
    .option(
      '--fail-load <ids>',
      'comma-separated relay ids whose file "fails to load": accepted, never served',
    )
    .option(
      '--reload-delay-ms <ms>',
      'after a relay changes, keep serving its old NIP-11 document this long',
      '0',
    )
    .option(
      '--served-secret <pairs>',
      'id=<hex secret>,… : serve these relays under another key (test keys only)',
    )
    .addHelpText(
      'after',
      `
Relays are served on the same port, by the Host header: a request whose Host is a relay's
host (exactly as in its config) with "Accept: application/nostr+json" gets that relay's
NIP-11 document; only the API host reaches the management API.

SIGHUP reloads the config dir (edit a <id>.toml by hand, then kill -HUP <pid>).

Several instances: run one process per zooid instance, each with its own --port, --whitelist
and --config-dir, e.g.
  bosun zooid-emulator --port 3334 --whitelist <pubkey A> --config-dir ./zooid-eu
  bosun zooid-emulator --port 3335 --whitelist <pubkey B> --config-dir ./zooid-us
`,
    )
    .action(
      async (opts: {
        whitelist: string;
        port: string;
        host: string;
        apiHost?: string;
        configDir?: string;
        variant: string;
        failLoad?: string;
        reloadDelayMs: string;
        servedSecret?: string;
      }) => {
        const emulator = await runZooidEmulatorCli({
          whitelist: opts.whitelist,
          port: opts.port,
          host: opts.host,
          variant: opts.variant as 'v1' | 'v1p' | 'v2',
          reloadDelayMs: opts.reloadDelayMs,
          ...(opts.apiHost ? { apiHost: opts.apiHost } : {}),
          ...(opts.configDir ? { configDir: opts.configDir } : {}),
          ...(opts.failLoad ? { failLoad: opts.failLoad } : {}),
          ...(opts.servedSecret ? { servedSecret: opts.servedSecret } : {}),
        });
        process.on('SIGHUP', () => {
          emulator.reload();
          process.stdout.write(
            `${JSON.stringify({ level: 'info', msg: 'zooid emulator reloaded', relays: emulator.relays().size })}\n`,
          );
        });
        const stop = () => void emulator.close().then(() => process.exit(0));
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      },
    );

  program
    .command('version')
    .description('print the version')
    .action(() => {
      process.stdout.write(`${VERSION}\n`);
    });

  program
    .command('key')
    .description('generate a Nostr key pair for BOSUN_SECRET_KEY (prints secret then public key)')
    .action(() => {
      const secret = generateSecretKey();
      process.stdout.write(`BOSUN_SECRET_KEY=${secret}\npubkey=${publicKeyOf(secret)}\n`);
    });

  registerRelayCommands(program);
  registerTokenCommands(program);
  registerTargetCommands(program);
  registerAgentCommand(program);
  registerSyncCommand(program);
  return program;
}

/** Runs the CLI; every failure becomes one line on stderr and a non-zero exit, never a stack trace. */
export async function main(argv: string[]): Promise<void> {
  // `bosun … | head`: the reader left, so there is nobody to tell; exit as a pipe would end us.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof ApiError || err instanceof ConfigError || err instanceof Error) {
      const code = err instanceof ApiError && err.code ? ` [${err.code}]` : '';
      process.stderr.write(`bosun: ${err.message}${code}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}
