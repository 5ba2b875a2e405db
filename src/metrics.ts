import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { LIVE_STATUSES, type LiveStatus } from './domain/live.js';
import type { SyncStatus } from './domain/relay.js';
import { DEFAULT_TARGET } from './domain/target.js';
import type { LiveCount, RelayCount } from './store/port.js';
import { VERSION } from './version.js';

/** One registry per peer, so tests that start several peers never share counters. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bosun_' });
  new Gauge({
    name: 'bosun_build_info',
    help: 'Always 1; the version label says which bosun this process runs',
    labelNames: ['version'] as const,
    registers: [registry],
  }).set({ version: VERSION }, 1);
  // prom-client names three gauges `_total`, which Prometheus reserves for counters (promtool
  // refuses them); each is the sum of its per-type gauge (`bosun_nodejs_active_handles{type}`, …).
  for (const kind of ['handles', 'requests', 'resources']) {
    registry.removeSingleMetric(`bosun_nodejs_active_${kind}_total`);
  }
  return {
    registry,
    httpRequests: new Counter({
      name: 'bosun_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'bosun_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    syncs: new Counter({
      name: 'bosun_syncs_total',
      help: 'Relay syncs to zooid by outcome (synced, retry, failed, skipped), method and target',
      labelNames: ['outcome', 'method', 'target'] as const,
      registers: [registry],
    }),
    syncDuration: new Histogram({
      name: 'bosun_sync_duration_seconds',
      help: 'Duration of one relay sync to zooid, fallbacks included, by target',
      labelNames: ['target'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    }),
    commitToSyncStart: new Histogram({
      name: 'bosun_commit_to_sync_start_seconds',
      help: 'Time from a relay change being committed to its sync starting',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'bosun_sync_queue_depth',
      help: "Relays waiting for a sync worker, by observer: a held target's, or _all (one observer for every target)",
      labelNames: ['target'] as const,
      registers: [registry],
    }),
    retriesScheduled: new Counter({
      name: 'bosun_sync_retries_scheduled_total',
      help: 'Sync retries scheduled after a failure (or while the target backs off), by target',
      labelNames: ['target'] as const,
      registers: [registry],
    }),
    observerCursor: new Gauge({
      name: 'bosun_observer_cursor',
      help: "Activity id up to which every change is synced or durably scheduled, by observer: a held target's, or _all",
      labelNames: ['target'] as const,
      registers: [registry],
    }),
    choreRuns: new Counter({
      name: 'bosun_chore_runs_total',
      help: 'Chore runs by chore and result (ok, failed)',
      labelNames: ['chore', 'result'] as const,
      registers: [registry],
    }),
    choreDuration: new Histogram({
      name: 'bosun_chore_duration_seconds',
      help: 'Duration of one chore run',
      labelNames: ['chore'] as const,
      buckets: [0.001, 0.01, 0.1, 1, 10, 60, 600],
      registers: [registry],
    }),
    zooidUp: new Gauge({
      name: 'bosun_zooid_up',
      help: '1 when the zooid API answers its probe and the last syncs did not all fail (401, 403, 5xx, network), else 0',
      labelNames: ['target'] as const,
      registers: [registry],
    }),
    zooidProbeSeconds: new Gauge({
      name: 'bosun_zooid_probe_seconds',
      help: 'Latency of the last zooid API probe',
      labelNames: ['target'] as const,
      registers: [registry],
    }),
    activityStreams: new Gauge({
      name: 'bosun_activity_streams',
      help: 'Open GET /v1/activities/stream connections (dashboard live feeds)',
      registers: [registry],
    }),
    agentsConnected: new Gauge({
      name: 'bosun_agents_connected',
      help: 'Agent streams open on this replica (set at scrape time)',
      registers: [registry],
    }),
    streamEventsSent: new Counter({
      name: 'bosun_stream_events_sent_total',
      help: 'Agent stream events written (puts, patches, deletes; heartbeats not counted)',
      registers: [registry],
    }),
    relaysByStatus: new Gauge({
      name: 'bosun_relays',
      help: 'Live relays by sync status',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    // A series of its own rather than a label on bosun_relays: its series stay as they were.
    relaysByTarget: new Gauge({
      name: 'bosun_target_relays',
      help: `Live relays by target and sync status (a pull-only fleet's: target="${PULL_TARGET}")`,
      labelNames: ['target', 'status'] as const,
      registers: [registry],
    }),
    relaysByFleet: new Gauge({
      name: 'bosun_fleet_relays',
      help: `Live relays by fleet and sync status: the ${MAX_FLEET_LABELS} largest fleets, the rest summed as fleet="${OTHER_FLEETS}"`,
      labelNames: ['fleet', 'status'] as const,
      registers: [registry],
    }),
    relaysInactive: new Gauge({
      name: 'bosun_relays_inactive',
      help: 'Live relays marked inactive (zooid keeps them but does not serve them)',
      registers: [registry],
    }),
    relaysLive: new Gauge({
      name: 'bosun_relays_live',
      help: 'Relays by live status (what zooid serves, read back over NIP-11); deleted relays only while still served',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    liveCheckSeconds: new Histogram({
      name: 'bosun_live_check_seconds',
      help: "Time to read one relay's NIP-11 document back from zooid",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    liveRepairs: new Counter({
      name: 'bosun_live_repairs_total',
      help: 'Full PUTs sent because a relay stayed stale or not served past the grace period',
      registers: [registry],
    }),
    oldestUnsyncedAge: new Gauge({
      name: 'bosun_oldest_unsynced_change_age_seconds',
      help: 'Age of the latest change of the longest-waiting pending or retrying relay (deletes included); 0 when none waits',
      registers: [registry],
    }),
  };
}

/**
 * A fleet label per fleet would grow with the fleets an operator creates: the largest
 * MAX_FLEET_LABELS fleets get their own label, the rest are summed under OTHER_FLEETS (not a valid
 * fleet name, so it never collides with one).
 */
