import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  checkFleetName,
  MAX_FLEET_BODY_BYTES,
  parseFleetBody,
  resolveFleet,
} from '../../domain/fleet/spec.js';
import { fleetStateHistory } from '../../fleet/states.js';
import type { AppDeps } from '../app.js';
import { parseQuery, principalOf } from './params.js';

const statesQuery = z.strictObject({
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(50).default(10),
});

const nameParam = (request: FastifyRequest) => {
  const { name } = request.params as { name: string };
  checkFleetName(name);
  return name;
};

/**
 * Declarative fleets: plan and apply a parsed fleet directory, and read the applied versions.
 * Bodies may be up to 64 MiB (10,000 relays); like every /v1 route, a request without valid
 * credentials is refused before its body is read (app.ts).
 */
export function registerFleetRoutes(app: FastifyInstance, { command, store }: AppDeps): void {
  const large = { bodyLimit: MAX_FLEET_BODY_BYTES };

  app.post('/v1/fleets/:name/plan', large, async (request) => {
    const principal = principalOf(request);
    const name = nameParam(request);
    const body = parseFleetBody(name, request.body);
    return command.planFleet(principal, name, resolveFleet(name, body), { prune: body.prune });
  });

  app.post('/v1/fleets/:name/apply', large, async (request) => {
    const principal = principalOf(request);
    const name = nameParam(request);
    const body = parseFleetBody(name, request.body);
    return command.applyFleet(principal, name, resolveFleet(name, body), { prune: body.prune });
  });

  app.get('/v1/fleets/:name/states', async (request) => {
    const q = parseQuery(statesQuery, request);
    return fleetStateHistory(store, principalOf(request), nameParam(request), {
      limit: q.limit,
      ...(q.before !== undefined ? { before: q.before } : {}),
    });
  });
}
