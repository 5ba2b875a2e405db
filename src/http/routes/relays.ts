import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { createRelaySchema, type Relay, updatedDocumentSchema, viewRelay } from '../../domain/relay.js';
import type { AppDeps } from '../deps.js';
import { defineRoute } from './define.js';
import { idParam, principalOf } from './params.js';

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

const relayId = { id: z.string().describe('relay id') };
const relay = (description: string) => ({ description });

export function registerRelayRoutes(app: FastifyInstance, { command, query }: AppDeps): void {
  const view = (r: Relay) => viewRelay(r);
  const tag = 'relays';

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/relays',
      tag,
      access: 'writer',
      summary: 'Create a relay',
      body: { schema: createRelaySchema, parsedBy: 'domain', required: true },
      responses: { 201: relay('the relay (Location: /v1/relays/<id>)') },
      errors: [409],
    },
    async (request, reply) => {
      const { relay } = await command.createRelay(principalOf(request), request.body ?? {});
      return reply.status(201).header('location', `/v1/relays/${relay.id}`).send(view(relay));
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/relays',
      tag,
      access: 'caller',
      summary: 'List relays, keyset-paginated by id (`next` → `after`)',
      query: listQuery,
      responses: { 200: { description: '`{"relays": [...], "next": "<id>" | null}`' } },
    },
    async (request, _reply, { query: q }) => {
      const page = await query.listRelays(principalOf(request), q);
      return { relays: page.items.map(view), next: page.next };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/relays/:id',
      tag,
      access: 'caller',
      summary: 'One relay',
      params: relayId,
      responses: { 200: relay('the relay') },
    },
    async (request) => view(await query.getRelay(principalOf(request), idParam(request))),
  );

  defineRoute(
    app,
    {
      method: 'PATCH',
      url: '/v1/relays/:id',
      tag,
      access: 'writer',
      summary: 'Update a relay with a JSON merge patch (RFC 7396); `null` resets a field',
      params: relayId,
      body: {
        schema: updatedDocumentSchema,
        parsedBy: 'domain',
        required: true,
        mergePatch: true,
        contentTypes: ['application/merge-patch+json', 'application/json'],
      },
      responses: { 200: relay('the relay') },
      errors: [409],
    },
    async (request) => {
      const { relay } = await command.updateRelay(principalOf(request), idParam(request), request.body);
      return view(relay);
    },
  );

  for (const [verb, summary] of [
    ['activate', 'Serve the relay again (`inactive: false`)'],
    ['deactivate', 'Stop serving the relay (`inactive: true`); zooid keeps it'],
  ] as const) {
    defineRoute(
      app,
      {
        method: 'POST',
        url: `/v1/relays/:id/${verb}`,
        tag,
        access: 'writer',
        summary,
        params: relayId,
        responses: { 200: relay('the relay') },
      },
      async (request) => {
        const principal = principalOf(request);
        const id = idParam(request);
        const done =
          verb === 'activate' ? command.activateRelay(principal, id) : command.deactivateRelay(principal, id);
        return view((await done).relay);
      },
    );
  }

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/relays/:id/sync',
      tag,
      access: 'writer',
      summary: 'Ask for a resync; clears a failed state',
      params: relayId,
      responses: { 202: relay('the relay, its resync queued') },
    },
    async (request, reply) => {
      const { relay } = await command.resyncRelay(principalOf(request), idParam(request));
      return reply.status(202).send(view(relay));
    },
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/relays/:id/rotate-secret',
      tag,
      access: 'writer',
      summary: 'A new secret; the old one stays valid for agents for `grace_seconds` (default 24 h)',
      params: relayId,
      body: { schema: rotateBody, parsedBy: 'route' },
      responses: { 200: relay('the relay, with its expiring credential') },
    },
    async (request, _reply, { body }) => {
      const graceMs = (body.grace_seconds ?? DEFAULT_GRACE_SECONDS) * 1000;
      return view((await command.rotateSecret(principalOf(request), idParam(request), graceMs)).relay);
    },
  );

  defineRoute(
    app,
    {
      method: 'DELETE',
      url: '/v1/relays/:id',
      tag,
      access: 'writer',
      summary: 'Delete a relay (a tombstone is kept for versions and zooid clean-up)',
      params: relayId,
      responses: { 200: relay('the deleted relay') },
    },
    async (request) => view((await command.deleteRelay(principalOf(request), idParam(request))).relay),
  );
}
