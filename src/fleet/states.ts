import { BosunError } from '../domain/errors.js';
import { readPage } from '../domain/page.js';
import type { Principal } from '../domain/principal.js';
import { checkFleetName } from '../domain/relay.js';
import type { FleetStateRecord, Store } from '../store/port.js';

export interface FleetStateView {
  fleet: string;
  version: number;
  config_id: string;
  owner: string | null;
  actor: string;
  created_at: string;
  state: FleetStateRecord['state'];
}

export const viewFleetState = (r: FleetStateRecord): FleetStateView => ({
  fleet: r.fleet,
  version: r.version,
  config_id: r.configId,
  owner: r.owner,
  actor: r.actor,
  created_at: new Date(r.createdAt).toISOString(),
  state: r.state,
});

/**
 * The applied config versions of a fleet, newest first. An admin sees all; a tenant only the
 * versions it applied (they list only its relays); an agent none.
 */
export async function fleetStateHistory(
  store: Store,
  principal: Principal,
  fleet: string,
  opts: { before?: number; limit: number },
): Promise<{ states: FleetStateView[]; next: number | null }> {
  if (principal.role === 'agent') {
    throw new BosunError('forbidden', 'agent tokens cannot read fleet history; use an admin or tenant token');
  }
  checkFleetName(fleet);
  const page = await readPage(
    opts.limit,
    (limit) =>
      store.listFleetStates({
        fleet,
        limit,
        ...(principal.role === 'tenant' ? { owner: principal.owner } : {}),
        ...(opts.before !== undefined ? { before: opts.before } : {}),
      }),
    (record) => record.version,
  );
  return { states: page.items.map(viewFleetState), next: page.next };
}
