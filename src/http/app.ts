import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { BosunError, invalid } from '../domain/errors.js';
import { jsonTooDeep, TOO_DEEP_JSON } from '../domain/nesting.js';
import { Authenticator } from './auth.js';
import { registerDashboard } from './dashboard/routes.js';
import type { AppDeps } from './deps.js';
import { clientErrorHandler, errorHandler } from './errors.js';
import { registerOpenApi } from './openapi.js';
import { registerActivityRoutes } from './routes/activities.js';
import { accessOf } from './routes/define.js';
import { registerFleetRoutes } from './routes/fleets.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerRelayRoutes } from './routes/relays.js';
import { registerTargetRoutes } from './routes/targets.js';
import { registerTokenRoutes } from './routes/tokens.js';

export const BODY_LIMIT = 1024 * 1024;
/**
 * Slow clients (slow-loris): the request head must arrive within `headersTimeoutMs` and the whole
 * request, body included, within `requestTimeoutMs`, or Node answers 408 and closes the socket.
 * Neither bounds a response, so long-lived streams (SSE) are unaffected. 120 s lets a 64 MiB fleet
 * body through at ~0.5 MiB/s. Node's own defaults (60 s / 300 s, checked every 30 s) are too lax.
 */
export const HTTP_TIMEOUTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 120_000 };

/**
 * One line per request, at debug: Fastify's two lines per request at info (probes, scrapes, the
 * dashboard's reads) would drown everything else. Failed requests stay at error.
 */
class RequestsAtDebug extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) {
      super.requestCompleted(error, request, reply);
      return;
    }
    // Without the query: the activity stream's ticket travels there.
    reply.log.debug(
      {
        method: request.method,
        url: request.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  }
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const timeouts = deps.http ?? HTTP_TIMEOUTS;
  const headersTimeout = Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs);
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    requestTimeout: timeouts.requestTimeoutMs,
    http: {
      headersTimeout,
      requestTimeout: timeouts.requestTimeoutMs,
      // Node checks both timeouts on this interval (default 30 s); only connections still
      // receiving a request are visited, so a short interval costs little.
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(headersTimeout / 4))),
    },
    trustProxy: deps.trustProxy ?? false,
    return503OnClosing: true,
    // Errors raised before a route (a malformed URL, a too-long path parameter) and those Node's
    // parser raises before Fastify sees a request (too-large headers, garbage): bosun's shape too.
    frameworkErrors: (err, request, reply) => errorHandler(err, request, reply),
    clientErrorHandler: clientErrorHandler,
    logController: new RequestsAtDebug(),
  });
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute);

  // Keep the raw body: NIP-98 signs a hash of the exact bytes. Empty bodies are allowed on
  // action routes (POST /activate) even with a JSON content type.
  const parseJson = (
    request: { rawBody?: string },
    body: string,
    done: (err: Error | null, v?: unknown) => void,
  ) => {
    request.rawBody = body;
    if (body.length === 0) return done(null, undefined);
    if (jsonTooDeep(body)) return done(invalid(`(body): ${TOO_DEEP_JSON}`));
    try {
      done(null, JSON.parse(body));
    } catch (err) {
      done(new BosunError('invalid_json', `body is not valid JSON: ${(err as Error).message}`));
    }
  };
  app.addContentTypeParser(
    ['application/json', 'application/merge-patch+json'],
    { parseAs: 'string' },
    (req, body, done) => parseJson(req, body as string, done),
  );

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) => {
    void reply
      .status(404)
      .send(
        new BosunError('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`).toJSON(),
      );
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    deps.metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  const auth = new Authenticator(deps.tokens, deps.nip98, deps.store, deps.clock);
  app.decorateRequest('principal', undefined);
  app.decorateRequest('credential', undefined);
  app.decorateRequest('rawBody', undefined);
  app.decorateRequest('nostrEvent', undefined);
  // Credentials are judged before the body is read (Fastify reads it after onRequest), so an
  // unauthenticated upload costs bosun nothing; a body over the route's limit is refused from its
  // Content-Length, before reading, too.
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/') || accessOf(request) === 'public') return;
    // The activity stream's ticket stands in for the header (its route redeems it).
    if (accessOf(request) === 'ticket' && !request.headers.authorization) return;
    try {
      await auth.beforeBody(request);
    } catch (err) {
      // Node would receive (and drop) the whole unread body to keep the connection: close it.
      const length = request.headers['content-length'];
      if ((length !== undefined && length !== '0') || request.headers['transfer-encoding']) {
        void reply.header('connection', 'close');
      }
      throw err;
    }
  });
  app.addHook('preHandler', async (request) => {
    if (request.nostrEvent) await auth.afterBody(request);
  });

  registerHealthRoutes(app, deps);
  registerRelayRoutes(app, deps);
  registerActivityRoutes(app, deps);
  registerTokenRoutes(app, deps);
  registerTargetRoutes(app, deps);
  deps.streams?.register(app);
  registerFleetRoutes(app, deps);
  registerDashboard(app, deps);
  registerOpenApi(app);
  return app;
}
