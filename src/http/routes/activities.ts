import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { viewActivity } from '../../domain/activity.js';
import type { AppDeps } from '../deps.js';
import { defineRoute } from './define.js';
import { principalOf } from './params.js';

const activitiesQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  relay: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export function registerActivityRoutes(app: FastifyInstance, { query }: AppDeps): void {
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/activities',
      tag: 'activities',
      access: 'caller',
      summary: 'The activity log after a cursor (`next` → `after`)',
      query: activitiesQuery,
      responses: { 200: { description: '`{"activities": [...], "next": <id>}`' } },
    },
    async (request, _reply, { query: q }) => {
      const page = await query.activities(principalOf(request), {
        after: q.after,
        limit: q.limit,
        ...(q.relay !== undefined ? { relayId: q.relay } : {}),
      });
      return { activities: page.items.map(viewActivity), next: page.next };
    },
  );
}
