import type { Command } from '../command.js';
import type { FleetApplyResult, FleetPlan } from '../domain/fleet/plan.js';
import type { Principal } from '../domain/principal.js';
import type { Store } from '../store/port.js';
import { type LoadedFleet, readFleetDir, readManifest } from './files.js';
import { BaseSyncer } from './syncer.js';

/** Syncs straight through Command in this process (`bosun serve --fleet <dir>`). */
export class DbSyncer extends BaseSyncer {
  /**
   * Reads a fleet directory against the fleet's last applied State, so files unchanged since are
   * not parsed again (see readFleetDir), and returns a syncer for it.
   */
  static async fromDir(opts: {
    command: Command;
    store: Store;
    principal: Principal;
    dir: string;
    prune?: boolean;
  }): Promise<DbSyncer> {
    const { name } = readManifest(opts.dir);
    const previous = (await opts.store.latestFleetState(name))?.state;
    return new DbSyncer({ ...opts, fleet: readFleetDir(opts.dir, { previous }) });
  }

  constructor(
    private readonly opts: { command: Command; principal: Principal; fleet: LoadedFleet; prune?: boolean },
  ) {
    super(opts.fleet.name);
  }

  get fleet(): LoadedFleet {
    return this.opts.fleet;
  }

  protected requestPlan(): Promise<FleetPlan> {
    const { command, principal, fleet } = this.opts;
    return command.planFleet(principal, fleet.name, fleet.resolved, { prune: this.opts.prune ?? false });
  }

  protected requestApply(): Promise<FleetApplyResult> {
    const { command, principal, fleet } = this.opts;
    return command.applyFleet(principal, fleet.name, fleet.resolved, { prune: this.opts.prune ?? false });
  }
}
