import { BosunError } from '../domain/errors.js';
import type { Principal } from '../domain/principal.js';
import { FLEET } from '../domain/relay.js';
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
  if (!FLEET.test(fleet)) {
    throw new BosunError(
      'invalid_request',
      'fleet: must match ^[a-z0-9][a-z0-9_-]{0,63}$',
      `fleet/${fleet.slice(0, 64)}`,
    );
  }
  const records = await store.listFleetStates({
    fleet,
    limit: opts.limit + 1,
    ...(principal.role === 'tenant' ? { owner: principal.owner } : {}),
    ...(opts.before !== undefined ? { before: opts.before } : {}),
  });
  const more = records.length > opts.limit;
  const page = more ? records.slice(0, opts.limit) : records;
  return { states: page.map(viewFleetState), next: more ? (page[page.length - 1]?.version ?? null) : null };
}
