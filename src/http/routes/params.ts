import type { FastifyRequest } from 'fastify';
import { BosunError } from '../../domain/errors.js';
import type { Principal } from '../../domain/principal.js';

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new BosunError('unauthorized', 'not authenticated');
  return request.principal;
}

export function idParam(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}
