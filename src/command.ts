import type { z } from 'zod';
import type { Activity, ActivityDraft, ActivityType } from './domain/activity.js';
import type { Clock } from './domain/clock.js';
import {
  credentialFingerprint,
  MAX_ROTATION_GRACE_MS,
  secretDigest,
  unexpired,
} from './domain/credentials.js';
import { BosunError, invalid, relayNotFound, truncateError } from './domain/errors.js';
import { diffDocuments, mergeDiff } from './domain/fleet/diff.js';
import {
  type FleetApplyResult,
  type FleetPlan,
  type PlanEntry,
  type ScheduledRelay,
  summarize,
} from './domain/fleet/plan.js';
import type { RelayFileFields, ResolvedFleet, ResolvedRelay } from './domain/fleet/spec.js';
import {
  type FleetState,
  fleetConfigId,
  type RelayState,
  relayChecksum,
  relayConfigId,
  STATE_VERSION,
  sameState,
} from './domain/fleet/state.js';
import { KeyedMutex } from './domain/keyed-mutex.js';
import { generateSecretKey } from './domain/keys.js';
import type { Principal } from './domain/principal.js';
import {
  applyRelayPatch,
  createRelaySchema,
  editableDocument,
  FLEET,
  generateRelayId,
  jsonEqual,
  parseOrThrow,
  type Relay,
  type RelayConfig,
  type SyncState,
  schemaFromId,
} from './domain/relay.js';
import type { Notifier } from './notifier.js';
import {
  type RelayWrite,
  StaleFleetStateError,
  StaleWriteError,
  type Store,
  StoreConflictError,
  type WriteBatch,
} from './store/port.js';
import { RelayCache } from './store/relay-cache.js';

export interface CommandResult {
  relay: Relay;
  /** The appended activity; null when the request changed nothing. */
  activity: Activity | null;
}

const MAX_CAS_ATTEMPTS = 8;

const freshSync = (prev?: SyncState): SyncState => ({
  status: 'pending',
  error: '',
  attempts: 0,
  nextAttemptAt: null,
  syncedVersion: prev?.syncedVersion ?? 0,
  lastSyncedAt: prev?.lastSyncedAt ?? null,
  ackedConfig: prev?.ackedConfig ?? null,
  ackedDeleted: prev?.ackedDeleted ?? true,
  ackedSecret: prev?.ackedSecret ?? null,
});

/**
 * The only writer. Each method reads the relay, computes its next state, and commits the row and
 * its activity in one transaction guarded by the row's rev; on a concurrent write it re-reads and
 * recomputes. After commit it notifies subscribers.
 */
export class Command {
  /** Writers of one relay in this process queue up instead of racing on its rev. */
  private readonly locks = new KeyedMutex();

