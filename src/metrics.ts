import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per peer, so tests that start several peers never share counters. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bosun_' });
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
      help: 'Relay syncs to zooid by outcome (synced, retry, failed, skipped) and method',
      labelNames: ['outcome', 'method'] as const,
      registers: [registry],
    }),
    syncDuration: new Histogram({
      name: 'bosun_sync_duration_seconds',
      help: 'Duration of one relay sync to zooid, fallbacks included',
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
      help: 'Relays waiting for a sync worker',
      registers: [registry],
    }),
    retriesScheduled: new Counter({
      name: 'bosun_sync_retries_scheduled_total',
      help: 'Sync retries scheduled after a failure',
      registers: [registry],
    }),
    observerCursor: new Gauge({
      name: 'bosun_observer_cursor',
      help: 'Activity id up to which every change is synced or durably scheduled',
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
      help: '1 when the last probe of the zooid API got an answer, else 0',
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
