/**
 * What applying a declarative fleet (src/fleet) would change: computed from the store's current
 * relays and the fleet's last State, with the same rules as the single-relay commands
 * (src/domain/relay-changes.ts). Command.planFleet shows it; Command.applyFleet commits it.
 */
import type { ActivityDraft } from '../domain/activity.js';
import { BosunError, invalid } from '../domain/errors.js';
import { diffDocuments, mergeDiff } from '../domain/fleet/diff.js';
import {
  type FleetApplyResult,
  type FleetPlan,
  type PlanEntry,
  type ScheduledRelay,
  summarize,
} from '../domain/fleet/plan.js';
import type { RelayFileFields, ResolvedFleet, ResolvedRelay } from '../domain/fleet/spec.js';
import {
  type FleetState,
  fleetConfigId,
  type RelayState,
  relayChecksum,
  relayConfigId,
  STATE_VERSION,
  sameState,
} from '../domain/fleet/state.js';
import { canSee, type Principal } from '../domain/principal.js';
import { editableDocument, jsonEqual, type Relay, schemaFromId } from '../domain/relay.js';
import {
  conflictError,
  createdRelay,
  deletedRelay,
  draftNewRelay,
  patchedRelay,
  resyncedRelay,
} from '../domain/relay-changes.js';
import {
  DEFAULT_TARGET,
  type FleetTarget,
  fleetTargetName,
  fleetTargetOf,
  movesOf,
  pushedElsewhere,
  unknownTarget,
} from '../domain/target.js';
import type { FleetStateRecord, RelayHead, RelayWrite, Store, WriteBatch } from '../store/port.js';
import type { StoreConflictError } from '../store/write-errors.js';
import { hostOrder } from './host-order.js';

export interface FleetChanges {
  result: FleetApplyResult;
  /** What to commit; null when the store already holds this fleet exactly. */
  batch: WriteBatch | null;
  /** The fleet version the changes were computed from. */
  baseVersion: number;
  /** Names the relay of the files behind a unique-index conflict met at commit. */
  conflict: (err: StoreConflictError) => BosunError;
}

/** What one apply is: by whom, to which fleet, and when. */
interface Apply {
  store: Store;
  principal: Principal;
  fleet: string;
  prune: boolean;
  now: number;
  /** The fleet's target as fleet.toml changes it; null when it stays. */
  targetChange: TargetChange | null;
}

/** A change of the fleet's push target, shown in the plan and written with the relays. */
interface TargetChange {
  before: string | null;
  after: string | null;
  target: FleetTarget;
}

/** Where each relay of the files ends up: its entry in the new State. */
interface Final {
  name: string;
  resource: string;
  /** Unknown for a file left unparsed (its relay and schema are as the last State applied). */
  schema: string | undefined;
  state: RelayState;
  /** Set when the relay was read (and maybe changed) rather than found unchanged by checksum. */
  relay?: Relay;
  changed: boolean;
}

/** A relay of the files, with its outcome when the checksum already showed it unchanged. */
interface Slot {
  spec: ResolvedRelay;
  unchanged?: Final;
  fields?: RelayFileFields;
}

/** What the apply writes and shows, gathered phase by phase. */
interface Gathered {
  entries: PlanEntry[];
  finals: Final[];
  deletes: RelayWrite[];
  updates: RelayWrite[];
  inserts: RelayWrite[];
  deleteActs: ActivityDraft[];
  updateActs: ActivityDraft[];
  insertActs: ActivityDraft[];
  /** Orphans left in place, and relays pruned: name in the files (or id) -> id. */
  orphans: Record<string, string>;
  pruned: Record<string, string>;
}

/**
 * The writes, activities, plan and State of applying `resolved` to what the store holds now.
 * Reads only; Command.applyFleet commits the batch under its locks and retries.
 *
 * A relay whose version is the one the fleet's last State recorded, and whose desired config
 * (from the files) has that State's checksum, is unchanged without reading its row: in a steady
 * fleet only the few changed relays are read and compared field by field. Every other relay
 * goes through the same rules as createRelay / updateRelay.
 */
