import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { TokenWatch } from '../../auth/token-watch.js';
import type { Credential } from '../../auth/tokens.js';
import { parseDuration } from '../../domain/duration.js';
import { BosunError } from '../../domain/errors.js';
import type { Principal } from '../../domain/principal.js';
import { targetNotFound } from '../../domain/target.js';
import type { AppDeps } from '../deps.js';
import { defineRoute } from '../routes/define.js';
import { idParam, principalOf, relayId } from '../routes/params.js';
import { targetViews } from '../routes/targets.js';
import { type Asset, loadAssets } from './assets.js';
import { DashboardData } from './data.js';
import { ActivityStreams, DEFAULT_STREAM_OPTIONS } from './stream.js';
import { StreamTickets } from './ticket.js';

/**
 * The web dashboard: a sign-in page and one small script at `/` (no auth needed to load them), and
 * the `/v1` read models and activity stream it draws from (all authenticated and tenant-scoped).
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const streamQuery = z.strictObject({
  ticket: z.string().max(2048).optional(),
  after: z.coerce.number().int().min(0).optional(),
  tail: z.coerce.number().int().min(0).max(1000).optional(),
});

const statsQuery = z.strictObject({
  window: z
    .string()
    .describe('a duration from 1m to 7d, e.g. 15m, 1h, 2d')
    .default('1h')
    .transform((w, ctx) => {
      const ms = parseDuration(w);
      if (ms === null || ms < 60_000 || ms > 7 * 86_400_000) {
        ctx.addIssue({ code: 'custom', message: 'must be a duration from 1m to 7d, e.g. 1h' });
        return z.NEVER;
      }
      return ms;
    }),
});

export interface DashboardHandle {
  streams: ActivityStreams;
  tickets: StreamTickets;
}

export function registerDashboard(app: FastifyInstance, deps: AppDeps): DashboardHandle {
  const assets = loadAssets();
  const data = new DashboardData(deps.query, deps.clock);
  const isLive = (credential: Credential) => deps.tokens.isLive(credential);
  const tickets = new StreamTickets(deps.store, deps.clock, isLive, deps.dashboard?.ticketTtlMs);
  const options = { ...DEFAULT_STREAM_OPTIONS, ...deps.dashboard?.stream };
  const watch = new TokenWatch({
    isLive,
    clock: deps.clock,
    logger: deps.logger,
    intervalMs: options.tokenCheckMs,
  });
  const streams = new ActivityStreams(
    {
      query: deps.query,
      notifier: deps.notifier,
      logger: deps.logger,
      serialCommits: deps.query.serialCommits,
      onClients: (n) => deps.metrics.activityStreams.set(n),
      watch,
    },
    options,
  );
  app.addHook('onReady', async () => {
    await tickets.prepare().catch((err: unknown) => {
      deps.logger.warn({ err }, 'stream-ticket key not ready; trying again on the first ticket');
    });
  });
  app.addHook('preClose', async () => {
    watch.close();
    streams.closeAll();
  });

  const page = (_request: FastifyRequest, reply: FastifyReply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CSP)
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .send(assets.html);
  const tag = 'dashboard';
  const html = { 200: { description: 'the dashboard page', contentType: 'text/html' } };
  for (const url of ['/', '/dashboard']) {
    defineRoute(
      app,
      { method: 'GET', url, tag, access: 'public', summary: 'The web dashboard', responses: html },
      page,
    );
  }

  const file = (asset: Asset) => (request: FastifyRequest, reply: FastifyReply) => {
    const versioned = (request.query as { v?: string }).v === asset.hash;
    return reply
      .header('content-type', asset.type)
      .header('cache-control', versioned ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('etag', `"${asset.hash}"`)
      .header('x-content-type-options', 'nosniff')
      .send(asset.body);
  };
  for (const [url, asset] of [
    ['/dashboard/app.js', assets.js],
    ['/dashboard/app.css', assets.css],
  ] as const) {
    defineRoute(
      app,
      {
        method: 'GET',
        url,
        tag,
        access: 'public',
        summary: "The dashboard's script or stylesheet (`?v=<hash>`: cached for a year)",
        responses: { 200: { description: 'the asset', contentType: asset.type } },
      },
      file(asset),
    );
  }

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/dashboard/overview',
      tag,
      access: 'caller',
      summary:
        'Caller, counts by sync status (active / inactive), by target (admin) and by live status, failing and not-live relays (≤ 200 each), targets and agents (admin)',
      responses: { 200: { description: 'the overview' } },
    },
    async (request) => {
      const principal = principalOf(request);
      // Infrastructure is the operator's business: tenants see only their relays.
      const admin = principal.role === 'admin';
      const [counts, failing, live, notLive, byTarget] = await Promise.all([
        data.counts(principal),
        data.failing(principal, 200),
        data.liveCounts(principal),
        data.notLive(principal, 200),
        admin ? data.byTarget(principal) : null,
      ]);
      return {
        principal: whoami(principal),
        counts,
        by_target: byTarget,
        failing,
        live: { counts: live, not_live: notLive },
        fleet: admin
          ? { targets: await targetViews(deps).all(), agents: deps.agents ? deps.agents() : null }
          : null,
      };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/dashboard/relays/:id',
      tag,
      access: 'caller',
      summary: 'A relay, its last 50 activities (newest first), `acked` and `diff`',
      params: relayId,
      responses: { 200: { description: 'the relay page' } },
    },
    async (request) => data.relay(principalOf(request), idParam(request)),
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/dashboard/targets/:name',
      tag,
      // Like /v1/targets: which zooid serves which fleet is the operator's business.
      access: 'admin',
      summary:
        'A zooid target with its health, its fleets, its relays by sync status and its failing relays (≤ 200)',
      params: { name: z.string().describe('target name') },
      responses: { 200: { description: 'the target page' } },
      errors: [404],
    },
    async (request) => {
      const principal = principalOf(request);
      const name = (request.params as { name: string }).name;
      const target = await targetViews(deps).one(name);
      if (!target) throw targetNotFound(name);
      return { target, ...(await data.target(principal, name, 200)) };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/stats/syncs',
      tag,
      access: 'caller',
      summary: 'Sync attempts (complete / fail) in 60 buckets over the window, totals and failure rate',
      query: statsQuery,
      responses: { 200: { description: 'buckets and totals' } },
    },
    async (request, _reply, { query: q }) => data.syncStats(principalOf(request), q.window),
  );

  defineRoute(
    app,
    {
      method: 'POST',
      url: '/v1/activities/stream-ticket',
      tag,
      access: 'caller',
      summary: 'A one-time credential (60 s) for GET /v1/activities/stream',
      responses: { 200: { description: '`{"ticket", "expires_at"}`' } },
    },
    async (request) => {
      const { ticket, expiresAt } = await tickets.issue(principalOf(request), credentialOf(request));
      return { ticket, expires_at: new Date(expiresAt).toISOString() };
    },
  );

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/activities/stream',
      tag,
      access: 'ticket',
      summary: 'The activity log as Server-Sent Events, resuming after Last-Event-ID or `?after=`',
      query: streamQuery,
      responses: { 200: { description: 'an SSE stream of activities', contentType: 'text/event-stream' } },
      options: {
        // EventSource cannot send headers: a ticket from POST /v1/activities/stream-ticket stands in
        // for the Authorization header on this route only.
        onRequest: async (request) => {
          const ticket = (request.query as { ticket?: unknown }).ticket;
          if (typeof ticket !== 'string' || request.headers.authorization) return;
          const redeemed = await tickets.redeem(ticket);
          if (!redeemed.ok) throw new BosunError('unauthorized', redeemed.reason);
          request.principal = redeemed.principal;
          request.credential = redeemed.credential;
        },
      },
    },
    async (request, reply, { query: q }) => {
      const principal = principalOf(request);
      const header = request.headers['last-event-id'];
      let after: number;
      if (typeof header === 'string' && header.trim() !== '') {
        after = Number(header.trim());
        if (!Number.isSafeInteger(after) || after < 0) {
          throw new BosunError(
            'invalid_request',
            'Last-Event-ID: must be an activity id (a non-negative integer)',
          );
        }
      } else if (q.after !== undefined) {
        after = q.after;
      } else {
        after = Math.max(0, (await deps.query.lastActivityId()) - (q.tail ?? 0));
      }
      return streams.serve(request, reply, principal, credentialOf(request), after);
    },
  );

  return { streams, tickets };
}

function credentialOf(request: FastifyRequest): Credential {
  if (!request.credential) throw new BosunError('unauthorized', 'not authenticated');
  return request.credential;
}

function whoami(p: Principal) {
  switch (p.role) {
    case 'admin':
      return { role: p.role, actor: p.actor };
    case 'tenant':
      return { role: p.role, actor: p.actor, owner: p.owner };
    case 'agent':
      return { role: p.role, actor: p.actor, fleet: p.fleet };
  }
}
