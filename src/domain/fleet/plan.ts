import { type FieldChange, SENSITIVE } from './diff.js';
import type { FleetState, RelayState } from './state.js';

/**
 * create: not in bosun (or deleted) · update: differs from the files · unchanged · orphaned: in the
 * fleet in bosun, not in the files, left alone · delete: an orphan that `--prune` deletes.
 */
export type PlanAction = 'create' | 'update' | 'unchanged' | 'orphaned' | 'delete';

export interface PlanEntry {
  name: string;
  id: string;
  action: PlanAction;
  file?: string;
  /** create: every field; update: what differs. Secrets appear only as "(sensitive)". */
  changes?: FieldChange[];
}

export interface FleetPlan {
  fleet: string;
  prune: boolean;
  /** The fleet config version the plan was computed against (0: never applied). */
  base_version: number;
  relays: PlanEntry[];
  summary: Record<PlanAction, number>;
  /** True when applying would create, update or delete a relay, or change the fleet's target. */
  changes: boolean;
  /**
   * The fleet's target (a name, `default`, or null: pull-only) when the files change it; `moves`:
   * how many of its relays live on other targets (`from`), which push sync moves to `after`.
   */
  target?: {
    before: string | null;
    after: string | null;
    moves?: { relays: number; from: string[] };
  };
}

/** A relay whose zooid sync this apply enqueued (created or updated), to follow with `--wait`. */
export interface ScheduledRelay extends RelayState {
  version: number;
}

export interface FleetApplyResult {
  plan: FleetPlan;
  /** The fleet config version now current (the new one, or the previous one when nothing changed). */
  state: FleetState | null;
  /** True when this apply recorded a new fleet config version. */
  written: boolean;
  scheduled: ScheduledRelay[];
  /** Orphans left in place (name → id). */
  orphans: Record<string, string>;
  /** Orphans deleted by `--prune` (name → id). */
  pruned: Record<string, string>;
  /** Activities appended (0 when nothing changed). */
  activities: number;
}

export function summarize(entries: PlanEntry[]): Record<PlanAction, number> {
  const summary: Record<PlanAction, number> = { create: 0, update: 0, unchanged: 0, orphaned: 0, delete: 0 };
  for (const e of entries) summary[e.action]++;
  return summary;
}

const show = (v: unknown) => (v === undefined ? '(none)' : v === SENSITIVE ? SENSITIVE : JSON.stringify(v));

/** The plan for humans: one line per relay that changes or is orphaned, field diffs under updates. */
export function renderPlan(plan: FleetPlan): string {
  const s = plan.summary;
  const lines = [
    `fleet ${plan.fleet}: ${s.create} to create, ${s.update} to update, ${s.delete} to delete, ` +
      `${s.unchanged} unchanged, ${s.orphaned} orphaned`,
  ];
  if (plan.target) lines.push(...targetLines(plan.target));
  for (const e of plan.relays) {
    const where = e.file ? ` (${e.file})` : '';
    switch (e.action) {
      case 'create': {
        const host = e.changes?.find((c) => c.field === 'host')?.after;
        lines.push(`  + ${e.id}${where}: create${host ? ` on ${host}` : ''}`);
        break;
      }
      case 'update':
        lines.push(`  ~ ${e.id}${where}: update`);
        for (const c of e.changes ?? [])
          lines.push(`      ${c.field}: ${show(c.before)} -> ${show(c.after)}`);
        break;
      case 'delete':
        lines.push(`  - ${e.id}: delete (in fleet ${plan.fleet} in bosun, not in the files)`);
        break;
      case 'orphaned':
        lines.push(
          `  ! ${e.id}: orphaned (in fleet ${plan.fleet} in bosun, not in the files; --prune deletes it)`,
        );
        break;
      case 'unchanged':
        break;
    }
  }
  if (!plan.changes) lines.push('no changes: bosun matches the files');
  return lines.join('\n');
}

const targetName = (t: string | null) => (t === null ? 'none (pull-only)' : t);

function targetLines(target: NonNullable<FleetPlan['target']>): string[] {
  const lines = [`  ~ target: ${targetName(target.before)} -> ${targetName(target.after)}`];
  const { moves } = target;
  if (moves && target.after !== null) {
    const from = moves.from.join(', ');
    lines.push(
      `      moves ${moves.relays} relay${moves.relays === 1 ? '' : 's'} from ${from} to ${target.after}; ` +
        `zooid keeps the data of a relay deleted from ${from}`,
    );
  }
  if (target.after === null && target.before !== null)
    lines.push(
      '      its relays stay on the targets they are on: bosun no longer pushes them, nor deletes them there',
    );
  return lines;
}

export function renderApply(result: FleetApplyResult): string {
  const s = result.plan.summary;
  const lines: string[] = [];
  const { target } = result.plan;
  if (target) lines.push(...targetLines(target));
  for (const e of result.plan.relays) {
    if (e.action === 'create') lines.push(`  + ${e.id}: created`);
    else if (e.action === 'update')
      lines.push(`  ~ ${e.id}: updated (${(e.changes ?? []).map((c) => c.field).join(', ')})`);
    else if (e.action === 'delete') lines.push(`  - ${e.id}: deleted`);
  }
  const version = result.state ? `${result.state.config_id}` : 'none';
  lines.unshift(
    result.plan.changes || result.written
      ? `applied fleet ${result.plan.fleet} (${version}): ${s.create} created, ${s.update} updated, ` +
          `${s.delete} deleted, ${s.unchanged} unchanged`
      : `fleet ${result.plan.fleet} is up to date (${version}): nothing to apply`,
  );
  const orphans = Object.entries(result.orphans);
  if (orphans.length) {
    lines.push(
      `orphaned (kept; --prune deletes them): ${orphans.map(([name, id]) => (name === id ? id : `${name} (${id})`)).join(', ')}`,
    );
  }
  return lines.join('\n');
}
