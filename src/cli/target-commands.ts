import { readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import type { SyncStatus } from '../domain/relay.js';
import type { TargetView } from '../domain/target.js';
import { ApiClient } from './api-client.js';
import { print, printJson, table } from './output.js';

type Shown = TargetView & {
  up?: boolean | null;
  error?: string | null;
  fleets?: string[];
  relays?: Record<SyncStatus, number>;
};

/**
 * A target's secret key, from a file only its owner can read: never from argv, where `ps` shows
 * it to every user. Surrounding whitespace (a trailing newline) is dropped.
 */
export function readSecretKeyFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw new Error(`--secret-key-file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `--secret-key-file ${file} is readable by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
    );
  }
  const key = readFileSync(file, 'utf8').trim();
  if (!key) throw new Error(`--secret-key-file ${file} is empty`);
  return key;
}

const upWord = (t: Shown) => (t.up === undefined || t.up === null ? '' : t.up ? 'up' : 'down');

function printTarget(t: Shown): void {
  const lines: [string, string][] = [
    ['name', t.name],
    ['url', t.url],
    ['verify url', t.verify_url ?? '(none)'],
    ['pubkey', `${t.pubkey ?? '(no key: set BOSUN_SECRET_KEY or the target’s secret key)'}`],
    ['key', t.key === 'own' ? 'its own' : 'BOSUN_SECRET_KEY'],
  ];
  if (t.up !== undefined)
    lines.push(['health', `${upWord(t) || 'not probed yet'}${t.error ? ` (${t.error})` : ''}`]);
  if (t.fleets) lines.push(['fleets', t.fleets.length ? t.fleets.join(', ') : '(none)']);
  if (t.relays) {
    const r = t.relays;
    lines.push([
      'relays',
      `${r.synced} synced, ${r.pending} pending, ${r.retrying} retrying, ${r.failed} failed`,
    ]);
  }
  print(lines.map(([k, v]) => `${`${k}:`.padEnd(12)}${v}`).join('\n'));
}

export function registerTargetCommands(program: Command): void {
  const target = program
    .command('target')
    .description('manage zooid targets: the instances relays are pushed to (admin)');
  const client = (cmd: Command) => new ApiClient(cmd.optsWithGlobals());
  const json = (cmd: Command) => Boolean(cmd.optsWithGlobals().json);
  const path = (name: string) => `/v1/targets/${encodeURIComponent(name)}`;

  target
    .command('add <name>')
    .description('register a zooid instance; prints the pubkey to list in its API_WHITELIST')
    .requiredOption('--url <url>', 'its management API, e.g. https://eu-1.zooid.example.com')
    .option(
      '--secret-key-file <file>',
      'a 0600 file holding the 64-hex Nostr key that signs its requests (default: BOSUN_SECRET_KEY)',
    )
    .option('--verify-url <url>', 'where its relays are checked, when not at their hosts')
    .action(
      async (
        name: string,
        opts: { url: string; secretKeyFile?: string; verifyUrl?: string },
        cmd: Command,
      ) => {
        const body = {
          name,
          url: opts.url,
          ...(opts.secretKeyFile ? { secret_key: readSecretKeyFile(opts.secretKeyFile) } : {}),
          ...(opts.verifyUrl ? { verify_url: opts.verifyUrl } : {}),
        };
        const created = await client(cmd).request<Shown>('POST', '/v1/targets', body);
        if (json(cmd)) return printJson(created);
        print(created.pubkey ?? '');
        process.stderr.write(
          `target ${created.name} added; list the pubkey above in its zooid's API_WHITELIST\n`,
        );
      },
    );

  target
    .command('list')
    .description('list targets: default (ZOOID_API_URL) first, then the registered ones')
    .action(async (_opts, cmd: Command) => {
      const { targets } = await client(cmd).request<{ targets: Shown[] }>('GET', '/v1/targets');
      if (json(cmd)) return printJson(targets);
      print(
        table(
          ['NAME', 'URL', 'PUBKEY', 'KEY', 'HEALTH'],
          targets.map((t) => [t.name, t.url, t.pubkey, t.key === 'own' ? 'own' : 'default', upWord(t)]),
        ),
      );
    });

  target
    .command('show <name>')
    .description('a target, the fleets pinned to it and their relays by sync status')
    .action(async (name: string, _opts, cmd: Command) => {
      const shown = await client(cmd).request<Shown>('GET', path(name));
      if (json(cmd)) return printJson(shown);
      printTarget(shown);
    });

  target
    .command('update <name>')
    .description('change a target’s url, key or verify url')
    .option('--url <url>', 'its management API')
    .option('--secret-key-file <file>', 'a 0600 file holding its new key')
    .option('--default-key', 'sign with BOSUN_SECRET_KEY from now on')
    .option('--verify-url <url>', 'where its relays are checked')
    .option('--no-verify-url', 'check its relays at their hosts')
    .action(
      async (
        name: string,
        opts: { url?: string; secretKeyFile?: string; defaultKey?: boolean; verifyUrl?: string | false },
        cmd: Command,
      ) => {
        if (opts.secretKeyFile && opts.defaultKey) {
          throw new Error('--secret-key-file and --default-key: choose one');
        }
        const body = {
          ...(opts.url ? { url: opts.url } : {}),
          ...(opts.secretKeyFile ? { secret_key: readSecretKeyFile(opts.secretKeyFile) } : {}),
          ...(opts.defaultKey ? { secret_key: null } : {}),
          ...(typeof opts.verifyUrl === 'string' ? { verify_url: opts.verifyUrl } : {}),
          ...(opts.verifyUrl === false ? { verify_url: null } : {}),
        };
        if (Object.keys(body).length === 0) {
          throw new Error('nothing to change: give --url, --secret-key-file, --default-key or --verify-url');
        }
        const updated = await client(cmd).request<Shown>('PATCH', path(name), body);
        if (json(cmd)) return printJson(updated);
        printTarget(updated);
      },
    );

  target
    .command('remove <name>')
    .description('remove a target (refused while a fleet is pinned to it)')
    .action(async (name: string, _opts, cmd: Command) => {
      await client(cmd).request('DELETE', path(name));
      if (json(cmd)) return printJson({ removed: name });
      print(`removed ${name}`);
    });
}
