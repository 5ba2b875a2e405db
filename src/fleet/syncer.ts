import type { FleetApplyResult, FleetPlan, ScheduledRelay } from '../domain/fleet/plan.js';
import { SyncInternalError, toSyncError } from './errors.js';

/**
 * The fleet Syncer: makes bosun match a fleet directory. Two implementations: the
 * API syncer (over HTTP with a token; what CI and the CLI use) and the DB syncer (in process,
 * through Command; what `bosun serve --fleet` uses). Both apply through Command.applyFleet, so
 * the same files give the same plan, the same errors and the same State.
 */
export interface Syncer {
  /**
   * Applies the fleet: creates, updates and (with prune) deletes relays and records a fleet
   * config version, all in one transaction. Throws SyncApiError, SyncError or SyncInternalError.
   */
  sync(): Promise<void>;
  /** The fleet config version (`<fleet>.v<n>`) current after the last successful sync(). */
  getConfigId(): string;
  /** The ids of every relay in that version's State. */
  getRelayStateIds(): string[];
  /** Relays whose zooid sync the last sync() enqueued (created or updated), to follow with --wait. */
  getRelaysScheduled(): ScheduledRelay[];
  /** Relays in the fleet in bosun but not in the files, left in place (name → id). */
  orphanedRelays(): Record<string, string>;
}

/** A Syncer that can also plan, and show everything its last sync did. */
export interface FleetSyncer extends Syncer {
  plan(): Promise<FleetPlan>;
  lastResult(): FleetApplyResult;
}

export abstract class BaseSyncer implements FleetSyncer {
  private last: FleetApplyResult | undefined;

  constructor(protected readonly fleetName: string) {}

  protected abstract requestPlan(): Promise<FleetPlan>;
  protected abstract requestApply(): Promise<FleetApplyResult>;

  async plan(): Promise<FleetPlan> {
    try {
      return await this.requestPlan();
    } catch (err) {
      throw toSyncError(err, `fleet/${this.fleetName}`, `planning fleet ${this.fleetName}`);
    }
  }

  async sync(): Promise<void> {
    try {
      this.last = await this.requestApply();
    } catch (err) {
      throw toSyncError(err, `fleet/${this.fleetName}`, `applying fleet ${this.fleetName}`);
    }
  }

  lastResult(): FleetApplyResult {
    if (!this.last) throw new SyncInternalError('no successful sync() yet: call sync() first');
    return this.last;
  }

  getConfigId(): string {
    return this.lastResult().state?.config_id ?? '';
  }

  getRelayStateIds(): string[] {
    return (this.lastResult().state?.relays ?? []).map((r) => r.id);
  }

  getRelaysScheduled(): ScheduledRelay[] {
    return this.lastResult().scheduled;
  }

  orphanedRelays(): Record<string, string> {
    return { ...this.lastResult().orphans };
  }
}
