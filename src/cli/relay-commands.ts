import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createParser } from 'eventsource-parser';
import { parse as parseToml } from 'smol-toml';
import type { ActivityView } from '../domain/activity.js';
import { backoffDelay } from '../domain/backoff.js';
import { parseDuration } from '../domain/duration.js';
import { jsonTooDeep, TOO_DEEP_JSON, TOO_DEEP_TOML, tooDeepPath } from '../domain/nesting.js';
import type { RelayView } from '../domain/relay.js';
import { mergePatch } from '../domain/relay.js';
import { ApiClient, ApiError } from './api-client.js';
import { columnWidths, formatRow, print, printJson, table } from './output.js';

interface GlobalOpts {
  server?: string;
  token?: string;
  json?: boolean;
}

interface ConfigFlags {
  host?: string;
  schema?: string;
  fleet?: string;
  owner?: string;
  pubkey?: string;
  name?: string;
  description?: string;
  icon?: string;
  publicJoin?: boolean;
  groups?: boolean;
  management?: boolean;
  blossom?: boolean;
  push?: boolean;
  file?: string;
  set?: string[];
}

function readDocument(file: string): Record<string, unknown> {
  const text = readFileSync(file, 'utf8');
  const toml = file.endsWith('.toml');
  if (!toml && jsonTooDeep(text)) throw new Error(`${file}: ${TOO_DEEP_JSON}`);
  let doc: Record<string, unknown>;
  try {
    doc = (toml ? parseToml(text) : JSON.parse(text)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  const deep = toml ? tooDeepPath(doc) : undefined;
  if (deep) throw new Error(`${file}: ${String(deep[0])}: ${TOO_DEEP_TOML}`);
  return doc;
}

/** `--set info.name=Foo --set policy.public_join=true`: values parse as JSON when they can. */
function setPaths(doc: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  let out = doc;
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq < 1) throw new Error(`--set ${s}: expected path=value`);
    const path = s.slice(0, eq).split('.');
    const raw = s.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a bare string
    }
    const patch = path.reduceRight<unknown>((acc, key) => ({ [key]: acc }), value);
    out = mergePatch(out, patch) as Record<string, unknown>;
  }
  return out;
}

function bodyFromFlags(f: ConfigFlags): Record<string, unknown> {
  let body: Record<string, unknown> = f.file ? readDocument(f.file) : {};
  const patch: Record<string, unknown> = {};
  if (f.host !== undefined) patch.host = f.host;
  if (f.schema !== undefined) patch.schema = f.schema;
  if (f.fleet !== undefined) patch.fleet = f.fleet;
  if (f.owner !== undefined) patch.owner = f.owner;
  const info: Record<string, unknown> = {};
  if (f.pubkey !== undefined) info.pubkey = f.pubkey;
  if (f.name !== undefined) info.name = f.name;
  if (f.description !== undefined) info.description = f.description;
  if (f.icon !== undefined) info.icon = f.icon;
  if (Object.keys(info).length) patch.info = info;
  if (f.publicJoin !== undefined) patch.policy = { public_join: f.publicJoin };
  for (const section of ['groups', 'management', 'blossom', 'push'] as const) {
    if (f[section] !== undefined) patch[section] = { enabled: f[section] };
  }
  body = mergePatch(body, patch) as Record<string, unknown>;
  return setPaths(body, f.set ?? []);
}

/**
 * The relay fields each flag sets: an API error about a field is shown as the flag that sets it.
 * `info` itself is missing only when nothing set info.pubkey, the one info field without a default.
 */
const FLAG_OF_FIELD: Record<string, string> = {
  host: 'host',
  schema: 'schema',
  fleet: 'fleet',
  owner: 'owner',
  'info.pubkey': 'pubkey',
  info: 'pubkey',
  'info.name': 'name',
  'info.description': 'description',
  'info.icon': 'icon',
  'policy.public_join': 'publicJoin',
  'groups.enabled': 'groups',
  'management.enabled': 'management',
  'blossom.enabled': 'blossom',
  'push.enabled': 'push',
};

/**
 * Rewrites `info.pubkey: is required; host: …` as `--pubkey: is required; --host: …` for the fields
 * the user set with a flag or left out; a field a --file or --set gave keeps its path.
 */
function namingFlags(cmd: Command, err: unknown): unknown {
  if (!(err instanceof ApiError) || err.code !== 'invalid_request') return err;
  const typed = explicitFlags(cmd) as Record<string, unknown>;
  const message = err.message
    .split('; ')
    .map((part) => {
      const m = /^([\w.]+): (.*)$/.exec(part);
      const key = m ? FLAG_OF_FIELD[m[1]!] : undefined;
      if (!m || !key || (typed[key] === undefined && m[2] !== 'is required')) return part;
      const flag = cmd.options.find((o) => o.attributeName() === key && !o.negate);
      return flag ? `${flag.long}: ${m[2]}` : part;
    })
    .join('; ');
  return new ApiError(err.status, err.code, message);
}

const REQUIRED = '(required) ';

