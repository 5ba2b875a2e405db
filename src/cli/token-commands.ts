import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { TokenService } from '../auth/tokens.js';
import { systemClock } from '../domain/clock.js';
import { parseDuration } from '../domain/duration.js';
import { type TokenView, viewToken } from '../domain/principal.js';
import { shownDatabaseUrl } from '../store/database-url.js';
import { openStore } from '../store/open.js';
import { ApiClient } from './api-client.js';
import { print, printJson, table } from './output.js';

/**
 * `token create --database-url`: the way back in for an operator who lost every admin token. It
 * writes to the database directly, so it needs what the server's machine has: the database URL.
 */
async function createInDatabase(databaseUrl: string, body: unknown): Promise<TokenView & { token: string }> {
  const file = databaseUrl.startsWith('sqlite:') ? databaseUrl.slice('sqlite:'.length) : null;
  // A mistyped path would otherwise create a new, empty database and a token for nothing.
  if (file !== null && !existsSync(file)) throw new Error(`--database-url: no database at ${file}`);
  if (file === null && !/^postgres(ql)?:\/\//.test(databaseUrl))
    throw new Error('--database-url: must be sqlite:<file> or postgres://…');
  const { store } = await openStore(databaseUrl, { poolSize: 1 }).catch((err) => {
    throw new Error(`cannot open the database ${shownDatabaseUrl(databaseUrl)}: ${(err as Error).message}`);
  });
  try {
    const { token, info } = await new TokenService(store, systemClock).create(body);
    return { token, ...viewToken(info) };
  } finally {
    await store.close();
  }
}

function seconds(text: string): number {
  const ms = parseDuration(text);
  if (ms === null || ms < 1000)
    throw new Error(`invalid duration ${JSON.stringify(text)}: use e.g. 90s, 30m, 24h or 30d`);
  return Math.floor(ms / 1000);
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('manage API tokens (admin)');
  const client = (cmd: Command) => new ApiClient(cmd.optsWithGlobals());

  token
    .command('create')
    .description('create a token; it is printed once and stored only as a hash')
    .requiredOption('--role <role>', 'admin | tenant | agent')
    .option('--owner <owner>', 'tenant id (tenant tokens); a Nostr hex pubkey also enables NIP-98 for it')
    .option('--fleet <fleet>', 'fleet an agent token sees (default: default)')
    .option('--name <name>', 'a label to recognise it by')
    .option('--expires-in <duration>', 'e.g. 30d, 24h')
    .option(
      '--database-url <url>',
      'write it straight to this database, without a server (an operator locked out, on the server machine)',
    )
    .action(
      async (
        opts: {
          role: string;
          owner?: string;
          fleet?: string;
          name?: string;
          expiresIn?: string;
          databaseUrl?: string;
        },
        cmd: Command,
      ) => {
        const body = {
          role: opts.role,
          ...(opts.owner ? { owner: opts.owner } : {}),
          ...(opts.fleet ? { fleet: opts.fleet } : {}),
          ...(opts.name ? { name: opts.name } : {}),
          ...(opts.expiresIn ? { expires_in_seconds: seconds(opts.expiresIn) } : {}),
        };
        const created = opts.databaseUrl
          ? await createInDatabase(opts.databaseUrl, body)
          : await client(cmd).request<TokenView & { token: string }>('POST', '/v1/tokens', body);
        if (cmd.optsWithGlobals().json) return printJson(created);
        print(created.token);
        const where = opts.databaseUrl ? ` in ${shownDatabaseUrl(opts.databaseUrl)}` : '';
        process.stderr.write(
          `token ${created.id} (${created.role}) created${where}; it is shown only this once\n`,
        );
      },
    );

  token
    .command('list')
    .description('list tokens (never their values)')
    .action(async (_opts, cmd: Command) => {
      const { tokens } = await client(cmd).request<{ tokens: TokenView[] }>('GET', '/v1/tokens');
      if (cmd.optsWithGlobals().json) return printJson(tokens);
      print(
        table(
          ['ID', 'NAME', 'ROLE', 'OWNER', 'FLEET', 'EXPIRES', 'REVOKED'],
          tokens.map((t) => [t.id, t.name, t.role, t.owner, t.fleet, t.expires_at, t.revoked_at]),
        ),
      );
    });

  token
    .command('revoke <id>')
    .description('revoke a token at once')
    .action(async (id: string, _opts, cmd: Command) => {
      await client(cmd).request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
      print(`revoked ${id}`);
    });
}
