import type { Activity, ActivityDraft } from './domain/activity.js';
import type { Clock } from './domain/clock.js';
import {
  credentialFingerprint,
  MAX_ROTATION_GRACE_MS,
  secretDigest,
  unexpired,
} from './domain/credentials.js';
import { BosunError, invalid, relayNotFound, truncateError } from './domain/errors.js';
import type { FleetApplyResult, FleetPlan } from './domain/fleet/plan.js';
import type { ResolvedFleet } from './domain/fleet/spec.js';
import { KeyedMutex } from './domain/keyed-mutex.js';
import { generateSecretKey } from './domain/keys.js';
import { type LiveObservation, type LiveState, nextLiveState, type RepairPolicy } from './domain/live.js';
import { assertAdmin, assertWriter, canSee, type Principal } from './domain/principal.js';
import { checkFleetName, createRelaySchema, parseOrThrow, type Relay } from './domain/relay.js';
import {
  conflictError,
  createdRelay,
  deletedRelay,
  draftActivity,
  draftNewRelay,
  freshSync,
  nextVersion,
  patchedRelay,
  relayActivity,
  resyncedRelay,
} from './domain/relay-changes.js';
import {
  assertNotDefault,
  assertSigner,
  createTargetSchema,
  DEFAULT_TARGET,
  type FleetMove,
  type FleetRecord,
  type FleetTarget,
  fleetTargetName,
  movesOf,
  newTarget,
  parseTargetInput,
  patchedTarget,
  pushedElsewhere,
  type Target,
  targetNotFound,
  unknownTarget,
  updateTargetSchema,
} from './domain/target.js';
import { computeFleetChanges } from './fleet/changes.js';
import type { Notifier } from './notifier.js';
import type { Store, WriteBatch } from './store/port.js';
import { RelayCache } from './store/relay-cache.js';
import {
  StaleFleetStateError,
  StaleWriteError,
  StoreConflictError,
  UnknownTargetError,
} from './store/write-errors.js';

export interface CommandResult {
  relay: Relay;
  /** The appended activity; null when the request changed nothing. */
  activity: Activity | null;
}

