import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HTTPMethods,
  RouteShorthandOptions,
} from 'fastify';
import type { z } from 'zod';
import { parseOrThrow } from '../../domain/relay.js';
import { requireAdmin } from '../auth.js';
import { principalOf } from './params.js';

/**
 * Who may call a route: `public` (no credentials), `caller` (any token, or NIP-98 for a registered
 * tenant; results scoped to the caller), `writer` (admin or tenant, not agent), `admin`, `agent`
 * (agent tokens), `ticket` (`caller`, or a one-time stream ticket in `?ticket=`).
 */
export type Access = 'public' | 'caller' | 'writer' | 'admin' | 'agent' | 'ticket';

export interface RouteResponse {
  description: string;
  /** Default `application/json`. */
  contentType?: string;
  schema?: z.ZodType;
}

/**
 * A route and what it accepts, in one place: the helper validates the query (and a body parsed by
 * the route) with these schemas, and `GET /v1/openapi.json` is generated from the same objects.
 */
export interface RouteDef<Q extends z.ZodType, B extends z.ZodType> {
  method: Extract<HTTPMethods, 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'>;
  url: string;
  summary: string;
  description?: string;
  tag: string;
  access: Access;
  /** Path parameters' schemas (each `:name` in the url is a required string otherwise). */
  params?: Record<string, z.ZodType>;
  query?: Q;
  /**
   * `route`: the helper parses the body with `schema` before the handler runs. `domain`: the
   * handler hands the raw body to a command, which validates it with this same schema (its error
   * messages name the fields the same way).
   */
  body?: {
    schema: B;
    parsedBy: 'route' | 'domain';
    required?: boolean;
    contentTypes?: string[];
    /** Documented as an RFC 7396 merge patch of the schema (every field optional, `null` resets). */
    mergePatch?: boolean;
  };
  /** Success responses by status. Error responses are added from `errors` and the access rule. */
  responses: Record<number, RouteResponse>;
  /** Extra error statuses this route answers (400/401/403/404/413/503 are derived). */
  errors?: number[];
  options?: RouteShorthandOptions;
}

export type AnyRouteDef = RouteDef<z.ZodType, z.ZodType>;

const catalogues = new WeakMap<FastifyInstance, AnyRouteDef[]>();

/** Every route registered through `defineRoute` on this app, in registration order. */
export function routeDefs(app: FastifyInstance): readonly AnyRouteDef[] {
  return catalogues.get(app) ?? [];
}

/** A route's handler, given its validated query and (for `parsedBy: 'route'`) body. */
export type RouteHandler<Q extends z.ZodType, B extends z.ZodType> = (
  request: FastifyRequest,
  reply: FastifyReply,
  input: { query: z.output<Q>; body: B extends z.ZodType ? z.output<B> : unknown },
) => unknown;

export function defineRoute<Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType>(
  app: FastifyInstance,
  def: RouteDef<Q, B>,
  handler: RouteHandler<Q, B>,
): void {
  const list = catalogues.get(app) ?? [];
  catalogues.set(app, list);
  list.push(def as unknown as AnyRouteDef);
  app.route({
    ...def.options,
    method: def.method,
    url: def.url,
    config: { access: def.access },
    handler: async (request, reply) => {
      // The auth hook has resolved the caller; an admin route refuses anyone else before reading input.
      if (def.access === 'admin') requireAdmin(principalOf(request));
      const query = def.query ? parseOrThrow(def.query, request.query ?? {}) : undefined;
      const body =
        def.body?.parsedBy === 'route' ? parseOrThrow(def.body.schema, request.body ?? {}) : request.body;
      return handler(request, reply, { query, body } as never);
    },
  });
}

/**
 * Routes that share a tag and an access rule — every `/v1/tokens` and `/v1/targets` route is
 * admin-only — state them once for the group instead of on each route: `group.post(url, def, handler)`.
 */
export function routeGroup(app: FastifyInstance, shared: Pick<AnyRouteDef, 'tag' | 'access'>) {
  const add =
    (method: RouteDef<z.ZodType, z.ZodType>['method']) =>
    <Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType>(
      url: string,
      def: Omit<RouteDef<Q, B>, 'tag' | 'access' | 'method' | 'url'>,
      handler: RouteHandler<Q, B>,
    ): void =>
      defineRoute(app, { ...shared, method, url, ...def }, handler);
  return { get: add('GET'), post: add('POST'), put: add('PUT'), patch: add('PATCH'), delete: add('DELETE') };
}

/** The access rule of the route serving this request (`caller` for routes not defined here). */
declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route: set by defineRoute, read by the auth hooks (accessOf). */
    access?: Access;
  }
}

export function accessOf(request: FastifyRequest): Access {
  return request.routeOptions.config?.access ?? 'caller';
}
