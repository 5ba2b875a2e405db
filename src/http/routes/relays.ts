import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseOrThrow, type Relay, viewRelay } from '../../domain/relay.js';
import type { AppDeps } from '../app.js';
import { idParam, parseQuery, principalOf } from './params.js';

const listQuery = z.strictObject({
  owner: z.string().max(128).optional(),
  fleet: z.string().max(64).optional(),
  status: z.enum(['pending', 'synced', 'retrying', 'failed']).optional(),
  inactive: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  after: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** `POST /v1/relays/:id/rotate-secret`: how long the old secret stays valid (default 24 h). */
const DEFAULT_GRACE_SECONDS = 86_400;
const rotateBody = z.strictObject({
  grace_seconds: z
    .number()
    .int()
    .min(0)
    .max(365 * 86_400, 'must be at most 365 days')
    .optional(),
});

export function registerRelayRoutes(app: FastifyInstance, { command, query }: AppDeps): void {
  const view = (r: Relay) => viewRelay(r);

  app.post('/v1/relays', async (request, reply) => {
    const { relay } = await command.createRelay(principalOf(request), request.body ?? {});
    return reply.status(201).header('location', `/v1/relays/${relay.id}`).send(view(relay));
  });

  app.get('/v1/relays', async (request) => {
    const q = parseQuery(listQuery, request);
    const page = await query.listRelays(principalOf(request), q);
    return { relays: page.items.map(view), next: page.next };
  });

  app.get('/v1/relays/:id', async (request) =>
    view(await query.getRelay(principalOf(request), idParam(request))),
  );

  app.patch('/v1/relays/:id', async (request) => {
    const { relay } = await command.updateRelay(principalOf(request), idParam(request), request.body);
    return view(relay);
  });

  app.post('/v1/relays/:id/activate', async (request) =>
    view((await command.activateRelay(principalOf(request), idParam(request))).relay),
  );
  app.post('/v1/relays/:id/deactivate', async (request) =>
    view((await command.deactivateRelay(principalOf(request), idParam(request))).relay),
  );
  app.post('/v1/relays/:id/sync', async (request, reply) => {
    const { relay } = await command.resyncRelay(principalOf(request), idParam(request));
    return reply.status(202).send(view(relay));
  });

  app.post('/v1/relays/:id/rotate-secret', async (request) => {
    const { grace_seconds } = parseOrThrow(rotateBody, request.body ?? {});
    const graceMs = (grace_seconds ?? DEFAULT_GRACE_SECONDS) * 1000;
    return view((await command.rotateSecret(principalOf(request), idParam(request), graceMs)).relay);
  });

  app.delete('/v1/relays/:id', async (request) =>
    view((await command.deleteRelay(principalOf(request), idParam(request))).relay),
  );
}