/** `required`: mark the flags a new relay needs (unless its --file or --set gives the field). */
function configOptions(cmd: Command, required = false): Command {
  const must = required ? REQUIRED : '';
  return cmd
    .option('--host <host>', `${must}hostname zooid serves the relay on (e.g. r1.example.com)`)
    .option('--schema <schema>', 'zooid schema (table prefix); immutable; derived from the id when omitted')
    .option('--fleet <fleet>', 'fleet the relay belongs to (default: default)')
    .option('--pubkey <hex>', `${must}owner's Nostr public key (info.pubkey), 64 hex`)
    .option('--name <name>', 'NIP-11 name (info.name)')
    .option('--description <text>', 'NIP-11 description')
    .option('--icon <url>', 'NIP-11 icon URL')
    .option('--public-join', 'let anyone join without an invite')
    .option('--no-public-join', 'require an invite')
    .option('--groups', 'enable NIP-29 groups')
    .option('--no-groups', 'disable NIP-29 groups')
    .option('--management', 'enable NIP-86 management')
    .option('--no-management', 'disable NIP-86 management')
    .option('--blossom', 'enable Blossom media')
    .option('--no-blossom', 'disable Blossom media')
    .option('--push', 'enable NIP-9a push')
    .option('--no-push', 'disable NIP-9a push')
    .option('-f, --file <file>', 'JSON or TOML document with the relay fields')
    .option('--set <path=value...>', 'set any field, e.g. --set roles.admin.can_manage=true');
}

/** Commander sets negatable booleans to their default; only flags the user typed count. */
function explicitFlags(cmd: Command): ConfigFlags {
  const opts = cmd.opts() as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(opts)) {
    if (cmd.getOptionValueSource(key) === 'cli') out[key] = opts[key];
  }
  return out as ConfigFlags;
}

const RELAY_COLUMNS = ['ID', 'HOST', 'FLEET', 'STATE', 'VERSION', 'SYNC', 'TARGET', 'LIVE', 'ERROR'];

/**
 * One relay as a table row: where zooid holds it (`A->B` while it moves from A to B, `-` on no
 * target), and its sync error first, else why it is not live.
 */
function relayRow(r: RelayView) {
  const { moving, target } = r.sync;
  return [
    r.id,
    r.config.host,
    r.fleet,
    r.config.inactive ? 'inactive' : 'active',
    r.version,
    r.sync.status,
    moving ? `${moving.from}->${moving.to}` : (target ?? '-'),
    r.live?.status ?? 'unknown',
    r.sync.error || r.live?.error || '',
  ];
}

function showRelay(r: RelayView, json?: boolean) {
  if (json) return printJson(r);
  print(table(RELAY_COLUMNS, [relayRow(r)]));
}

