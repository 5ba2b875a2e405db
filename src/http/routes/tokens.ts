import type { FastifyInstance } from 'fastify';
import { viewToken } from '../../domain/principal.js';
import type { AppDeps } from '../app.js';
import { requireAdmin } from '../auth.js';
import { idParam, principalOf } from './params.js';

export function registerTokenRoutes(app: FastifyInstance, { tokens }: AppDeps): void {
  app.post('/v1/tokens', async (request, reply) => {
    requireAdmin(principalOf(request));
    const { token, info } = await tokens.create(request.body ?? {});
    // The only time the token is ever shown.
    return reply.status(201).send({ token, ...viewToken(info) });
  });

  app.get('/v1/tokens', async (request) => {
    requireAdmin(principalOf(request));
    return { tokens: (await tokens.list()).map(viewToken) };
  });

  app.delete('/v1/tokens/:id', async (request, reply) => {
    requireAdmin(principalOf(request));
    await tokens.revoke(idParam(request));
    return reply.status(204).send();
  });
}
