import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { STATUS } from '../domain/errors.js';
import type { AnyRouteDef } from './routes/define.js';
import { defineRoute, routeDefs } from './routes/define.js';

export const OPENAPI_PATH = '/v1/openapi.json';

/** The error shape every HTTP error has (src/http/errors.ts). */
const errorSchema = z.object({
  error: z.object({
    code: z.string().describe('stable machine code, e.g. `invalid_request`, `relay_not_found`'),
    message: z.string().describe('one line naming the field or resource'),
  }),
});

const SECURITY = {
  bearer: {
    type: 'http',
    scheme: 'bearer',
    description: 'An API token (admin, tenant or agent): `Authorization: Bearer <token>`.',
  },
  nostr: {
    type: 'http',
    scheme: 'Nostr',
    description:
      'NIP-98: `Authorization: Nostr <base64 kind-27235 event>` signed by a registered tenant, with the exact URL, method and (for a body) its SHA-256.',
  },
  ticket: {
    type: 'apiKey',
    in: 'query',
    name: 'ticket',
    description:
      'A one-time ticket from POST /v1/activities/stream-ticket (EventSource cannot send headers).',
  },
} as const;

const ACCESS_NOTE: Record<AnyRouteDef['access'], string> = {
  public: 'No credentials needed.',
  caller: 'Any token; results are scoped to the caller (a tenant sees its own relays).',
  writer: 'An admin or tenant token (tenants: their own relays); agent tokens are refused (403).',
  admin: 'An admin token.',
  agent: 'An agent token (its fleet).',
  ticket: 'Any token, or a one-time `?ticket=`.',
};

const toSchema = (schema: z.ZodType) => {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  return json;
};

/**
 * A merge patch of an object schema (RFC 7396): any subset of fields at any depth, `null` resets a
 * top-level field. The merged document is then validated with the schema itself.
 */
function mergePatchSchema(schema: z.ZodType) {
  const loosen = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(loosen);
    if (typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => k !== 'required')
        .map(([k, x]) => [k, loosen(x)]),
    );
  };
  const json = loosen(toSchema(schema)) as { properties?: Record<string, unknown> };
  const properties = Object.fromEntries(
    Object.entries(json.properties ?? {}).map(([k, v]) => [k, { anyOf: [v, { type: 'null' }] }]),
  );
  return { type: 'object', properties, additionalProperties: false };
}

const errorResponse = (status: number) => {
  const codes = Object.entries(STATUS)
    .filter(([, s]) => s === status)
    .map(([code]) => `\`${code}\``);
  return {
    description: `Error (${codes.join(', ')})`,
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  };
};

/** The OpenAPI 3.1 document of every route registered through defineRoute. */
export function openApiDocument(defs: readonly AnyRouteDef[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const def of defs) {
    const names = [...def.url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
    const path = def.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters: unknown[] = names.map((name) => ({
      name,
      in: 'path',
      required: true,
      schema: def.params?.[name] ? toSchema(def.params[name]) : { type: 'string' },
    }));
    if (def.query) {
      const json = toSchema(def.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, schema] of Object.entries(json.properties ?? {})) {
        parameters.push({ name, in: 'query', required: json.required?.includes(name) ?? false, schema });
      }
    }
    if (def.access === 'ticket') {
      parameters.push({ name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(def.responses)) {
      const type = r.contentType ?? 'application/json';
      responses[status] =
        status === '204'
          ? { description: r.description }
          : {
              description: r.description,
              content: { [type]: { schema: r.schema ? toSchema(r.schema) : {} } },
            };
    }
    const errors = new Set(def.errors ?? []);
    if (def.query || def.body || names.length) errors.add(400);
    if (def.access !== 'public') errors.add(401);
    if (def.access === 'writer' || def.access === 'admin' || def.access === 'agent') errors.add(403);
    if (names.length) errors.add(404);
    if (def.body) errors.add(413);
    if (def.body) errors.add(415);
    if (def.url.startsWith('/v1/') && def.access !== 'public') errors.add(503);
    for (const status of [...errors].sort()) responses[String(status)] ??= errorResponse(status);

    const operation: Record<string, unknown> = {
      operationId: `${def.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: def.summary,
      description: [def.description, ACCESS_NOTE[def.access]].filter(Boolean).join('\n\n'),
      tags: [def.tag],
      security:
        def.access === 'public'
          ? []
          : def.access === 'agent'
            ? [{ bearer: [] }]
            : def.access === 'ticket'
              ? [{ bearer: [] }, { nostr: [] }, { ticket: [] }]
              : [{ bearer: [] }, { nostr: [] }],
      ...(parameters.length ? { parameters } : {}),
      responses,
    };
    if (def.body) {
      const schema = def.body.mergePatch ? mergePatchSchema(def.body.schema) : toSchema(def.body.schema);
      const types = def.body.contentTypes ?? ['application/json'];
      operation.requestBody = {
        required: def.body.required ?? false,
        content: Object.fromEntries(types.map((t) => [t, { schema }])),
      };
    }
    paths[path] ??= {};
    paths[path][def.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'bosun',
      version: 'v1',
      description:
        'Control plane for a fleet of zooid Nostr relays. Generated from the zod schemas that validate the requests.',
    },
    paths,
    components: {
      schemas: { Error: toSchema(errorSchema) },
      securitySchemes: SECURITY,
    },
  };
}

/**
 * `GET /v1/openapi.json`, needing no credentials: it holds the API's shape only, never data, and
 * tools (code generators, API explorers) read it before they have a token. Built once, on first
 * request, from every route registered by then (all are, once the server listens).
 */
export function registerOpenApi(app: FastifyInstance): void {
  let document: Record<string, unknown> | undefined;
  defineRoute(
    app,
    {
      method: 'GET',
      url: OPENAPI_PATH,
      tag: 'operations',
      access: 'public',
      summary: 'This OpenAPI 3.1 document',
      responses: { 200: { description: 'the OpenAPI document' } },
    },
    async () => {
      document ??= openApiDocument(routeDefs(app));
      return document;
    },
  );
}