export async function computeFleetChanges(
  store: Store,
  principal: Principal,
  fleet: string,
  resolved: ResolvedFleet,
  prune: boolean,
  now: number,
): Promise<FleetChanges> {
  const targetChange = await planTarget(store, principal, fleet, resolved.target);
  const apply: Apply = { store, principal, fleet, prune, now, targetChange };
  const latest = await store.latestFleetState(fleet);
  const heads = new Map((await store.relayHeads(fleet)).map((h) => [h.id, h]));
  const gathered: Gathered = {
    entries: [],
    finals: [],
    deletes: [],
    updates: [],
    inserts: [],
    deleteActs: [],
    updateActs: [],
    insertActs: [],
    orphans: {},
    pruned: {},
  };

  const { slots, toRead } = matchRecorded(apply, resolved, latest, heads, gathered.finals);
  const orphanHeads = orphansOf(apply, resolved, heads);
  const rows = new Map(
    (await store.getRelays(prune ? [...toRead, ...orphanHeads.map((h) => h.id)] : toRead)).map((r) => [
      r.id,
      r,
    ]),
  );
  for (const slot of slots) relayChange(apply, slot, rows.get(slot.spec.id), gathered);
  checkSchemas(gathered.finals);
  await checkHosts(apply, gathered.finals, rows, new Set(prune ? orphanHeads.map((h) => h.id) : []));
  orphanChanges(apply, orphanHeads, rows, latest, gathered);
  if (targetChange && pushedElsewhere(fleetTargetOf(targetChange.before), targetChange.target))
    await resyncMoved(apply, heads, gathered);
  return assemble(apply, latest, gathered);
}

/**
 * Phase 4b: a fleet pushed to another target from now on syncs again each live relay this apply
 * does not write anyway, so push sync moves it there (creates it, then deletes it from the old one).
 */
async function resyncMoved(
  { store, principal, now }: Apply,
  heads: Map<string, RelayHead>,
  out: Gathered,
): Promise<void> {
  const written = new Set([...out.deletes, ...out.updates, ...out.inserts].map((w) => w.relay.id));
  const ids = [...heads.keys()].filter((id) => !written.has(id));
  for (const previous of await store.getRelays(ids)) {
    if (previous.deletedAt !== null) continue;
    const { relay, activity } = resyncedRelay(previous, principal, now);
    out.updates.push({ kind: 'update', relay, previous });
    out.updateActs.push(activity);
  }
}

/**
 * Phase 1: each relay of the files against the last State. One still at the recorded version whose
 * file (bytes, or parsed config) has the recorded checksum is unchanged without reading its row;
 * every other one is to be read.
 */
function matchRecorded(
  { principal, fleet }: Apply,
  resolved: ResolvedFleet,
  latest: FleetStateRecord | undefined,
  heads: Map<string, RelayHead>,
  finals: Final[],
): { slots: Slot[]; toRead: string[] } {
  const previous = new Map((latest?.state.relays ?? []).map((r) => [r.id, r]));
  const slots: Slot[] = [];
  const toRead: string[] = [];
  for (const spec of resolved.relays) {
    const head = heads.get(spec.id);
    const prev = previous.get(spec.id);
    // The relay is still at the version the last State applied, and the caller may see it.
    const asRecorded =
      head !== undefined &&
      prev !== undefined &&
      prev.config_id === relayConfigId({ id: head.id, version: head.version }) &&
      (principal.role !== 'tenant' || head.owner === principal.owner);
    const sourceState = (checksum: string): RelayState => ({
      name: spec.name,
      id: spec.id,
      config_id: prev!.config_id,
      checksum,
      ...(spec.source !== undefined ? { source: spec.source } : {}),
    });
    if (asRecorded && !spec.fields && spec.source !== undefined && spec.source === prev.source) {
      // The same bytes that State applied, to the same relay version: unchanged, unparsed.
      const final: Final = {
        name: spec.name,
        resource: spec.resource,
        schema: undefined,
        state: sourceState(prev.checksum),
        changed: false,
      };
      finals.push(final);
      slots.push({ spec, unchanged: final });
      continue;
    }
    const fields = spec.fields ?? spec.load!();
    const { id, owner, secret, schema, inactive, host, ...sections } = fields;
    if (
      asRecorded &&
      (owner === undefined || owner === head.owner) &&
      secret === undefined &&
      sections.livekit.api_secret === ''
    ) {
      const config = {
        host,
        schema: schema ?? schemaFromId(head.id),
        inactive: inactive ?? false,
        ...sections,
      };
      const checksum = relayChecksum({ id: head.id, owner: head.owner, fleet, config, secret: '' });
      if (checksum === prev.checksum) {
        const final: Final = {
          name: spec.name,
          resource: spec.resource,
          schema: config.schema,
          state: sourceState(checksum),
          changed: false,
        };
        finals.push(final);
        slots.push({ spec, unchanged: final });
        continue;
      }
    }
    toRead.push(spec.id);
    slots.push({ spec, fields });
  }
  return { slots, toRead };
}

