import type { FastifyInstance } from 'fastify';
import { setRelayGauges } from '../../metrics.js';
import type { AppDeps } from '../app.js';
import { requireAdmin } from '../auth.js';
import { principalOf } from './params.js';

export function registerHealthRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
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
  });

  app.get('/v1/targets', async (request) => {
    requireAdmin(principalOf(request));
    return { targets: deps.targets?.() ?? [] };
  });

  app.get('/metrics', async (_request, reply) => {
    setRelayGauges(deps.metrics, await deps.store.relayCounts(), deps.clock.now());
    deps.metrics.agentsConnected.set(deps.streams?.stats().streams ?? 0);
    return reply
      .header('content-type', deps.metrics.registry.contentType)
      .send(await deps.metrics.registry.metrics());
  });
}
