import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  fleetBodySchema,
  MAX_FLEET_BODY_BYTES,
  parseFleetBody,
  resolveFleet,
} from '../../domain/fleet/spec.js';
import { checkFleetName, fleetNameSchema } from '../../domain/relay.js';
import { fleetTargetBodySchema, fleetTargetName, fleetTargetOf } from '../../domain/target.js';
import { fleetStateHistory } from '../../fleet/states.js';
import type { AppDeps } from '../deps.js';
import { defineRoute } from './define.js';
import { principalOf } from './params.js';
import { fleetSummaries } from './targets.js';

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

  const tag = 'fleets';
  const name = { name: fleetNameSchema.describe('fleet name') };
  for (const [verb, summary] of [
    ['plan', 'What applying this fleet directory would change (nothing is written)'],
    ['apply', 'Apply a parsed fleet directory in one transaction'],
  ] as const) {
    defineRoute(
      app,
      {
        method: 'POST',
        url: `/v1/fleets/:name/${verb}`,
        tag,
        access: 'writer',
        summary,
        description: 'Bodies may be up to 64 MiB (10,000 relays).',
        params: name,
        body: { schema: fleetBodySchema, parsedBy: 'domain', required: true },
        responses: { 200: { description: verb === 'plan' ? 'the plan' : 'what was applied' } },
        errors: [409],
        options: large,
      },
      async (request) => {
        const principal = principalOf(request);
        const fleet = nameParam(request);
        const body = parseFleetBody(fleet, request.body);
        const spec = resolveFleet(fleet, body);
        return verb === 'plan'
          ? command.planFleet(principal, fleet, spec, { prune: body.prune })
          : command.applyFleet(principal, fleet, spec, { prune: body.prune });
      },
    );
  }

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/fleets/:name/states',
      tag,
      access: 'caller',
      summary: 'The applied versions of a fleet, newest first',
      params: name,
      query: statesQuery,
      responses: { 200: { description: 'fleet versions' } },
    },
    async (request, _reply, { query: q }) =>
      fleetStateHistory(store, principalOf(request), nameParam(request), {
        limit: q.limit,
        ...(q.before !== undefined ? { before: q.before } : {}),
      }),
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/fleets',
      tag,
      access: 'admin',
      summary: 'Fleets (with relays or a target set): their target and live relays by sync status',
      responses: { 200: { description: '`{"fleets": [{"name", "target", "relays"}]}`' } },
    },
    async () => {
      return { fleets: await fleetSummaries(store) };
    },
  );

  defineRoute(
    app,
    {
      method: 'PUT',
      url: '/v1/fleets/:name',
      tag,
      access: 'admin',
      summary: 'Pin a fleet to a target (`default` included), or make it pull-only with `null`',
      params: name,
      body: { schema: fleetTargetBodySchema, parsedBy: 'route', required: true },
      responses: {
        200: {
          description:
            '`{"name", "target", "moved": {"relays", "from", "to"}}`: `moved` counts the live relays that push sync moves (creates on the new target, then deletes from each target in `from`; zooid keeps the data of a relay deleted from a target). A pull-only fleet moves nothing: its relays stay where they are',
        },
      },
    },
    async (request, _reply, { body }) => {
      const principal = principalOf(request);
      const fleet = nameParam(request);
      const set = await command.setFleetTarget(principal, fleet, fleetTargetOf(body.target));
      return { name: set.fleet.name, target: fleetTargetName(set.fleet.target), moved: set.moved };
    },
  );
}