  /** Relays as last read or committed here, shared with the Commands made by over(). */
  private readonly cache: RelayCache;

  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly clock: Clock,
    shared?: RelayCache,
  ) {
    this.cache = shared ?? new RelayCache();
    // Changes committed by other processes (PostgreSQL replicas) arrive as notifications too.
    if (!shared) notifier.subscribe((activities) => this.cache.changed(activities));
  }

  /**
   * A Command over another view of the same store (e.g. fenced) sharing this one's relay cache, so
   * the API's and the sync worker's writes do not make each other's entries stale.
   */
  over(store: Store): Command {
    return new Command(store, this.notifier, this.clock, this.cache);
  }

  /** In-process applies of each fleet: a second concurrent apply of one fleet is refused. */
  private readonly applyingFleets = new Set<string>();

  async createRelay(principal: Principal, input: unknown): Promise<CommandResult> {
    assertWriter(principal);
    const draft = draftNewRelay(principal, parseOrThrow(createRelaySchema, input));
    const { id } = draft;

    return this.retrying(id, async () => {
      const existing = await this.load(id);
      if (existing && existing.deletedAt === null) {
        throw new BosunError('id_conflict', `id: relay ${JSON.stringify(id)} already exists`, `relay/${id}`);
      }
      const relay = this.materialize(draft, existing);
      const activity = this.activity('create_relay', relay, principal, { version: relay.version });
      const [written] = existing
        ? await this.commit(relay, activity, existing)
        : await this.commitInsert(relay, activity);
      return { relay, activity: written ?? null };
    });
  }

  async updateRelay(principal: Principal, id: string, patch: unknown): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      const update = this.patched(current, patch, principal);
      if (!update) return { relay: current, activity: null };
      const [written] = await this.commit(update.relay, update.activity, current);
      return { relay: update.relay, activity: written ?? null };
    });
  }

  activateRelay(principal: Principal, id: string): Promise<CommandResult> {
    return this.setInactive(principal, id, false);
  }

  deactivateRelay(principal: Principal, id: string): Promise<CommandResult> {
    return this.setInactive(principal, id, true);
  }

  async deleteRelay(principal: Principal, id: string): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      const { relay, activity } = this.tombstone(current, principal);
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
    });
  }

  /** An operator asks for a fresh sync: clears a failed state; the version does not change. */
  async resyncRelay(principal: Principal, id: string): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      const relay: Relay = {
        ...current,
        rev: current.rev + 1,
        updatedAt: this.clock.now(),
        sync: { ...freshSync(current.sync) },
      };
      const activity = this.activity('resync_relay', relay, principal, { version: relay.version });
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
    });
  }

  /**
   * Gives the relay a new secret. The old one stays valid for `graceMs` (listed in `expiring`, so
   * agents keep it until then; 0: it ends now); push sync replaces the relay in zooid (PUT) because
   * the acknowledged secret differs. Already-expired entries are dropped on the way. The activity
   * names fingerprints only, never a secret.
   */
  async rotateSecret(principal: Principal, id: string, graceMs: number): Promise<CommandResult> {
    assertWriter(principal);
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_ROTATION_GRACE_MS) {
      throw invalid(
        `grace: must be a whole number of milliseconds from 0 to ${MAX_ROTATION_GRACE_MS} (365 days)`,
      );
    }
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      const now = this.clock.now();
      const secret = generateSecretKey();
      const expiresAt = now + graceMs;
      const expiring = unexpired(current.expiring ?? [], now);
      if (graceMs > 0) expiring.push({ name: 'secret', value: current.secret, expiresAt });
      const next = this.nextVersion(current, { secret, expiring });
      // If zooid acknowledged anything, it was the old secret: record that before it is forgotten.
      const relay: Relay = {
        ...next,
        updatedAt: now,
        sync: { ...next.sync, ackedSecret: current.sync.ackedSecret ?? secretDigest(current.secret) },
      };
      const activity = this.activity('rotate_secret', relay, principal, {
        version: relay.version,
        fingerprint: credentialFingerprint(secret),
        previous_fingerprint: credentialFingerprint(current.secret),
        grace_seconds: Math.floor(graceMs / 1000),
        expires_at: new Date(expiresAt).toISOString(),
      });
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
    });
  }

  /**
   * Drops rotated credentials whose grace period has ended (the credential-expiry chore). Agents
   * drop them on their own timers; this makes the record say so too, with a new version (equal
   * version ⇒ equal content). Null when nothing expired.
   */
  async expireCredentials(id: string, actor = 'system:credential_expiry'): Promise<CommandResult | null> {
    return this.retrying(id, async () => {
      const current = await this.load(id);
      if (!current?.expiring?.length) return null;
      const now = this.clock.now();
      const kept = unexpired(current.expiring, now);
      if (kept.length === current.expiring.length) return null;
      const dropped = current.expiring.filter((c) => c.expiresAt <= now);
      const names = dropped.map((c) => ({ name: c.name, fingerprint: credentialFingerprint(c.value) }));
      // A deleted relay keeps its version: only its row is tidied (nobody sees it any more).
      if (current.deletedAt !== null) {
        const relay: Relay = { ...current, rev: current.rev + 1, expiring: kept };
        const activity = this.draft('expire_credentials', id, actor, {
          version: relay.version,
          expired: names,
        });
        const [written] = await this.commit(relay, activity, current);
        return { relay, activity: written ?? null };
      }
      const next = this.nextVersion(current, { expiring: kept });
      const activity = this.draft('expire_credentials', id, actor, { version: next.version, expired: names });
      const [written] = await this.commit(next, activity, current);
      return { relay: next, activity: written ?? null };
    });
  }

  /**
   * Records that zooid acknowledged `version` of the relay. A sync of an older version than the
   * current one leaves the relay pending: the observer syncs the newer one next.
   */
  async completeRelaySync(
    id: string,
    ack: {
      version: number;
      config: Record<string, unknown> | null;
      deleted: boolean;
      /** secretDigest of the secret zooid now holds; omitted: unchanged. */
      secretDigest?: string;
    },
    actor = 'system:infra',
  ): Promise<CommandResult | null> {
    return this.retrying(id, async () => {
      const current = await this.load(id);
      if (!current || ack.version < current.sync.syncedVersion) return null;
      const now = this.clock.now();
      const upToDate = ack.version === current.version;
      const relay: Relay = {
        ...current,
        rev: current.rev + 1,
        sync: {
          status: upToDate ? 'synced' : 'pending',
          error: '',
          attempts: 0,
          nextAttemptAt: null,
          syncedVersion: ack.version,
          lastSyncedAt: now,
          ackedConfig: ack.config,
          ackedDeleted: ack.deleted,
          ackedSecret: ack.secretDigest ?? current.sync.ackedSecret ?? null,
        },
      };
      const activity = this.draft('complete_relay_sync', relay.id, actor, { version: ack.version });
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
    });
  }

  /**
   * Records a failed sync of `version`. `nextAttemptAt` null means no more retries: the relay is
   * failed until an operator asks for a resync. A failure of a superseded version is dropped.
   */
  async failRelaySync(
    id: string,
    failure: { version: number; error: string; attempts: number; nextAttemptAt: number | null },
    actor = 'system:infra',
  ): Promise<CommandResult | null> {
    return this.retrying(id, async () => {
      const current = await this.load(id);
      if (!current || current.version !== failure.version) return null;
      const error = truncateError(failure.error);
      const status = failure.nextAttemptAt === null ? 'failed' : 'retrying';
      const relay: Relay = {
        ...current,
        rev: current.rev + 1,
        sync: {
          ...current.sync,
          status,
          error,
          attempts: failure.attempts,
          nextAttemptAt: failure.nextAttemptAt,
        },
      };
      const activity = this.draft('fail_relay_sync', relay.id, actor, {
        version: failure.version,
        error,
        attempts: failure.attempts,
        status,
        next_attempt_at:
          failure.nextAttemptAt === null ? null : new Date(failure.nextAttemptAt).toISOString(),
      });
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
    });
  }

  private async setInactive(principal: Principal, id: string, inactive: boolean): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      if (current.config.inactive === inactive) return { relay: current, activity: null };
      const relay = this.nextVersion(current, { config: { ...current.config, inactive } });
      const type = inactive ? 'deactivate_relay' : 'activate_relay';
      const activity = this.activity(type, relay, principal, { version: relay.version });
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
    });
  }

  /**
   * Plans a declarative fleet (src/fleet): what applyFleet would do now, with the same rules.
   * Reads only.
   */
  async planFleet(
    principal: Principal,
    fleet: string,
    resolved: ResolvedFleet,
    opts: { prune: boolean },
  ): Promise<FleetPlan> {
    assertWriter(principal);
    const store = this.fleetStore(fleet);
    return (await this.computeFleet(store, principal, fleet, resolved, opts.prune)).result.plan;
  }

  /**
   * Applies a declarative fleet: every relay create, update and (with prune) delete, their
   * activities, and the new fleet config version with its State, in ONE store batch — all or
   * nothing. Each relay write follows the same rules as createRelay / updateRelay / deleteRelay.
   *
   * Concurrency: a second apply of the same fleet in this process is refused at once (409); the
   * per-relay locks make this process's other writers of those relays wait; and the batch is
   * guarded by every row's rev and by the fleet's version, so an apply from another process that
   * committed first makes this one fail with 409 `conflict`, writing nothing. A rev that moved
   * for another reason (e.g. sync bookkeeping elsewhere) is recomputed and retried.
   */
  async applyFleet(
    principal: Principal,
    fleet: string,
    resolved: ResolvedFleet,
    opts: { prune: boolean },
  ): Promise<FleetApplyResult> {
    assertWriter(principal);
    const store = this.fleetStore(fleet);
    if (this.applyingFleets.has(fleet)) {
      throw new BosunError(
        'conflict',
        `fleet ${fleet} is being applied by another request; nothing was applied, try again`,
        `fleet/${fleet}`,
      );
    }
    this.applyingFleets.add(fleet);
    try {
      const release = await this.lockAll(resolved.relays.map((r) => r.id));
      try {
        for (let attempt = 1; ; attempt++) {
          const computed = await this.computeFleet(store, principal, fleet, resolved, opts.prune);
          if (!computed.batch) return computed.result;
          try {
            const activities = await this.publish(computed.batch, store);
            return { ...computed.result, activities: activities.length };
          } catch (err) {
            if (err instanceof StaleFleetStateError) throw concurrentApply(fleet, err.actual);
            if (!(err instanceof StaleWriteError || err instanceof StoreConflictError)) throw err;
            const latest = (await store.latestFleetState(fleet))?.version ?? 0;
            if (latest !== computed.baseVersion) throw concurrentApply(fleet, latest);
            if (err instanceof StoreConflictError) throw computed.conflict(err);
            if (attempt >= MAX_CAS_ATTEMPTS) {
              throw new BosunError(
                'conflict',
                `fleet ${fleet}: relay ${err.relayId} kept changing concurrently; nothing was applied, try again`,
                `fleet/${fleet}`,
              );
            }
          }
        }
      } finally {
        release();
      }
    } finally {
      this.applyingFleets.delete(fleet);
    }
  }

  private fleetStore(fleet: string): Store {
    if (!FLEET.test(fleet)) {
      throw invalid('fleet: must match ^[a-z0-9][a-z0-9_-]{0,63}$', `fleet/${fleet.slice(0, 64)}`);
    }
    return this.store;
  }

  /**
   * The writes, activities, plan and State of applying `resolved` to what the store holds now.
   *
   * A relay whose version is the one the fleet's last State recorded, and whose desired config
   * (from the files) has that State's checksum, is unchanged without reading its row: in a steady
   * fleet only the few changed relays are read and compared field by field. Every other relay
   * goes through the same rules as createRelay / updateRelay.
   */
  private async computeFleet(
    store: Store,
    principal: Principal,
    fleet: string,
    resolved: ResolvedFleet,
    prune: boolean,
  ) {
    const latest = await store.latestFleetState(fleet);
    const baseVersion = latest?.version ?? 0;
    const previous = new Map((latest?.state.relays ?? []).map((r) => [r.id, r]));
    const heads = new Map((await store.relayHeads(fleet)).map((h) => [h.id, h]));

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
    const finals: Final[] = [];
    /** Each relay of the files, with its outcome when the checksum already showed it unchanged. */
    const slots: { spec: ResolvedRelay; unchanged?: Final; fields?: RelayFileFields }[] = [];
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

    const inFiles = new Set(resolved.relays.map((r) => r.id));
    const orphanHeads = [...heads.values()].filter(
      (h) => !inFiles.has(h.id) && (principal.role !== 'tenant' || h.owner === principal.owner),
    );
    const rows = new Map(
      (await store.getRelays(prune ? [...toRead, ...orphanHeads.map((h) => h.id)] : toRead)).map((r) => [
        r.id,
        r,
      ]),
    );

    const entries: PlanEntry[] = [];
    const deletes: RelayWrite[] = [];
    const updates: RelayWrite[] = [];
    const inserts: RelayWrite[] = [];
    const deleteActs: ActivityDraft[] = [];
    const updateActs: ActivityDraft[] = [];
    const insertActs: ActivityDraft[] = [];
    const finalOf = (spec: ResolvedRelay, relay: Relay, changed: boolean): Final => ({
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
    });

    for (const { spec, unchanged, fields } of slots) {
      if (unchanged || !fields) {
        entries.push(entry(spec, 'unchanged'));
        continue;
      }
      const existing = rows.get(spec.id);
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
            entries.push(entry(spec, 'unchanged'));
            finals.push(finalOf(spec, existing, false));
            continue;
          }
          const desired = mergeDiff(editableDocument(existing), { fleet, ...config });
          const update = this.patched(existing, desired, principal)!;
          updates.push({ kind: 'update', relay: update.relay, previous: existing });
          updateActs.push(update.activity);
          entries.push({
            ...entry(spec, 'update'),
            changes: diffDocuments(documentOf(existing), documentOf(update.relay)),
          });
          finals.push(finalOf(spec, update.relay, true));
        } else {
          const relay = this.materialize(draftNewRelay(principal, { ...fields, fleet }), existing);
          if (existing) updates.push({ kind: 'update', relay, previous: existing });
          else inserts.push({ kind: 'insert', relay });
          (existing ? updateActs : insertActs).push(
            this.activity('create_relay', relay, principal, { version: relay.version }),
          );
          const shown = { ...documentOf(relay), ...(secret !== undefined ? { secret } : {}) };
          entries.push({ ...entry(spec, 'create'), changes: diffDocuments(undefined, shown) });
          finals.push(finalOf(spec, relay, true));
        }
      } catch (err) {
        if (err instanceof BosunError && err.resource === undefined) {
          throw new BosunError(err.code, err.message, spec.resource);
        }
        throw err;
      }
    }

    const schemas = new Map<string, string>();
    for (const f of finals) {
      if (f.schema === undefined) continue;
      const other = schemas.get(f.schema);
      if (other)
        throw invalid(`schema: ${JSON.stringify(f.schema)} is also the schema of ${other}`, f.resource);
      schemas.set(f.schema, f.resource);
    }

    // A host that a relay this apply leaves in place already uses (an unchanged file's, or one
    // outside the fleet) is refused now, in the plan too, rather than at commit.
    const finalsById = new Map(finals.map((f) => [f.state.id, f]));
    const leaving = new Set(prune ? orphanHeads.map((h) => h.id) : []);
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

    const previousNames = new Map((latest?.state.relays ?? []).map((r) => [r.id, r.name]));
    const orphans: Record<string, string> = {};
    const pruned: Record<string, string> = {};
    for (const head of orphanHeads) {
      const name = previousNames.get(head.id) ?? head.id;
      const relay = rows.get(head.id);
      if (prune && relay && relay.deletedAt === null) {
        const gone = this.tombstone(relay, principal);
        deletes.push({ kind: 'update', relay: gone.relay, previous: relay });
        deleteActs.push(gone.activity);
        pruned[name] = head.id;
        entries.push({ name, id: head.id, action: 'delete' });
      } else {
        orphans[name] = head.id;
        entries.push({ name, id: head.id, action: 'orphaned' });
      }
    }

    const summary = summarize(entries);
    const plan: FleetPlan = {
      fleet,
      prune,
      base_version: baseVersion,
      relays: entries,
      summary,
      changes: summary.create + summary.update + summary.delete > 0,
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
    const relays = [...deletes, ...updates, ...inserts];
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
    const batch: WriteBatch | null = write
      ? {
          relays,
          activities: [...deleteActs, ...updateActs, ...insertActs],
          fleetStates: [
            {
              previousVersion: baseVersion,
              record: {
                fleet,
                version,
                configId: state.config_id,
                owner: state.owner,
                actor: principal.actor,
                createdAt: this.clock.now(),
                state,
              },
            },
          ],
        }
      : null;
    /** A host/schema/id taken outside the fleet: name the relay of the files that wants it. */
    const conflict = (err: StoreConflictError): BosunError => {
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
    return { result, batch, baseVersion, conflict };
  }

  /** Holds this process's lock of every relay id until the returned release is called. */
  private async lockAll(ids: readonly string[]): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Every run() is enqueued synchronously, so two multi-lockers queue in the same order on
    // every key they share: no deadlock.
    const acquired = [...new Set(ids)].map(
      (id) =>
        new Promise<void>((resolve) => {
          void this.locks.run(id, () => {
            resolve();
            return held;
          });
        }),
    );
    await Promise.all(acquired);
    return release;
  }

  /** A new relay from a validated create input (createRelay and fleet creates). */
  private materialize(draft: NewRelayDraft, existing: Relay | undefined): Relay {
    const now = this.clock.now();
    return {
      id: draft.id,
      owner: draft.owner,
      fleet: draft.fleet,
      version: (existing?.version ?? 0) + 1,
      rev: (existing?.rev ?? 0) + 1,
      config: draft.config,
      secret: draft.secret,
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
      sync: freshSync(existing?.sync),
      // A re-created id starts without the old incarnation's rotated credentials.
      expiring: [],
    };
  }

  /** A merge patch applied to a live relay (updateRelay and fleet updates); null when it changes nothing. */
  private patched(
    current: Relay,
    patch: unknown,
    principal: Principal,
  ): { relay: Relay; activity: ActivityDraft } | null {
    const next = applyRelayPatch(current, patch);
    const fields = changedFields(current, next);
    if (fields.length === 0) return null;
    const relay = this.nextVersion(current, { fleet: next.fleet, config: next.config });
    return {
      relay,
      activity: this.activity('update_relay', relay, principal, { version: relay.version, fields }),
    };
  }

  /**
   * A deleted relay (deleteRelay and fleet prunes). The row stays as a tombstone: versions keep
   * increasing if the id is created again, and the observer still has to delete it from zooid.
   */
  private tombstone(current: Relay, principal: Principal): { relay: Relay; activity: ActivityDraft } {
    const relay: Relay = { ...this.nextVersion(current, {}), deletedAt: this.clock.now() };
    return { relay, activity: this.activity('delete_relay', relay, principal, { version: relay.version }) };
  }

  /** A change zooid or an agent would see: a new version, and any pending retry is superseded. */
  private nextVersion(
    current: Relay,
    change: Partial<Pick<Relay, 'fleet' | 'config' | 'secret' | 'expiring'>>,
  ): Relay {
    return {
      ...current,
      ...change,
      version: current.version + 1,
      rev: current.rev + 1,
      updatedAt: this.clock.now(),
      sync: freshSync(current.sync),
    };
  }

  private async visible(principal: Principal, id: string): Promise<Relay> {
    const relay = await this.load(id);
    if (!relay || relay.deletedAt !== null || !canSee(principal, relay)) throw relayNotFound(id);
    return relay;
  }

  private activity(
    type: ActivityType,
    relay: Relay,
    principal: Principal,
    payload: Record<string, unknown>,
  ): ActivityDraft {
    return this.draft(type, relay.id, principal.actor, payload);
  }

  private draft(type: ActivityType, relayId: string, actor: string, payload: Record<string, unknown>) {
    return { type, relayId, actor, payload, createdAt: this.clock.now() };
  }

  /** The relay as last read or committed here, else from the store; its rev guards the write. */
  private async load(id: string): Promise<Relay | undefined> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const relay = await this.store.getRelay(id);
    if (relay) this.cache.set(relay);
    return relay;
  }

  private commitInsert(relay: Relay, activity: ActivityDraft): Promise<Activity[]> {
    return this.publish({ relays: [{ kind: 'insert', relay }], activities: [activity] });
  }

  private commit(relay: Relay, activity: ActivityDraft, previous: Relay): Promise<Activity[]> {
    return this.publish({ relays: [{ kind: 'update', relay, previous }], activities: [activity] });
  }

  /** Commits, then notifies. A failed batch drops its relays from the cache: the next try reads them. */
  private async publish(batch: WriteBatch, store = this.store): Promise<Activity[]> {
    let activities: Activity[];
    try {
      activities = await store.commit(batch);
    } catch (err) {
      for (const write of batch.relays) this.cache.delete(write.relay.id);
      throw err;
    }
    // Each relay's newest activity of the batch: its own notification must not evict it.
    const newest = new Map(activities.map((a) => [a.relayId, a.id]));
    for (const write of batch.relays) this.cache.set(write.relay, newest.get(write.relay.id));
    this.notifier.publish(activities);
    return activities;
  }

  private retrying<T>(id: string, attempt: () => Promise<T>): Promise<T> {
    return this.locks.run(id, () => this.withCas(attempt));
  }

  private async withCas<T>(attempt: () => Promise<T>): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (err instanceof StoreConflictError) throw conflictError(err);
        if (err instanceof StaleWriteError && i < MAX_CAS_ATTEMPTS) continue;
        if (err instanceof StaleWriteError) {
          throw new BosunError('conflict', `relay ${err.relayId} is being changed concurrently; try again`);
        }
        throw err;
      }
    }
  }
}