/** The fleet's relays that no file names any more (those the caller may see). */
function orphansOf(
  { principal }: Apply,
  resolved: ResolvedFleet,
  heads: Map<string, RelayHead>,
): RelayHead[] {
  const inFiles = new Set(resolved.relays.map((r) => r.id));
  return [...heads.values()].filter(
    (h) => !inFiles.has(h.id) && (principal.role !== 'tenant' || h.owner === principal.owner),
  );
}

/**
 * Phase 2: one relay of the files, against its row (`existing`): unchanged, an update or a create,
 * by the rules of updateRelay / createRelay. An error names the relay's file.
 */
function relayChange(
  { principal, fleet, now }: Apply,
  { spec, unchanged, fields }: Slot,
  existing: Relay | undefined,
  out: Gathered,
): void {
  if (unchanged || !fields) {
    out.entries.push(entry(spec, 'unchanged'));
    return;
  }
  try {
    const { id: _id, owner, secret, schema, inactive, host, ...sections } = fields;
    if (existing && existing.deletedAt === null) {
      if (!canSee(principal, existing)) {
        throw new BosunError(
          'id_conflict',
          `id: relay ${JSON.stringify(spec.id)} already exists and belongs to another tenant`,
        );
      }
      if (owner !== undefined && owner !== existing.owner) {
        throw invalid(
          `owner: cannot be changed; relay ${JSON.stringify(spec.id)} is owned by ${existing.owner}`,
        );
      }
      if (secret !== undefined && secret !== existing.secret) {
        throw invalid(
          'secret: differs from the stored secret; sync never rotates a secret (omit it to keep the stored one)',
        );
      }
      const config = {
        host,
        schema: schema ?? existing.config.schema,
        inactive: inactive ?? false,
        ...sections,
      };
      if (existing.fleet === fleet && jsonEqual(existing.config, config)) {
        out.entries.push(entry(spec, 'unchanged'));
        out.finals.push(finalOf(spec, existing, false));
        return;
      }
      const desired = mergeDiff(editableDocument(existing), { fleet, ...config });
      const update = patchedRelay(existing, desired, principal, now)!;
      out.updates.push({ kind: 'update', relay: update.relay, previous: existing });
      out.updateActs.push(update.activity);
      out.entries.push({
        ...entry(spec, 'update'),
        changes: diffDocuments(documentOf(existing), documentOf(update.relay)),
      });
      out.finals.push(finalOf(spec, update.relay, true));
    } else {
      const { relay, activity } = createdRelay(
        draftNewRelay(principal, { ...fields, fleet }),
        existing,
        principal,
        now,
      );
      if (existing) out.updates.push({ kind: 'update', relay, previous: existing });
      else out.inserts.push({ kind: 'insert', relay });
      (existing ? out.updateActs : out.insertActs).push(activity);
      const shown = { ...documentOf(relay), ...(secret !== undefined ? { secret } : {}) };
      out.entries.push({ ...entry(spec, 'create'), changes: diffDocuments(undefined, shown) });
      out.finals.push(finalOf(spec, relay, true));
    }
  } catch (err) {
    if (err instanceof BosunError && err.resource === undefined) {
      throw new BosunError(err.code, err.message, spec.resource);
    }
    throw err;
  }
}