export const MAX_FLEET_LABELS = 100;
/** The target label of relays no target is pushed to (pull-only fleets): `none`, as in fleet.toml. */
export const PULL_TARGET = 'none';
export const OTHER_FLEETS = '_other';

/**
 * Sets the relay gauges at scrape time from one grouped count of the relays table; `targetOf`
 * names each fleet's target (null: pull-only). Targets are few (each one registered by an admin),
 * so bosun_target_relays has a series per target, unlike fleets (see MAX_FLEET_LABELS).
 */
export function setRelayGauges(
  m: Metrics,
  counts: readonly RelayCount[],
  now: number,
  targetOf: (fleet: string) => string | null = () => DEFAULT_TARGET,
): void {
  const zero = (): Record<SyncStatus, number> => ({ pending: 0, synced: 0, retrying: 0, failed: 0, pull: 0 });
  const byStatus = zero();
  // `default` always has its full set of series: a query for a status finds a 0, not nothing.
  const byTarget = new Map<string, Record<SyncStatus, number>>([[DEFAULT_TARGET, zero()]]);
  const byFleet = new Map<string, Record<SyncStatus, number>>();
  let inactive = 0;
  let oldest = now;
  for (const c of counts) {
    if ((c.status === 'pending' || c.status === 'retrying') && c.oldestChangeAt < oldest) {
      oldest = c.oldestChangeAt;
    }
    if (c.deleted) continue;
    byStatus[c.status] += c.n;
    const target = targetOf(c.fleet) ?? PULL_TARGET;
    const t = byTarget.get(target) ?? zero();
    byTarget.set(target, t);
    t[c.status] += c.n;
    if (c.inactive) inactive += c.n;
    const f = byFleet.get(c.fleet) ?? zero();
    byFleet.set(c.fleet, f);
    f[c.status] += c.n;
  }
  for (const [status, n] of Object.entries(byStatus)) m.relaysByStatus.set({ status }, n);
  // A target that lost its last relay (or was removed) must not keep its old series.
  m.relaysByTarget.reset();
  for (const [target, t] of byTarget) {
    for (const [status, n] of Object.entries(t)) m.relaysByTarget.set({ target, status }, n);
  }
  m.relaysInactive.set(inactive);
  m.oldestUnsyncedAge.set(Math.max(0, now - oldest) / 1000);

  const size = (f: Record<SyncStatus, number>) => f.pending + f.synced + f.retrying + f.failed + f.pull;
  const fleets = [...byFleet].sort(([a, fa], [b, fb]) => size(fb) - size(fa) || a.localeCompare(b));
  const other = zero();
  // A fleet that lost its last relay, or fell out of the top, must not keep its old series.
  m.relaysByFleet.reset();
  for (const [i, [fleet, f]] of fleets.entries()) {
    for (const [status, n] of Object.entries(f) as [SyncStatus, number][]) {
      if (i < MAX_FLEET_LABELS) m.relaysByFleet.set({ fleet, status }, n);
      else other[status] += n;
    }
  }
  if (fleets.length > MAX_FLEET_LABELS) {
    for (const [status, n] of Object.entries(other)) m.relaysByFleet.set({ fleet: OTHER_FLEETS, status }, n);
  }
}

/** Sets bosun_relays_live at scrape time: every status, 0 when no relay has it. */
export function setLiveGauges(m: Metrics, counts: readonly LiveCount[]): void {
  const byStatus = Object.fromEntries(LIVE_STATUSES.map((s) => [s, 0])) as Record<LiveStatus, number>;
  for (const c of counts) byStatus[c.status] += c.n;
  for (const [status, n] of Object.entries(byStatus)) m.relaysLive.set({ status }, n);
}

/**
 * Push sync's load on each target, read at scrape time from the router: requests in flight, relays
 * waiting for a free slot, relays held while the target backs off.
 */
export function watchTargetLoad(
  m: Metrics,
  router: { load(): { target: string; inFlight: number; waiting: number; held: number }[] },
): void {
  const gauges = [
    ['bosun_sync_in_flight', 'Sync requests in flight, by target', 'inFlight'],
    ['bosun_sync_waiting', "Relays waiting for a free slot of their target's in-flight limit", 'waiting'],
    ['bosun_sync_held', 'Relays recorded retrying while their target backs off (no answer)', 'held'],
  ] as const;
  for (const [name, help, field] of gauges) {
    new Gauge({
      name,
      help,
      labelNames: ['target'] as const,
      registers: [m.registry],
      collect() {
        this.reset();
        for (const load of router.load()) this.set({ target: load.target }, load[field]);
      },
    });
  }
}

/** PostgreSQL pool gauges, read at scrape time (pg.Pool's own counters). */
export function watchPgPool(
  m: Metrics,
  pool: { readonly totalCount: number; readonly idleCount: number; readonly waitingCount: number },
): void {
  new Gauge({
    name: 'bosun_pg_pool_clients',
    help: 'PostgreSQL pool connections by state (in_use: checked out by a query or transaction)',
    labelNames: ['state'] as const,
    registers: [m.registry],
    collect() {
      this.set({ state: 'in_use' }, pool.totalCount - pool.idleCount);
      this.set({ state: 'idle' }, pool.idleCount);
    },
  });
  new Gauge({
    name: 'bosun_pg_pool_waiting',
    help: 'Queries waiting for a PostgreSQL pool connection (all in use)',
    registers: [m.registry],
    collect() {
      this.set(pool.waitingCount);
    },
  });
}

export type Metrics = ReturnType<typeof createMetrics>;
