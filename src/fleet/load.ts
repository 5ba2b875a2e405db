import type { Logger } from 'pino';
import type { Command } from '../command.js';
import type { FleetApplyResult } from '../domain/fleet/plan.js';
import type { Principal } from '../domain/principal.js';
import type { Store } from '../store/port.js';
import { DbSyncer } from './db-syncer.js';

/** Who applies a fleet loaded at start (activities show `system:fleet`). */
export const FLEET_LOADER: Principal = { role: 'admin', actor: 'system:fleet' };

/**
 * `bosun serve --fleet <dir>` (BOSUN_FLEET_DIR): applies the fleet through the DB syncer before
 * the server starts. Orphans are logged, never deleted. Throws a sync error (bosun does not start)
 * when the files are invalid or the apply fails.
 */
export async function loadFleetAtStart(
  deps: { command: Command; store: Store; logger: Logger },
  dir: string,
): Promise<FleetApplyResult> {
  const syncer = await DbSyncer.fromDir({
    command: deps.command,
    store: deps.store,
    principal: FLEET_LOADER,
    dir,
  });
  const fleet = syncer.fleet;
  deps.logger.info({ dir, fleet: fleet.name, relays: fleet.resolved.relays.length }, 'applying fleet');
  await syncer.sync();
  const result = syncer.lastResult();
  const { create, update, unchanged } = result.plan.summary;
  deps.logger.info(
    {
      fleet: fleet.name,
      config_id: syncer.getConfigId(),
      written: result.written,
      create,
      update,
      unchanged,
    },
    'fleet applied',
  );
  const orphans = syncer.orphanedRelays();
  if (Object.keys(orphans).length) {
    deps.logger.warn(
      { fleet: fleet.name, orphans: Object.values(orphans) },
      'relays in the fleet are not in its files; kept (bosun sync --prune deletes them)',
    );
  }
  return result;
}