function finalOf(spec: ResolvedRelay, relay: Relay, changed: boolean): Final {
  return {
    name: spec.name,
    resource: spec.resource,
    schema: relay.config.schema,
    state: {
      name: spec.name,
      id: relay.id,
      config_id: relayConfigId(relay),
      checksum: relayChecksum(relay),
      ...(spec.source !== undefined ? { source: spec.source } : {}),
    },
    relay,
    changed,
  };
}

/** Phase 3a: no two relays of the files share a schema. */
function checkSchemas(finals: Final[]): void {
  const schemas = new Map<string, string>();
  for (const f of finals) {
    if (f.schema === undefined) continue;
    const other = schemas.get(f.schema);
    if (other)
      throw invalid(`schema: ${JSON.stringify(f.schema)} is also the schema of ${other}`, f.resource);
    schemas.set(f.schema, f.resource);
  }
}

/**
 * Phase 3b: a host that a relay this apply leaves in place already uses (an unchanged file's, or
 * one outside the fleet) is refused now, in the plan too, rather than at commit.
 */
async function checkHosts(
  { store }: Apply,
  finals: Final[],
  rows: Map<string, Relay>,
  leaving: Set<string>,
): Promise<void> {
  const finalsById = new Map(finals.map((f) => [f.state.id, f]));
  for (const f of finals) {
    if (!f.changed || !f.relay) continue;
    const { host } = f.relay.config;
    const before = rows.get(f.relay.id);
    if (before && before.deletedAt === null && before.config.host === host) continue;
    for (const user of await store.relaysUsing({ host })) {
      if (user.id === f.relay.id || leaving.has(user.id)) continue;
      const other = finalsById.get(user.id);
      if (other?.relay && other.relay.config.host !== host) continue; // it moves away in this apply
      if (other)
        throw invalid(`host: ${JSON.stringify(host)} is also the host of ${other.resource}`, f.resource);
      throw new BosunError(
        'host_conflict',
        `host: ${JSON.stringify(host)} is already used by another relay`,
        f.resource,
      );
    }
  }
}

/** Phase 4: relays of the fleet that no file names are deleted (with prune) or left as orphans. */
function orphanChanges(
  { principal, prune, now }: Apply,
  orphanHeads: RelayHead[],
  rows: Map<string, Relay>,
  latest: FleetStateRecord | undefined,
  out: Gathered,
): void {
  const previousNames = new Map((latest?.state.relays ?? []).map((r) => [r.id, r.name]));
  for (const head of orphanHeads) {
    const name = previousNames.get(head.id) ?? head.id;
    const relay = rows.get(head.id);
    if (prune && relay && relay.deletedAt === null) {
      const gone = deletedRelay(relay, principal, now);
      out.deletes.push({ kind: 'update', relay: gone.relay, previous: relay });
      out.deleteActs.push(gone.activity);
      out.pruned[name] = head.id;
      out.entries.push({ name, id: head.id, action: 'delete' });
    } else {
      out.orphans[name] = head.id;
      out.entries.push({ name, id: head.id, action: 'orphaned' });
    }
  }
}

/**
 * The target change as the plan shows it, with the relays that move: the fleet's live relays
 * written by this apply (changed, or resynced for the new target) that live on another target.
 */
function shownTarget(
  fleet: string,
  change: TargetChange,
  gathered: Gathered,
): NonNullable<FleetPlan['target']> {
  const relays = [...gathered.updates, ...gathered.inserts]
    .map((w) => w.relay)
    .filter((r) => r.deletedAt === null && r.fleet === fleet);
  const moves = movesOf(relays, change.target);
  return {
    before: change.before,
    after: change.after,
    ...(moves.relays > 0 ? { moves: { relays: moves.relays, from: moves.from } } : {}),
  };
}

