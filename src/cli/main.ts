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
    .description('run a local stand-in for zooid’s management API, to try push sync')
    .requiredOption('--whitelist <pubkeys>', "comma-separated hex pubkeys allowed to manage it (bosun's key)")
    .option('--port <port>', 'listen port (0 picks a free one)', '3334')
    .option('--host <host>', 'listen address', '127.0.0.1')
    .option('--config-dir <dir>', 'write each relay as <id>.toml here (default: memory only)')
    .option('--variant <variant>', 'zooid API variant to emulate: v1 | v1p | v2', 'v2')
    .action(
      async (opts: {
        whitelist: string;
        port: string;
        host: string;
        configDir?: string;
        variant: string;
      }) => {
        const emulator = await runZooidEmulatorCli({
          whitelist: opts.whitelist,
          port: opts.port,
          host: opts.host,
          variant: opts.variant as 'v1' | 'v1p' | 'v2',
          ...(opts.configDir ? { configDir: opts.configDir } : {}),
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
