import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createTokenSchema } from '../../auth/tokens.js';
import { viewToken } from '../../domain/principal.js';
import type { AppDeps } from '../deps.js';
import { routeGroup } from './define.js';
import { idParam } from './params.js';

export function registerTokenRoutes(app: FastifyInstance, { tokens }: AppDeps): void {
  const routes = routeGroup(app, { tag: 'tokens', access: 'admin' });
  routes.post(
    '/v1/tokens',
    {
      summary: 'Create a token (the token is shown only in this answer)',
      body: { schema: createTokenSchema, parsedBy: 'domain', required: true },
      responses: { 201: { description: 'the token and its record' } },
    },
    async (request, reply) => {
      const { token, info } = await tokens.create(request.body ?? {});
      // The only time the token is ever shown.
      return reply.status(201).send({ token, ...viewToken(info) });
    },
  );

  routes.get(
    '/v1/tokens',
    {
      summary: 'List tokens (never their values)',
      responses: { 200: { description: '`{"tokens": [...]}`' } },
    },
    async () => {
      return { tokens: (await tokens.list()).map(viewToken) };
    },
  );

  routes.delete(
    '/v1/tokens/:id',
    {
      summary: 'Revoke a token',
      params: { id: z.string().describe('token id') },
      responses: { 204: { description: 'revoked' } },
    },
    async (request, reply) => {
      await tokens.revoke(idParam(request));
      return reply.status(204).send();
    },
  );
}