export function registerRelayCommands(program: Command): void {
  const globals = (cmd: Command) => cmd.optsWithGlobals() as GlobalOpts;
  const client = (cmd: Command) => new ApiClient(globals(cmd));
  const relay = program.command('relay').description('create, inspect and change relays on a running bosun');

  configOptions(
    relay
      .command('create [id]')
      .description('record a new relay (its secret is generated unless given in --file)')
      .option('--owner <owner>', 'tenant that owns the relay (admin only)'),
    true,
  ).action(async (id: string | undefined, _opts, cmd: Command) => {
    const body = bodyFromFlags(explicitFlags(cmd));
    if (id !== undefined) body.id = id;
    const created = await client(cmd)
      .request<RelayView>('POST', '/v1/relays', body)
      .catch((err) => Promise.reject(namingFlags(cmd, err)));
    showRelay(created, globals(cmd).json);
  });

  relay
    .command('list')
    .description('list relays you can see')
    .option('--owner <owner>')
    .option('--fleet <fleet>')
    .option('--status <status>', 'pending | synced | retrying | failed | pull')
    .option('--live <status>', 'live | stale | not_served | unexpected | wrong_identity | unknown')
    .option('--limit <n>', 'page size', '100')
    .option('--after <id>', 'start after this id')
    .action(async (opts: Record<string, string | undefined>, cmd: Command) => {
      const params = new URLSearchParams();
      for (const key of ['owner', 'fleet', 'status', 'live', 'limit', 'after']) {
        if (opts[key] !== undefined) params.set(key, opts[key]!);
      }
      const page = await client(cmd).request<{ relays: RelayView[]; next: string | null }>(
        'GET',
        `/v1/relays?${params}`,
      );
      if (globals(cmd).json) return printJson(page);
      print(table(RELAY_COLUMNS, page.relays.map(relayRow)));
      if (page.next) print(`(more: --after ${page.next})`);
    });

  relay
    .command('show <id>')
    .description("show one relay's config, sync state and live status (never its secret)")
    .action(async (id: string, _opts, cmd: Command) => {
      printJson(await client(cmd).request<RelayView>('GET', `/v1/relays/${encodeURIComponent(id)}`));
    });

  configOptions(
    relay.command('update <id>').description('change a relay (a JSON merge patch of the given fields)'),
  ).action(async (id: string, _opts, cmd: Command) => {
    const patch = bodyFromFlags(explicitFlags(cmd));
    if (Object.keys(patch).length === 0) throw new Error('nothing to update: give a flag, --set or --file');
    const updated = await client(cmd)
      .request<RelayView>('PATCH', `/v1/relays/${encodeURIComponent(id)}`, patch)
      .catch((err) => Promise.reject(namingFlags(cmd, err)));
    showRelay(updated, globals(cmd).json);
  });

  const action = (name: string, description: string, method: string, suffix: string) =>
    relay
      .command(`${name} <id>`)
      .description(description)
      .action(async (id: string, _opts, cmd: Command) => {
        showRelay(
          await client(cmd).request<RelayView>(method, `/v1/relays/${encodeURIComponent(id)}${suffix}`),
          globals(cmd).json,
        );
      });
  action('activate', 'serve the relay again', 'POST', '/activate');
  action('deactivate', 'stop serving the relay (its config and data are kept)', 'POST', '/deactivate');
  action('resync', 'ask for a fresh sync to zooid (clears a failed state)', 'POST', '/sync');
  action('delete', 'delete the relay (zooid keeps its data tables)', 'DELETE', '');

  relay
    .command('rotate-secret <id>')
    .description('give the relay a new secret; agents keep the old one until the grace period ends')
    .option('--grace <duration>', 'how long the old secret stays valid, e.g. 0s, 10m, 24h, 7d', '24h')
    .action(async (id: string, opts: { grace: string }, cmd: Command) => {
      const ms = parseDuration(opts.grace);
      if (ms === null || ms % 1000 !== 0) {
        throw new Error(`--grace ${opts.grace}: expected whole seconds or more, such as 0s, 10m, 24h or 7d`);
      }
      showRelay(
        await client(cmd).request<RelayView>('POST', `/v1/relays/${encodeURIComponent(id)}/rotate-secret`, {
          grace_seconds: ms / 1000,
        }),
        globals(cmd).json,
      );
    });

  relay
    .command('activities [id]')
    .description('show the activity log, of one relay or all you can see')
    .option('--after <n>', 'only activities after this id', '0')
    .option('--limit <n>', 'page size', '100')
    .option('--follow', 'then print new activities as they happen (Ctrl-C to stop)')
    .action(
      async (
        id: string | undefined,
        opts: { after: string; limit: string; follow?: boolean },
        cmd: Command,
      ) => {
        const api = client(cmd);
        const json = globals(cmd).json;
        const params = new URLSearchParams({ after: opts.after, limit: opts.limit });
        if (id) params.set('relay', id);
        const page = await api.request<{ activities: ActivityView[]; next: number }>(
          'GET',
          `/v1/activities?${params}`,
        );
        if (json) for (const a of page.activities) print(JSON.stringify(a));
        else print(table(ACTIVITY_HEADERS, page.activities.map(activityRow), ACTIVITY_MIN_WIDTHS));
        if (!opts.follow) return;
        // The rows above fixed the column widths; later rows keep them (a longer cell pushes its row).
        const widths = columnWidths(ACTIVITY_HEADERS, page.activities.map(activityRow), ACTIVITY_MIN_WIDTHS);
        await followActivities(api, page.next, (a) => {
          if (id && a.relay_id !== id) return;
          print(json ? JSON.stringify(a) : formatRow(activityRow(a), widths));
        });
      },
    );
}

const ACTIVITY_HEADERS = ['ID', 'TIME', 'TYPE', 'RELAY', 'ACTOR', 'DETAIL'];
/** Room for the usual cells, so rows that --follow prints later line up with the first ones. */
const ACTIVITY_MIN_WIDTHS = [6, 24, 19, 16, 16];

function activityRow(a: ActivityView): string[] {
  return [String(a.id), a.created_at, a.type, a.relay_id, a.actor, JSON.stringify(a.payload)];
}

/**
 * Follows the activity stream the dashboard reads (GET /v1/activities/stream, Server-Sent Events)
 * from `after`. The server ends a stream now and then; it is reopened from the last id seen, after
 * a pause that doubles while the server stays unreachable.
 */
async function followActivities(api: ApiClient, after: number, onActivity: (a: ActivityView) => void) {
  let cursor = after;
  let failures = 0;
  for (;;) {
    try {
      const body = await api.stream(`/v1/activities/stream?after=${cursor}`);
      failures = 0;
      const parser = createParser({
        onEvent: (event) => {
          // Activities are unnamed events; `ready` (end of the backlog) carries no activity.
          if (event.event !== undefined && event.event !== 'message') return;
          const activity = JSON.parse(event.data) as ActivityView;
          cursor = activity.id;
          onActivity(activity);
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of body) parser.feed(decoder.decode(chunk, { stream: true }));
    } catch (err) {
      // Refusals (a revoked token) end the command; a lost connection is retried.
      if (err instanceof ApiError && err.code !== 'unreachable') throw err;
      if (++failures > 8) throw err;
      process.stderr.write(`bosun: activity stream interrupted (${(err as Error).message}); reconnecting\n`);
      const wait = backoffDelay({ baseMs: 1_000, capMs: 30_000 }, failures);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
