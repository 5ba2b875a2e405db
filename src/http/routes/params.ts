import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BosunError } from '../../domain/errors.js';
import type { Principal } from '../../domain/principal.js';

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new BosunError('unauthorized', 'not authenticated');
  return request.principal;
}

/** The `:id` of the relay routes (the API's and the dashboard's), as the OpenAPI document describes it. */
export const relayId = { id: z.string().describe('relay id') };

export function idParam(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}
