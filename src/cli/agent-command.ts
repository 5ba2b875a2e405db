import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import type { LevelWithSilent } from 'pino';
import { createLogger } from '../logger.js';
import { Agent, AgentConfigError } from '../pull/agent/agent.js';
import { StreamAuthError, StreamClosedError, StreamConfigError } from '../pull/agent/stream-manager.js';

interface AgentFlags {
  dir: string;
  workDir?: string;
  stateFile?: string;
  tokenFile?: string;
  health?: string;
  allowInsecure?: boolean;
  logLevel?: string;
  verifyUrl?: string;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * The agent token: env BOSUN_AGENT_TOKEN, or a file (--token-file / BOSUN_AGENT_TOKEN_FILE) that
 * only its owner can read. Never from argv, where `ps` shows it to every user.
 */
export function agentToken(
  flags: { tokenFile?: string; globalToken?: string },
  env: Record<string, string | undefined> = process.env,
): string {
  if (flags.globalToken) {
    throw new AgentConfigError(
      'bosun agent does not take --token (argv is visible to every user); set BOSUN_AGENT_TOKEN or use --token-file',
    );
  }
  const file = flags.tokenFile ?? env.BOSUN_AGENT_TOKEN_FILE;
  if (file) {
    let mode: number;
    try {
      mode = statSync(file).mode;
    } catch (err) {
      throw new AgentConfigError(
        `token file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
    if ((mode & 0o077) !== 0) {
      throw new AgentConfigError(
        `token file ${file} is readable by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
      );
    }
    const token = readFileSync(file, 'utf8').trim();
    if (!token) throw new AgentConfigError(`token file ${file} is empty`);
    return token;
  }
  const token = env.BOSUN_AGENT_TOKEN?.trim();
  if (!token) {
    throw new AgentConfigError(
      'no agent token: set BOSUN_AGENT_TOKEN or --token-file (create one with: bosun token create --role agent --fleet <fleet>)',
    );
  }
  return token;
}

/** Off unless asked for: no port is free on every host (a second agent needs its own). */
function parseHealth(value: string | undefined): { host: string; port: number } | null {
  if (value === undefined || value === 'off') return null;
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) {
    throw new AgentConfigError(`--health ${value}: expected host:port (e.g. 127.0.0.1:9180) or off`);
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description(
      "keep one fleet's relays as zooid config files (<dir>/<id>.toml) in sync with bosun (needs the global --server)",
    )
    .requiredOption('--dir <dir>', 'zooid config directory to write <id>.toml files into')
    .option(
      '--work-dir <dir>',
      'temp files and state, outside --dir on its file system (zooid loads every file in --dir); default <parent of dir>/.<name of dir>.bosun',
    )
    .option(
      '--state-file <file>',
      'resume state (versions, managed files; no secrets); default <work-dir>/state.json',
    )
    .option('--token-file <file>', 'file with the agent token, mode 0600 (or env BOSUN_AGENT_TOKEN[_FILE])')
    .option('--health <host:port>', 'serve GET /healthz and /metrics here (e.g. 127.0.0.1:9180); default off')
    .option(
      '--verify-url <url>',
      "zooid's own address (e.g. http://127.0.0.1:3334): read each written relay back over NIP-11, live status on /healthz (env BOSUN_AGENT_VERIFY_URL)",
    )
    .option('--allow-insecure', 'allow http:// to a server that is not loopback (the stream carries secrets)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env BOSUN_LOG_LEVEL)')
    .action(async (flags: AgentFlags, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { server?: string; token?: string };
      const server = globals.server || process.env.BOSUN_SERVER;
      if (!server) throw new AgentConfigError('bosun agent needs --server <url> (or env BOSUN_SERVER)');
      const token = agentToken({
        ...(flags.tokenFile !== undefined ? { tokenFile: flags.tokenFile } : {}),
        ...(globals.token !== undefined ? { globalToken: globals.token } : {}),
      });
      const level = flags.logLevel ?? process.env.BOSUN_LOG_LEVEL ?? 'info';
      if (!LEVELS.includes(level))
        throw new AgentConfigError(`--log-level ${level}: expected one of ${LEVELS.join(', ')}`);
      const verify = flags.verifyUrl ?? (process.env.BOSUN_AGENT_VERIFY_URL || undefined);
      const logger = createLogger({ level: level as LevelWithSilent }).child({ component: 'agent' });
      const agent = new Agent({
        server,
        token,
        dir: flags.dir,
        ...(flags.workDir !== undefined ? { workDir: flags.workDir } : {}),
        ...(flags.stateFile !== undefined ? { stateFile: flags.stateFile } : {}),
        allowInsecure: flags.allowInsecure === true,
        health: parseHealth(flags.health),
        verify: verify ? { baseUrl: verify } : null,
        logger,
      });
      let stopped = false;
      let finished!: () => void;
      const done = new Promise<void>((resolve) => {
        finished = resolve;
      });
      // The agent's own timers do not hold the process open (they are unref'd): this does, until a
      // signal stops it — also while it waits out a backoff with /healthz off.
      const keepAlive = setInterval(() => {}, 1 << 30);
      const stop = (signal: string) => {
        if (stopped) return;
        stopped = true;
        logger.info({ signal }, 'agent shutting down');
        void agent.close().finally(() => {
          clearInterval(keepAlive);
          finished();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      try {
        await agent.start();
        logger.info(agent.health(), 'agent in sync');
      } catch (err) {
        clearInterval(keepAlive);
        if (err instanceof StreamClosedError) return;
        if (err instanceof StreamAuthError) {
          throw new Error(
            `the server refused the agent token (HTTP ${err.status}): check BOSUN_AGENT_TOKEN / --token-file`,
          );
        }
        if (err instanceof StreamConfigError) throw new Error(`cannot use ${server}: ${err.message}`);
        throw err;
      }
      // Runs until SIGTERM / SIGINT.
      await done;
    });
}
