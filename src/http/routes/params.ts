import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { BosunError } from '../../domain/errors.js';
import type { Principal } from '../../domain/principal.js';
import { parseOrThrow } from '../../domain/relay.js';

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new BosunError('unauthorized', 'not authenticated');
  return request.principal;
}

export function parseQuery<T extends z.ZodType>(schema: T, request: FastifyRequest): z.output<T> {
  return parseOrThrow(schema, request.query ?? {});
}

export function idParam(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}