export function canSee(principal: Principal, relay: Relay): boolean {
  switch (principal.role) {
    case 'admin':
      return true;
    case 'tenant':
      return relay.owner === principal.owner;
    case 'agent':
      return relay.fleet === principal.fleet;
  }
}

function assertWriter(principal: Principal): void {
  if (principal.role === 'agent') {
    throw new BosunError('forbidden', 'agent tokens can only read their fleet; use an admin or tenant token');
  }
}

interface NewRelayDraft {
  id: string;
  owner: string;
  fleet: string;
  config: RelayConfig;
  secret: string;
}

/** The create rules: owner from the caller, generated id and secret, schema derived from the id. */
function draftNewRelay(principal: Principal, parsed: z.output<typeof createRelaySchema>): NewRelayDraft {
  const owner = ownerFor(principal, parsed.owner);
  const id = parsed.id ?? generateRelayId();
  const { id: _id, owner: _owner, fleet, secret, schema, inactive, host, ...sections } = parsed;
  return {
    id,
    owner,
    fleet: fleet ?? 'default',
    config: { host, schema: schema ?? schemaFromId(id), inactive: inactive ?? false, ...sections },
    secret: secret ?? generateSecretKey(),
  };
}

/** What a plan diff shows of a relay: who owns it, its fleet and its config (no secret). */
function documentOf(relay: Relay): Record<string, unknown> {
  return { owner: relay.owner, fleet: relay.fleet, ...relay.config };
}

