import type { Activity } from './domain/activity.js';
import { relayNotFound } from './domain/errors.js';
import { LIVE_STATUSES, type LiveStatus } from './domain/live.js';
import { type Page, readPage } from './domain/page.js';
import { canSee, type Principal } from './domain/principal.js';
import type { Relay, SyncStatus } from './domain/relay.js';
import { DEFAULT_TARGET, fleetTargetName } from './domain/target.js';
import type { RelayFilter, Store } from './store/port.js';

/** Live relays by sync status, and how many of them are inactive. */
export interface RelayTally {
  byStatus: Record<SyncStatus, number>;
  inactive: number;
  /** The same by fleet (fleets with no live relay left out). */
  byFleet: Map<string, Record<SyncStatus, number>>;
}

const noStatuses = (): Record<SyncStatus, number> => ({
  pending: 0,
  synced: 0,
  retrying: 0,
  failed: 0,
  pull: 0,
});

/**
 * Read-only access for the API, dashboard and metrics, scoped to what the caller may see: one
 * visibility rule (`scopeOf` for lists, `canSee` for one relay) for every reader.
 */
export class Query {
  constructor(private readonly store: Store) {}

  /** Commits land in activity-id order (see Store.serialCommits): readers may skip to the head. */
  get serialCommits(): boolean {
    return this.store.serialCommits;
  }

  async getRelay(principal: Principal, id: string): Promise<Relay> {
    const relay = await this.store.getRelay(id);
    if (!relay || relay.deletedAt !== null || !canSee(principal, relay)) throw relayNotFound(id);
    return this.present(relay);
  }

  /** A relay the Command just wrote, as readers see it (a write's answer says what a read would). */
  async present(relay: Relay): Promise<Relay> {
    const [shown] = await this.shown([relay]);
    return shown!;
  }

  /**
   * Relays as readers see them, derived from the fleet rows on each read (so a fleet that changes
   * target shows at once): those of a pull-only fleet say `pull`, as bosun does not push them; a
   * live relay that lives on another target than its fleet's is `moving` there.
   */
  private async shown(relays: Relay[]): Promise<Relay[]> {
    if (relays.length === 0) return relays;
    const targetOf = await this.fleetTargets(new Set(relays.map((r) => r.fleet)));
    return relays.map((r) => {
      const to = targetOf(r.fleet);
      if (to === null) return { ...r, sync: { ...r.sync, status: 'pull' as const } };
      const from = r.sync.pushedTarget;
      if (r.deletedAt !== null || from === null || from === to) return r;
      return { ...r, sync: { ...r.sync, moving: { from, to } } };
    });
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
  ): Promise<Page<Relay, string>> {
    const scope = scopeOf(principal);
    // A tenant asking for another owner, or an agent for another fleet, gets an empty page.
    if (scope.owner !== undefined && opts.owner !== undefined && opts.owner !== scope.owner) {
      return { items: [], next: null };
    }
    if (scope.fleet !== undefined && opts.fleet !== undefined && opts.fleet !== scope.fleet) {
      return { items: [], next: null };
    }
    const { status, ...rest } = opts;
    // `pull` is what readers see for a pull-only fleet's relays; the others show what push recorded.
    const byStatus =
      status === undefined ? {} : status === 'pull' ? { pullOnly: true } : { status, pullOnly: false };
    const page = await readPage(
      opts.limit,
      (limit) => this.store.listRelays({ ...rest, ...byStatus, ...scope, limit }),
      (relay) => relay.id,
    );
    return { ...page, items: await this.shown(page.items) };
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
    return this.shown(await this.failing(scope, limit));
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
    return this.shown([...wrong, ...unexpected, ...notServed, ...stale]);
  }

  /**
   * The caller's relays by live status: one grouped count when the caller sees every relay
   * (deleted relays only while still served), the caller's scope read page by page otherwise.
   */
  async liveTally(principal: Principal): Promise<Record<LiveStatus, number>> {
    const counts = Object.fromEntries(LIVE_STATUSES.map((s) => [s, 0])) as Record<LiveStatus, number>;
    const scope = scopeOf(principal);
    if (scope.owner === undefined && scope.fleet === undefined) {
      for (const c of await this.store.liveCounts()) counts[c.status] += c.n;
      return counts;
    }
    let after: string | undefined;
    do {
      const page = await this.listRelays(principal, { limit: 1000, ...(after ? { after } : {}) });
      for (const relay of page.items) counts[relay.live.status]++;
      after = page.next ?? undefined;
    } while (after);
    return counts;
  }

