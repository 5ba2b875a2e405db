import type { Activity, ActivityDraft, ActivityType } from './domain/activity.js';
import type { Clock } from './domain/clock.js';
import { BosunError, relayNotFound, truncateError } from './domain/errors.js';
import { KeyedMutex } from './domain/keyed-mutex.js';
import { generateSecretKey } from './domain/keys.js';
import type { Principal } from './domain/principal.js';
import {
  applyRelayPatch,
  createRelaySchema,
  generateRelayId,
  jsonEqual,
  parseOrThrow,
  type Relay,
  type RelayConfig,
  type SyncState,
  schemaFromId,
} from './domain/relay.js';
import type { Notifier } from './notifier.js';
import { StaleWriteError, type Store, StoreConflictError } from './store/port.js';

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
});

/**
 * The only writer. Each method reads the relay, computes its next state, and commits the row and
 * its activity in one transaction guarded by the row's rev; on a concurrent write it re-reads and
 * recomputes. After commit it notifies subscribers.
 */
export class Command {
  /** Writers of one relay in this process queue up instead of racing on its rev. */
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly clock: Clock,
  ) {}

  async createRelay(principal: Principal, input: unknown): Promise<CommandResult> {
    assertWriter(principal);
    const parsed = parseOrThrow(createRelaySchema, input);
    const owner = ownerFor(principal, parsed.owner);
    const id = parsed.id ?? generateRelayId();
    const { id: _id, owner: _owner, fleet, secret, schema, inactive, host, ...sections } = parsed;
    const config: RelayConfig = {
      host,
      schema: schema ?? schemaFromId(id),
      inactive: inactive ?? false,
      ...sections,
    };
    const relaySecret = secret ?? generateSecretKey();

    return this.retrying(id, async () => {
      const now = this.clock.now();
      const existing = await this.store.getRelay(id);
      if (existing && existing.deletedAt === null) {
        throw new BosunError('id_conflict', `id: relay ${JSON.stringify(id)} already exists`, `relay/${id}`);
      }
      const relay: Relay = {
        id,
        owner,
        fleet: fleet ?? 'default',
        version: (existing?.version ?? 0) + 1,
        rev: (existing?.rev ?? 0) + 1,
        config,
        secret: relaySecret,
        createdAt: now,
        updatedAt: now,
        deletedAt: null,
        sync: freshSync(existing?.sync),
      };
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
      const next = applyRelayPatch(current, patch);
      if (next.fleet === current.fleet && jsonEqual(next.config, current.config)) {
        return { relay: current, activity: null };
      }
      const fields = changedFields(current, next);
      const relay = this.nextVersion(current, { fleet: next.fleet, config: next.config });
      const activity = this.activity('update_relay', relay, principal, { version: relay.version, fields });
      const [written] = await this.commit(relay, activity, current);
      return { relay, activity: written ?? null };
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
      const now = this.clock.now();
      // The row stays as a tombstone: versions keep increasing if the id is created again, and the
      // observer still has to delete the relay from zooid.
      const relay: Relay = { ...this.nextVersion(current, {}), deletedAt: now };
      const activity = this.activity('delete_relay', relay, principal, { version: relay.version });
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
   * Records that zooid acknowledged `version` of the relay. A sync of an older version than the
   * current one leaves the relay pending: the observer syncs the newer one next.
   */
  async completeRelaySync(
    id: string,
    ack: { version: number; config: Record<string, unknown> | null; deleted: boolean },
    actor = 'system:infra',
  ): Promise<CommandResult | null> {
    return this.retrying(id, async () => {
      const current = await this.store.getRelay(id);
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
      const current = await this.store.getRelay(id);
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

  /** A change zooid or an agent would see: a new version, and any pending retry is superseded. */
  private nextVersion(current: Relay, change: Partial<Pick<Relay, 'fleet' | 'config' | 'secret'>>): Relay {
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
    const relay = await this.store.getRelay(id);
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

  private commitInsert(relay: Relay, activity: ActivityDraft): Promise<Activity[]> {
    return this.publish(this.store.commit({ relays: [{ kind: 'insert', relay }], activities: [activity] }));
  }

  private commit(relay: Relay, activity: ActivityDraft, previous: Relay): Promise<Activity[]> {
    return this.publish(
      this.store.commit({ relays: [{ kind: 'update', relay, previous }], activities: [activity] }),
    );
  }

  private async publish(committed: Promise<Activity[]>): Promise<Activity[]> {
    const activities = await committed;
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
