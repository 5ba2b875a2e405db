import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LIVE_STATUSES } from '../../domain/live.js';
import { createRelaySchema, type Relay, updatedDocumentSchema, viewRelay } from '../../domain/relay.js';
import type { AppDeps } from '../deps.js';
import { defineRoute } from './define.js';
import { idParam, principalOf, relayId } from './params.js';

const listQuery = z.strictObject({
  owner: z.string().max(128).optional(),
  fleet: z.string().max(64).optional(),
  status: z.enum(['pending', 'synced', 'retrying', 'failed', 'pull']).optional(),
  live: z.enum(LIVE_STATUSES).optional(),
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

const isoTime = z.string().describe('ISO 8601 time');
const liveField = z.object({ want: z.string(), got: z.string() });
/** A relay as every relay answer shows it (viewRelay): documentation of the response only. */
const relayViewSchema = z.object({
  id: z.string(),
  owner: z.string(),
  fleet: z.string(),
  version: z.number().int().describe('counts the changes zooid and agents see'),
  deleted: z.boolean(),
  config: z
    .record(z.string(), z.unknown())
    .describe('the zooid relay config without `secret`; `livekit.api_secret` shown as `api_secret_set`'),
  created_at: isoTime,
  updated_at: isoTime,
  sync: z
    .object({
      status: z
        .enum(['pending', 'synced', 'retrying', 'failed', 'pull'])
        .describe('`pull`: the fleet is pull-only (its agents configure zooid), bosun pushes nothing'),
      error: z.string(),
      attempts: z.number().int(),
      next_attempt_at: isoTime.nullable(),
      synced_version: z.number().int(),
      last_synced_at: isoTime.nullable(),
      target: z
        .string()
        .nullable()
        .describe('the target (`default` or a target name) on which zooid holds the relay; null: on none'),
      moving: z
        .object({ from: z.string(), to: z.string() })
        .optional()
        .describe(
          "only while the relay's fleet pushes to another target than the one it is on: push sync creates it on `to`, then deletes it from `from` (zooid keeps a deleted relay's data there)",
        ),
    })
    .describe('whether zooid accepted the config (push sync)'),
  live: z
    .object({
      status: z
        .enum(LIVE_STATUSES)
        .describe(
          '`live` served as recorded; `stale` served but differs (see `diff`); `not_served` not served (for an inactive or deleted relay: as wanted); `unexpected` an inactive or deleted relay is still served; `wrong_identity` served under another key than the stored secret; `unknown` never checked or verification off',
        ),
      checked_at: isoTime.nullable(),
      error: z.string().describe('why it is not live, at most 120 characters'),
      diff: z
        .object({ name: liveField, description: liveField, icon: liveField, pubkey: liveField })
        .partial()
        .optional()
        .describe('only when stale: per field, the recorded value and the served one'),
    })
    .describe("what zooid really serves, read back from the relay's NIP-11 document"),
  expiring: z
    .array(z.object({ name: z.string(), fingerprint: z.string(), expires_at: isoTime }))
    .optional()
    .describe('rotated credentials in their grace period (fingerprints, never values)'),
});
const relay = (description: string) => ({ description, schema: relayViewSchema });

export function registerRelayRoutes(app: FastifyInstance, { command, query }: AppDeps): void {
  // A write's answer shows the relay as a read would (`pull` for a pull-only fleet's, `moving` while it
  // moves); reads come from Query already so.
  const view = async (r: Relay) => viewRelay(await query.present(r));
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
      return reply
        .status(201)
        .header('location', `/v1/relays/${relay.id}`)
        .send(await view(relay));
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
      responses: {
        200: {
          description: 'a page of relays; `next` is the `after` of the next page (null: the last)',
          schema: z.object({ relays: z.array(relayViewSchema), next: z.string().nullable() }),
        },
      },
    },
    async (request, _reply, { query: q }) => {
      const page = await query.listRelays(principalOf(request), q);
      return { relays: page.items.map(viewRelay), next: page.next };
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
    async (request) => viewRelay(await query.getRelay(principalOf(request), idParam(request))),
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
        return await view((await done).relay);
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
      return reply.status(202).send(await view(relay));
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
