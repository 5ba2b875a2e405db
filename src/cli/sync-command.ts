import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { renderApply, renderPlan } from '../domain/fleet/plan.js';
import { ApiSyncer } from '../fleet/api-syncer.js';
import {
  type AnySyncError,
  formatSyncError,
  SyncApiError,
  syncErrorJson,
  toSyncError,
} from '../fleet/errors.js';
import { readFleetDir } from '../fleet/files.js';
import { type WaitOutcome, type WaitProgress, waitForSync } from '../fleet/wait.js';
import { print, printJson } from './output.js';

interface GlobalOpts {
  server?: string;
  token?: string;
  json?: boolean;
}

interface SyncOpts {
  plan?: boolean;
  prune?: boolean;
  wait?: boolean;
  waitTimeout: string;
  waitInterval: string;
}

/** Exit statuses of `bosun sync --plan`, as `terraform plan -detailed-exitcode`. */
export const EXIT_NO_CHANGES = 0;
export const EXIT_ERROR = 1;
export const EXIT_CHANGES = 2;

/** The same precedence as the other client commands: --token, BOSUN_TOKEN, BOSUN_TOKEN_FILE, ./data/admin-token. */
function resolveToken(opts: GlobalOpts, env = process.env): string | undefined {
  const fromFile = (path: string | undefined) =>
    path && existsSync(path) ? readFileSync(path, 'utf8').trim() || undefined : undefined;
  return opts.token || env.BOSUN_TOKEN || fromFile(env.BOSUN_TOKEN_FILE) || fromFile('data/admin-token');
}

const seconds = (value: string, flag: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${flag}: must be a positive number, got ${JSON.stringify(value)}`);
  return n;
};

function describeProgress(p: WaitProgress): string {
  return `waiting for zooid: ${p.synced.length}/${p.total} synced, ${p.failed.length} failed, ${p.pending.length} pending`;
}

/**
 * `bosun sync <dir>`: makes bosun match a fleet directory through the API syncer. `--plan` shows
 * the plan and exits 0 (no changes), 2 (changes) or 1 (error); without it the plan is applied in
 * one transaction. Errors are one line naming the file/line or relay (`--json`: one object).
 */
export function registerSyncCommand(program: Command): void {
  program
    .command('sync <dir>')
    .description('make bosun match a fleet directory (fleet.toml + one <relay-id>.toml per relay)')
    .option('--plan', 'only show what would change: exit 0 = no changes, 2 = changes, 1 = error')
    .option('--prune', 'delete orphaned relays (in the fleet in bosun, no longer in the files)')
    .option('--wait', 'after applying, follow the scheduled zooid syncs until each is synced or failed')
    .option('--wait-timeout <seconds>', 'stop waiting (exit 1) after this many seconds', '300')
    .option('--wait-interval <seconds>', 'poll the sync state this often', '1')
    .action(async (dir: string, opts: SyncOpts, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as GlobalOpts;
      try {
        process.exitCode = await runSync(dir, opts, globals);
      } catch (err) {
        const e: AnySyncError = toSyncError(err, dir, 'bosun sync');
        if (globals.json) printJson({ error: syncErrorJson(e) });
        else process.stderr.write(`bosun: ${formatSyncError(e)}\n`);
        process.exitCode = EXIT_ERROR;
      }
    });
}

async function runSync(dir: string, opts: SyncOpts, globals: GlobalOpts): Promise<number> {
  const json = globals.json ?? false;
  const waitTimeout = seconds(opts.waitTimeout, '--wait-timeout');
  const waitInterval = seconds(opts.waitInterval, '--wait-interval');
  const fleet = readFleetDir(dir);
  const server = (globals.server || process.env.BOSUN_SERVER || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const token = resolveToken(globals);
  if (!token) {
    const cause = Object.assign(
      new Error(
        'no token: pass --token, or set BOSUN_TOKEN or BOSUN_TOKEN_FILE (a local install writes data/admin-token)',
      ),
      { code: 'no_token' },
    );
    throw new SyncApiError(`fleet/${fleet.name}`, cause);
  }
  const syncer = new ApiSyncer({ server, token, fleet, prune: opts.prune ?? false });

  if (opts.plan) {
    const plan = await syncer.plan();
    if (json) printJson(plan);
    else print(renderPlan(plan));
    return plan.changes ? EXIT_CHANGES : EXIT_NO_CHANGES;
  }

  await syncer.sync();
  const result = syncer.lastResult();
  if (!json) print(renderApply(result));
  let outcome: WaitOutcome | undefined;
  const scheduled = syncer.getRelaysScheduled();
  if (opts.wait && scheduled.length > 0) {
    let last = '';
    outcome = await waitForSync({
      scheduled,
      poll: () => syncer.syncStatus(),
      intervalMs: waitInterval * 1000,
      timeoutMs: waitTimeout * 1000,
      onProgress: (p) => {
        const line = describeProgress(p);
        if (!json && line !== last) print(line);
        last = line;
      },
    });
    if (!json) {
      for (const f of outcome.failed) print(`  ${f.id}: sync failed: ${f.error}`);
      if (outcome.timedOut)
        print(`gave up after ${waitTimeout}s: ${outcome.pending.join(', ')} still pending`);
      else if (outcome.failed.length === 0) print(`all ${outcome.total} scheduled relays synced`);
    }
  }
  if (json) printJson(outcome ? { ...result, wait: outcome } : result);
  return outcome && (outcome.timedOut || outcome.failed.length > 0) ? EXIT_ERROR : 0;
}
