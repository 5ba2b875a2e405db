import type { Activity } from './domain/activity.js';
import { relayNotFound } from './domain/errors.js';
import type { LiveStatus } from './domain/live.js';
import { canSee, type Principal } from './domain/principal.js';
import type { Relay, SyncStatus } from './domain/relay.js';
import type { Store } from './store/port.js';

export interface Page<T> {
  items: T[];
  /** Pass back as `after` for the next page; null on the last page. */
  next: string | null;
}

/** Read-only access for the API, dashboard and metrics, scoped to what the caller may see. */
export class Query {
  constructor(private readonly store: Store) {}

  async getRelay(principal: Principal, id: string): Promise<Relay> {
    const relay = await this.store.getRelay(id);
    if (!relay || relay.deletedAt !== null || !canSee(principal, relay)) throw relayNotFound(id);
    return relay;
  }

  async listRelays(
    principal: Principal,
    opts: {
      owner?: string;
      fleet?: string;
      status?: SyncStatus;
      live?: LiveStatus;
      inactive?: boolean;
      after?: string;
      limit: number;
    },
  ): Promise<Page<Relay>> {
    const scope = scopeOf(principal);
    // A tenant asking for another owner, or an agent for another fleet, gets an empty page.
    if (scope.owner !== undefined && opts.owner !== undefined && opts.owner !== scope.owner) {
      return { items: [], next: null };
    }
    if (scope.fleet !== undefined && opts.fleet !== undefined && opts.fleet !== scope.fleet) {
      return { items: [], next: null };
    }
    const items = await this.store.listRelays({ ...opts, ...scope, limit: opts.limit + 1 });
    const more = items.length > opts.limit;
    const page = more ? items.slice(0, opts.limit) : items;
    return { items: page, next: more ? (page[page.length - 1]?.id ?? null) : null };
  }

  async activities(
    principal: Principal,
    opts: { after: number; relayId?: string; limit: number },
  ): Promise<{ items: Activity[]; next: number }> {
    if (opts.relayId !== undefined) {
      // Deleted relays keep their history; the caller must still be allowed to see the relay.
      const relay = await this.store.getRelay(opts.relayId);
      if (!relay || !canSee(principal, relay)) throw relayNotFound(opts.relayId);
    }
    const owner = principal.role === 'tenant' ? principal.owner : undefined;
    if (principal.role === 'agent') return { items: [], next: opts.after };
    const items = await this.store.activitiesAfter({ ...opts, ...(owner ? { owner } : {}) });
    return { items, next: items.length ? items[items.length - 1]!.id : opts.after };
  }

  async failingRelays(principal: Principal, limit = 500): Promise<Relay[]> {
    const scope = scopeOf(principal);
    const [failed, retrying] = await Promise.all([
      this.store.listRelays({ ...scope, status: 'failed', limit }),
      this.store.listRelays({ ...scope, status: 'retrying', limit }),
    ]);
    return [...failed, ...retrying];
  }

  /**
   * Relays whose live status needs attention (liveProblem): stale, wrong_identity and unexpected
   * ones (deleted relays still served included), and active relays that are not served.
   */
  async liveProblems(principal: Principal, limit = 500): Promise<Relay[]> {
    const scope = scopeOf(principal);
    const [stale, wrong, unexpected, notServed] = await Promise.all([
      this.store.listRelays({ ...scope, live: 'stale', limit }),
      this.store.listRelays({ ...scope, live: 'wrong_identity', limit }),
      this.store.listRelays({ ...scope, live: 'unexpected', includeDeleted: true, limit }),
      this.store.listRelays({ ...scope, live: 'not_served', inactive: false, limit }),
    ]);
    return [...wrong, ...unexpected, ...notServed, ...stale];
  }

  countByStatus() {
    return this.store.countRelaysByStatus();
  }

  lastActivityId() {
    return this.store.lastActivityId();
  }
}

function scopeOf(principal: Principal): { owner?: string; fleet?: string } {
  if (principal.role === 'tenant') return { owner: principal.owner };
  if (principal.role === 'agent') return { fleet: principal.fleet };
  return {};
}