const MAX_CAS_ATTEMPTS = 8;

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
      const { relay, activity } = createdRelay(draft, existing, principal, this.clock.now());
      return existing ? this.commit(relay, activity, existing) : this.commitInsert(relay, activity);
    });
  }

  async updateRelay(principal: Principal, id: string, patch: unknown): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      const update = patchedRelay(current, patch, principal, this.clock.now());
      if (!update) return { relay: current, activity: null };
      return this.commit(update.relay, update.activity, current);
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
      const { relay, activity } = deletedRelay(current, principal, this.clock.now());
      return this.commit(relay, activity, current);
    });
  }

  /** An operator asks for a fresh sync: clears a failed state; the version does not change. */
  async resyncRelay(principal: Principal, id: string): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      const now = this.clock.now();
      const relay: Relay = {
        ...current,
        rev: current.rev + 1,
        updatedAt: now,
        sync: freshSync(current.sync),
      };
      const activity = relayActivity('resync_relay', relay, principal, now);
      return this.commit(relay, activity, current);
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
      const expiring = unexpired(current.expiring, now);
      if (graceMs > 0) expiring.push({ name: 'secret', value: current.secret, expiresAt });
      const next = nextVersion(current, { secret, expiring }, now);
      // If zooid acknowledged anything, it was the old secret: record that before it is forgotten.
      const relay: Relay = {
        ...next,
        sync: { ...next.sync, ackedSecret: current.sync.ackedSecret ?? secretDigest(current.secret) },
      };
      const activity = relayActivity('rotate_secret', relay, principal, now, {
        fingerprint: credentialFingerprint(secret),
        previous_fingerprint: credentialFingerprint(current.secret),
        grace_seconds: Math.floor(graceMs / 1000),
        expires_at: new Date(expiresAt).toISOString(),
      });
      return this.commit(relay, activity, current);
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
      if (!current?.expiring.length) return null;
      const now = this.clock.now();
      const kept = unexpired(current.expiring, now);
      if (kept.length === current.expiring.length) return null;
      const dropped = current.expiring.filter((c) => c.expiresAt <= now);
      const names = dropped.map((c) => ({ name: c.name, fingerprint: credentialFingerprint(c.value) }));
      // A deleted relay keeps its version: only its row is tidied (nobody sees it any more).
      const relay: Relay =
        current.deletedAt !== null
          ? { ...current, rev: current.rev + 1, expiring: kept }
          : nextVersion(current, { expiring: kept }, now);
      const payload = { version: relay.version, expired: names };
      const activity = draftActivity('expire_credentials', relay, actor, payload, now);
      return this.commit(relay, activity, current);
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
      /** The target that acknowledged it (where a live relay lives now); omitted: `default`. */
      target?: string;
      /**
       * The target the relay was deleted from after `target` acknowledged it: a move, recorded
       * with a `move_relay` activity beside the sync's.
       */
      movedFrom?: string;
    },
    actor = 'system:infra',
  ): Promise<CommandResult | null> {
    return this.retrying(id, async () => {
      const current = await this.load(id);
      if (!current || ack.version < current.sync.syncedVersion) return null;
      const now = this.clock.now();
      const upToDate = ack.version === current.version;
      const target = ack.target ?? DEFAULT_TARGET;
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
          ackedSecret: ack.secretDigest ?? current.sync.ackedSecret,
          pushedTarget: ack.deleted ? null : target,
        },
      };
      const activities = [draftActivity('complete_relay_sync', relay, actor, { version: ack.version }, now)];
      if (ack.movedFrom !== undefined && !ack.deleted) {
        const payload = { version: ack.version, from: ack.movedFrom, to: target };
        activities.push(draftActivity('move_relay', relay, actor, payload, now));
      }
      const [written] = await this.publish({
        relays: [{ kind: 'update', relay, previous: current }],
        activities,
      });
      return { relay, activity: written ?? null };
    });
  }

  /**
   * Records a failed sync of `version`. `nextAttemptAt` null means no more retries: the relay is
   * failed until an operator asks for a resync. A failure of a superseded version is dropped.
   *
   * `parked`: zooid did acknowledge a stand-in config (the relay moved to a placeholder host to
   * break a host swap, see Infra). That is what zooid now holds, so it is recorded even when the
   * version was superseded meanwhile: the next sync must patch from it, never from the config
   * before it.
   */
  async failRelaySync(
    id: string,
    failure: {
      version: number;
      error: string;
      attempts: number;
      nextAttemptAt: number | null;
      /** `target`: where zooid holds the stand-in (it lives there now); omitted: `default`. */
      parked?: { config: Record<string, unknown>; secretDigest: string; target?: string };
      /**
       * A create sent to this target whose answer was lost (it may have landed): recorded as where
       * the relay lives when the record names no target, so that a move deletes it there.
       */
      mayLiveOn?: string;
    },
    actor = 'system:infra',
  ): Promise<CommandResult | null> {
    return this.retrying(id, async () => {
      const current = await this.load(id);
      if (!current) return null;
      const superseded = current.version !== failure.version;
      const { parked } = failure;
      const mayLiveOn = current.sync.pushedTarget === null ? failure.mayLiveOn : undefined;
      if (superseded && !parked && mayLiveOn === undefined) return null;
      const error = truncateError(failure.error);
      const status = failure.nextAttemptAt === null ? 'failed' : 'retrying';
      const relay: Relay = {
        ...current,
        rev: current.rev + 1,
        sync: {
          ...current.sync,
          ...(superseded
            ? {}
            : { status, error, attempts: failure.attempts, nextAttemptAt: failure.nextAttemptAt }),
          ...(parked
            ? {
                ackedConfig: parked.config,
                ackedDeleted: false,
                ackedSecret: parked.secretDigest,
                pushedTarget: parked.target ?? DEFAULT_TARGET,
              }
            : {}),
          ...(mayLiveOn !== undefined ? { pushedTarget: mayLiveOn } : {}),
        },
      };
      const activity = draftActivity(
        'fail_relay_sync',
        relay,
        actor,
        {
          version: failure.version,
          error,
          attempts: failure.attempts,
          status,
          next_attempt_at:
            failure.nextAttemptAt === null ? null : new Date(failure.nextAttemptAt).toISOString(),
          ...(parked ? { parked_host: parked.config.host } : {}),
        },
        this.clock.now(),
      );
      return this.commit(relay, activity, current);
    });
  }

  /**
   * Records one live check of the relay (src/live/): the observed status, and whether a repair is
   * due (`nextLiveState`). A change of status appends an `observe_relay` activity; a check that
   * changes nothing else writes the row only (its check time). Null when the relay is gone, or
   * changed since the check read it (its version moved: the check is of an older state, and the
   * verifier checks again after the new one is synced).
   */
  async observeRelay(
    id: string,
    check: { version: number; observation: LiveObservation; canRepair: boolean; policy: RepairPolicy },
    actor = 'system:verifier',
  ): Promise<(CommandResult & { repair: boolean; previous: LiveState }) | null> {
    return this.retrying(id, async () => {
      const current = await this.load(id);
      if (!current || current.version !== check.version) return null;
      const now = this.clock.now();
      const next = nextLiveState(current.live, check.observation, now, {
        shouldServe: current.deletedAt === null && !current.config.inactive,
        canRepair: check.canRepair,
        policy: check.policy,
      });
      const relay: Relay = { ...current, rev: current.rev + 1, live: next.live };
      const activity = next.changed
        ? draftActivity(
            'observe_relay',
            relay,
            actor,
            {
              version: relay.version,
              from: current.live.status,
              to: next.live.status,
              ...(next.live.error ? { error: next.live.error } : {}),
            },
            now,
          )
        : null;
      const [written] = await this.publish({
        relays: [{ kind: 'update', relay, previous: current }],
        activities: activity ? [activity] : [],
      });
      return { relay, activity: written ?? null, repair: next.repair, previous: current.live };
    });
  }

  private async setInactive(principal: Principal, id: string, inactive: boolean): Promise<CommandResult> {
    assertWriter(principal);
    return this.retrying(id, async () => {
      const current = await this.visible(principal, id);
      if (current.config.inactive === inactive) return { relay: current, activity: null };
      const now = this.clock.now();
      const relay = nextVersion(current, { config: { ...current.config, inactive } }, now);
      const type = inactive ? 'deactivate_relay' : 'activate_relay';
      const activity = relayActivity(type, relay, principal, now);
      return this.commit(relay, activity, current);
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
    return (await this.fleetChanges(principal, fleet, resolved, opts.prune)).result.plan;
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
          const computed = await this.fleetChanges(principal, fleet, resolved, opts.prune);
          if (!computed.batch) return computed.result;
          try {
            const activities = await this.publish(computed.batch, store);
            return { ...computed.result, activities: activities.length };
          } catch (err) {
            if (err instanceof StaleFleetStateError) throw concurrentApply(fleet, err.actual);
            // The target was deleted since the plan checked it.
            if (err instanceof UnknownTargetError) throw unknownTarget(err.target, `fleet/${fleet}`);
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

  /** Registers a zooid instance (issue 17). Nothing is written on a refusal. */
  async createTarget(principal: Principal, input: unknown, opts: { defaultKey: boolean }): Promise<Target> {
    assertAdmin(principal, 'managing targets');
    const target = newTarget(parseTargetInput(createTargetSchema, input), this.clock.now());
    assertSigner(target, opts.defaultKey);
    if (!(await this.store.insertTarget(target))) {
      throw new BosunError('conflict', `target ${target.name} already exists`, `target/${target.name}`);
    }
    return target;
  }

  /** A merge patch of url, secret_key, verify_url; returns the target as it is now. */
  async updateTarget(
    principal: Principal,
    name: string,
    patch: unknown,
    opts: { defaultKey: boolean },
  ): Promise<Target> {
    assertAdmin(principal, 'managing targets');
    assertNotDefault(name);
    const parsed = parseTargetInput(updateTargetSchema, patch);
    return this.locks.run(`target:${name}`, async () => {
      for (let i = 1; ; i++) {
        const current = await this.store.getTarget(name);
        if (!current) throw targetNotFound(name);
        const next = patchedTarget(current, parsed, this.clock.now());
        if (!next) return current;
        assertSigner(next, opts.defaultKey);
        if (await this.store.updateTarget(next, current)) return next;
        if (i >= MAX_CAS_ATTEMPTS) {
          throw new BosunError('conflict', `target ${name} is being changed concurrently; try again`);
        }
      }
    });
  }

  /**
   * Refused (409, naming them) while fleets are pinned to the target, and while relays live on it:
   * push sync could no longer delete them there.
   */
  async deleteTarget(principal: Principal, name: string): Promise<void> {
    assertAdmin(principal, 'managing targets');
    assertNotDefault(name);
    const { deleted, usedBy, holding } = await this.store.deleteTarget(name);
    if (usedBy.length === 0 && holding > 0) {
      throw new BosunError(
        'conflict',
        `target ${name} still holds ${holding} relay${holding > 1 ? 's' : ''} (moving off it to their fleets' targets): remove it once they are moved`,
        `target/${name}`,
      );
    }
    if (usedBy.length > 0) {
      throw new BosunError(
        'conflict',
        `target ${name} is used by fleet${usedBy.length > 1 ? 's' : ''} ${usedBy.join(', ')}; pin ${usedBy.length > 1 ? 'them' : 'it'} elsewhere first`,
        `target/${name}`,
      );
    }
    if (!deleted) throw targetNotFound(name);
  }

  /**
   * Pins a fleet to a target (`default` included) or makes it pull-only. An unknown target is
   * refused (400) and nothing is written. `moved`: the fleet's live relays that live on another
   * target than the new one, and which targets push sync deletes them from once it created them on
   * the new one (none for a pull-only fleet: its relays stay where they are).
   */
  async setFleetTarget(
    principal: Principal,
    fleet: string,
    target: FleetTarget,
  ): Promise<{ fleet: FleetRecord; moved: FleetMove }> {
    assertAdmin(principal, 'choosing a fleet’s target');
    this.fleetStore(fleet);
    if (target.kind === 'target' && target.name !== DEFAULT_TARGET) {
      if (!(await this.store.getTarget(target.name))) throw unknownTarget(target.name, `fleet/${fleet}`);
    }
    const now = this.clock.now();
    let moved: FleetMove = { relays: 0, from: [], to: fleetTargetName(target) };
    try {
      await this.withCas(async () => {
        const resync = await this.resyncedForTarget(fleet, target);
        moved = movesOf(resync, target);
        const resynced = resync.map((r) => resyncedRelay(r, principal, now));
        await this.publish({
          relays: resynced.map(({ relay }, i) => ({ kind: 'update' as const, relay, previous: resync[i]! })),
          activities: resynced.map(({ activity }) => activity),
          fleets: [{ fleet, target, at: now }],
        });
      });
    } catch (err) {
      // Deleted between the check and the write.
      if (err instanceof UnknownTargetError) throw unknownTarget(err.target, `fleet/${fleet}`);
      throw err;
    }
    const record = (await this.store.getFleet(fleet)) ?? {
      name: fleet,
      target,
      createdAt: now,
      updatedAt: now,
    };
    return { fleet: record, moved };
  }

  /**
   * A fleet pushed to another target from now on: its live relays, each to be synced again (a
   * `resync_relay` in the same transaction). Push sync creates each on the new target with its
   * secret and then deletes it from the target it lived on (Router, Infra).
   */
  private async resyncedForTarget(fleet: string, target: FleetTarget): Promise<Relay[]> {
    const before = (await this.store.getFleet(fleet))?.target ?? { kind: 'default' as const };
    if (!pushedElsewhere(before, target)) return [];
    const heads = await this.store.relayHeads(fleet);
    return (await this.store.getRelays(heads.map((h) => h.id))).filter((r) => r.deletedAt === null);
  }

  private fleetStore(fleet: string): Store {
    checkFleetName(fleet);
    return this.store;
  }

  /** What the fleet's spec changes as of now, by the rules every relay write follows. Reads only. */
  private fleetChanges(principal: Principal, fleet: string, resolved: ResolvedFleet, prune: boolean) {
    return computeFleetChanges(this.fleetStore(fleet), principal, fleet, resolved, prune, this.clock.now());
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

  private async visible(principal: Principal, id: string): Promise<Relay> {
    const relay = await this.load(id);
    if (!relay || relay.deletedAt !== null || !canSee(principal, relay)) throw relayNotFound(id);
    return relay;
  }

  /** The relay as last read or committed here, else from the store; its rev guards the write. */
  private async load(id: string): Promise<Relay | undefined> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const relay = await this.store.getRelay(id);
    if (relay) this.cache.set(relay);
    return relay;
  }

  private async commitInsert(relay: Relay, activity: ActivityDraft): Promise<CommandResult> {
    const [written] = await this.publish({ relays: [{ kind: 'insert', relay }], activities: [activity] });
    return { relay, activity: written ?? null };
  }

  private async commit(relay: Relay, activity: ActivityDraft, previous: Relay): Promise<CommandResult> {
    const [written] = await this.publish({
      relays: [{ kind: 'update', relay, previous }],
      activities: [activity],
    });
    return { relay, activity: written ?? null };
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
    this.notifier.publish(
      activities,
      batch.relays.map((w) => w.relay),
    );
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

function concurrentApply(fleet: string, version: number): BosunError {
  return new BosunError(
    'conflict',
    `fleet ${fleet} was applied concurrently (now at version ${version}); nothing was applied, plan again`,
    `fleet/${fleet}`,
  );
}