function entry(spec: ResolvedRelay, action: PlanEntry['action']): PlanEntry {
  return { name: spec.name, id: spec.id, action, ...(spec.file !== undefined ? { file: spec.file } : {}) };
}

function concurrentApply(fleet: string, version: number): BosunError {
  return new BosunError(
    'conflict',
    `fleet ${fleet} was applied concurrently (now at version ${version}); nothing was applied, plan again`,
    `fleet/${fleet}`,
  );
}

function ownerFor(principal: Principal, requested: string | undefined): string {
  if (principal.role === 'tenant') {
    if (requested !== undefined && requested !== principal.owner) {
      throw new BosunError('forbidden', 'owner: a tenant can only create relays it owns');
    }
    return principal.owner;
  }
  return requested ?? 'default';
}

function conflictError(err: StoreConflictError): BosunError {
  const code =
    err.field === 'host' ? 'host_conflict' : err.field === 'schema' ? 'schema_conflict' : 'id_conflict';
  return new BosunError(code, `${err.field}: ${JSON.stringify(err.value)} is already used by another relay`);
}

function changedFields(current: Relay, next: { fleet: string; config: RelayConfig }): string[] {
  const fields: string[] = [];
  if (current.fleet !== next.fleet) fields.push('fleet');
  for (const key of Object.keys(next.config) as (keyof RelayConfig)[]) {
    if (!jsonEqual(current.config[key], next.config[key])) fields.push(key);
  }
  return fields;
}
