import type { FastifyInstance } from 'fastify';
import { setLiveGauges, setRelayGauges } from '../../metrics.js';
import { VERSION } from '../../version.js';
import type { AppDeps } from '../deps.js';
import { defineRoute } from './define.js';

export function registerHealthRoutes(app: FastifyInstance, deps: AppDeps): void {
  const tag = 'operations';
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/healthz',
      tag,
      access: 'public',
      summary: 'Liveness',
      responses: { 200: { description: '`{"status": "ok", "version": "…"}`' } },
    },
    async () => ({ status: 'ok', version: VERSION }),
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/readyz',
      tag,
      access: 'public',
      summary:
        'Readiness: the database, the worker lease (`holder` / `standby`), push sync, the push targets held',
      responses: {
        200: { description: '`{"status": "ready", "checks": {...}}`' },
        503: { description: '`{"status": "not ready", "checks": {...}}`: each failing check says why' },
      },
    },
    async (_request, reply) => {
      const checks: Record<string, string> = {};
      let ready = true;
      const all = { database: () => deps.store.ping(), ...deps.readiness };
      for (const [name, check] of Object.entries(all)) {
        try {
          const shown = await check();
          checks[name] = typeof shown === 'string' ? shown : 'ok';
        } catch (err) {
          ready = false;
          checks[name] = err instanceof Error ? err.message : String(err);
        }
      }
      return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/metrics',
      tag,
      access: 'public',
      summary: 'Prometheus metrics (text exposition format)',
      responses: { 200: { description: 'Prometheus text', contentType: 'text/plain; version=0.0.4' } },
    },
    async (_request, reply) => {
      const [counts, live, targetOf] = await Promise.all([
        deps.store.relayCounts(),
        deps.store.liveCounts(),
        deps.query.fleetTargets(),
      ]);
      setRelayGauges(deps.metrics, counts, deps.clock.now(), targetOf);
      setLiveGauges(deps.metrics, live);
      deps.metrics.agentsConnected.set(deps.streams?.stats().streams ?? 0);
      return reply
        .header('content-type', deps.metrics.registry.contentType)
        .send(await deps.metrics.registry.metrics());
    },
  );
}