/** Phase 5: the plan, the new State, and the batch that writes them (none when nothing differs). */
function assemble(
  { principal, fleet, prune, now, targetChange }: Apply,
  latest: FleetStateRecord | undefined,
  gathered: Gathered,
): FleetChanges {
  const { entries, finals, orphans, pruned } = gathered;
  const baseVersion = latest?.version ?? 0;
  const summary = summarize(entries);
  const plan: FleetPlan = {
    fleet,
    prune,
    base_version: baseVersion,
    relays: entries,
    summary,
    changes: summary.create + summary.update + summary.delete > 0 || targetChange !== null,
    ...(targetChange ? { target: shownTarget(fleet, targetChange, gathered) } : {}),
  };
  const version = baseVersion + 1;
  const state: FleetState = {
    version: STATE_VERSION,
    config_id: fleetConfigId(fleet, version),
    fleet_id: fleet,
    fleet_version: version,
    owner: principal.role === 'tenant' ? principal.owner : null,
    relays: finals.map((f) => f.state).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    orphans,
  };
  const relays = [...gathered.deletes, ...hostOrder(gathered.updates), ...gathered.inserts];
  const write = relays.length > 0 || !sameState(latest?.state, state);
  const scheduled: ScheduledRelay[] = finals
    .filter((f) => f.changed)
    .map((f) => ({ ...f.state, version: f.relay!.version }));
  const result: FleetApplyResult = {
    plan,
    state: write ? state : (latest?.state ?? null),
    written: write,
    scheduled,
    orphans,
    pruned,
    activities: 0,
  };
  const batch: WriteBatch | null =
    write || targetChange
      ? {
          relays,
          activities: [...gathered.deleteActs, ...gathered.updateActs, ...gathered.insertActs],
          fleetStates: write
            ? [
                {
                  previousVersion: baseVersion,
                  record: {
                    fleet,
                    version,
                    configId: state.config_id,
                    owner: state.owner,
                    actor: principal.actor,
                    createdAt: now,
                    state,
                  },
                },
              ]
            : [],
          // The fleet's target changes with its relays, in the same transaction.
          fleets: targetChange ? [{ fleet, target: targetChange.target, at: now }] : [],
        }
      : null;
  return { result, batch, baseVersion, conflict: conflictNamer(finals, fleet) };
}

/** A host/schema/id taken outside the fleet: name the relay of the files that wants it. */
function conflictNamer(finals: Final[], fleet: string): (err: StoreConflictError) => BosunError {
  return (err) => {
    const culprit = finals.find(
      (f) =>
        f.changed &&
        f.relay &&
        (err.field === 'host'
          ? f.relay.config.host === err.value
          : err.field === 'schema'
            ? f.relay.config.schema === err.value
            : f.relay.id === err.value),
    );
    const e = conflictError(err);
    return new BosunError(e.code, e.message, culprit?.resource ?? `fleet/${fleet}`);
  };
}

/**
 * The fleet's target as the files set it, when that differs from the one it has (a fleet without
 * a row has `default`); null when the files leave it alone or it is already so. An unknown
 * target is refused here, in the plan too; only an admin may change a fleet's target.
 */
async function planTarget(
  store: Store,
  principal: Principal,
  fleet: string,
  wanted: string | null | undefined,
): Promise<TargetChange | null> {
  if (wanted === undefined) return null;
  const target = fleetTargetOf(wanted);
  const after = fleetTargetName(target);
  const row = await store.getFleet(fleet);
  const before = row ? fleetTargetName(row.target) : DEFAULT_TARGET;
  if (before === after) return null;
  if (target.kind === 'target' && !(await store.getTarget(target.name))) {
    throw unknownTarget(target.name, `fleet/${fleet}`);
  }
  if (principal.role !== 'admin') {
    throw new BosunError(
      'forbidden',
      `target: changing fleet ${fleet}'s target (${before ?? 'none'} -> ${after ?? 'none'}) needs an admin token`,
      `fleet/${fleet}`,
    );
  }
  return { before, after, target };
}

/** What a plan diff shows of a relay: who owns it, its fleet and its config (no secret). */
function documentOf(relay: Relay): Record<string, unknown> {
  return { owner: relay.owner, fleet: relay.fleet, ...relay.config };
}

function entry(spec: ResolvedRelay, action: PlanEntry['action']): PlanEntry {
  return { name: spec.name, id: spec.id, action, ...(spec.file !== undefined ? { file: spec.file } : {}) };
}