  /**
   * The caller's live relays by status, and how many are inactive: one grouped count when the
   * caller sees every relay, the caller's scope read page by page otherwise.
   */
  async relayTally(principal: Principal): Promise<RelayTally> {
    const byStatus = noStatuses();
    const byFleet = new Map<string, Record<SyncStatus, number>>();
    let inactive = 0;
    const add = (fleet: string, status: SyncStatus, n: number) => {
      byStatus[status] += n;
      const f = byFleet.get(fleet) ?? noStatuses();
      f[status] += n;
      byFleet.set(fleet, f);
    };
    const scope = scopeOf(principal);
    if (scope.owner === undefined && scope.fleet === undefined) {
      for (const c of await this.store.relayCounts()) {
        if (c.deleted) continue;
        add(c.fleet, c.status, c.n);
        if (c.inactive) inactive += c.n;
      }
      return { byStatus, inactive, byFleet };
    }
    let after: string | undefined;
    do {
      const page = await this.listRelays(principal, { limit: 1000, ...(after ? { after } : {}) });
      for (const relay of page.items) {
        add(relay.fleet, relay.sync.status, 1);
        if (relay.config.inactive) inactive++;
      }
      after = page.next ?? undefined;
    } while (after);
    return { byStatus, inactive, byFleet };
  }

  /**
   * Each fleet's target, from the fleet rows: a registered target's name, `default` for a fleet
   * with no row (or one set to default), null for a pull-only fleet. Only names bosun's own
   * config holds: the caller's scope applies to the relays these are used to group. `of`: the
   * only fleets asked about; a single one is read alone (a write's answer: its relay's fleet row,
   * not all of them, on every write).
   */
  async fleetTargets(of?: ReadonlySet<string>): Promise<(fleet: string) => string | null> {
    const [only] = of?.size === 1 ? of : [];
    const fleets =
      only === undefined
        ? await this.store.listFleets()
        : [await this.store.getFleet(only)].flatMap((f) => f ?? []);
    const rows = new Map(fleets.map((f) => [f.name, fleetTargetName(f.target)]));
    return (fleet) => (rows.has(fleet) ? rows.get(fleet)! : DEFAULT_TARGET);
  }

  /**
   * The caller's failed, then retrying, relays of the given fleets (at most `limit` of each status
   * per fleet), read fleet by fleet through the caller's scope.
   */
  async failingRelaysOf(principal: Principal, fleets: readonly string[], limit: number): Promise<Relay[]> {
    const scope = scopeOf(principal);
    const out: Relay[] = [];
    for (const fleet of fleets) {
      // An agent sees its own fleet only: another fleet's relays are none of its business.
      if (scope.fleet !== undefined && scope.fleet !== fleet) continue;
      out.push(...(await this.failing({ ...scope, fleet }, limit)));
    }
    return this.shown(out);
  }

  /**
   * Failed, then retrying, relays matching `filter` (at most `limit` of each). A pull-only fleet's
   * relays wait for no push: not failing, whatever push sync recorded before.
   */
  private async failing(filter: Omit<RelayFilter, 'status' | 'limit'>, limit: number): Promise<Relay[]> {
    const [failed, retrying] = await Promise.all(
      (['failed', 'retrying'] as const).map((status) =>
        this.store.listRelays({ ...filter, status, pullOnly: false, limit }),
      ),
    );
    return [...failed!, ...retrying!];
  }

  lastActivityId() {
    return this.store.lastActivityId();
  }

  /**
   * The largest id x such that every activity after x was created at or after `since`, found by
   * bisecting ids (ids and times both grow), so a long log costs a few indexed reads. Only a
   * position in the log: no activity is returned, so it needs no scope.
   */
  async activityIdBefore(since: number): Promise<number> {
    let lo = 0;
    let hi = await this.store.lastActivityId();
    // Invariant: the first activity after `hi` (none) is ≥ since; find the smallest such x.
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const [first] = await this.store.activitiesAfter({ after: mid, limit: 1 });
      if (!first || first.createdAt >= since) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

function scopeOf(principal: Principal): { owner?: string; fleet?: string } {
  if (principal.role === 'tenant') return { owner: principal.owner };
  if (principal.role === 'agent') return { fleet: principal.fleet };
  return {};
}
