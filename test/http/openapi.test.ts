import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';

/**
 * GET /v1/openapi.json: valid OpenAPI 3.1 (an independent validator), every route the server
 * registered (seen through Fastify's onRoute, not through the route helper) is in it, and its
 * request schemas are the ones that validate requests.
 */
describe('OpenAPI document', () => {
  let server: TestServer;
  const registered: { method: string; url: string }[] = [];
  let doc: any;

  beforeAll(async () => {
    server = await startServer({
      onRoute: (route: RouteOptions) => {
        for (const method of [route.method].flat()) registered.push({ method, url: route.url });
      },
    });
    const res = await fetch(`${server.url}/v1/openapi.json`);
    expect(res.status).toBe(200);
    doc = await res.json();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('is served without credentials and is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    // Every schema in it compiles as JSON Schema 2020-12 (the 3.1 dialect).
    const ajv = new Ajv2020({ strict: false });
    ajv.addSchema({ $id: 'doc', ...doc.components }, 'doc');
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const schemas = [
          ...(op.parameters ?? []).map((p: any) => p.schema),
          ...Object.values<any>(op.requestBody?.content ?? {}).map((c) => c.schema),
        ];
        for (const schema of schemas) {
          expect(() => ajv.compile(schema), `${method} ${path}`).not.toThrow();
        }
      }
    }
  });

  it('documents every registered route (HEAD mirrors GET), its auth schemes and the error shape', () => {
    const documented = new Set<string>();
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const routes = registered
      .filter((r) => r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z_]+)/g, '{$1}')}`);
    expect(routes.length).toBeGreaterThan(25);
    expect(routes.filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((d) => !routes.includes(d))).toEqual([]);
    expect(routes).toContain('GET /v1/stream');

    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['bearer', 'nostr', 'ticket']);
    expect(doc.components.schemas.Error).toMatchObject({
      type: 'object',
      properties: { error: { properties: { code: { type: 'string' }, message: { type: 'string' } } } },
    });
    const create = doc.paths['/v1/relays'].post;
    expect(create.security).toEqual([{ bearer: [] }, { nostr: [] }]);
    expect(create.responses['409'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Error',
    });
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/v1/openapi.json'].get.security).toEqual([]);
  });

  it('describes requests with the schemas that validate them', async () => {
    const ajv = new Ajv2020({ strict: false });
    const createBody = ajv.compile(
      doc.paths['/v1/relays'].post.requestBody.content['application/json'].schema,
    );
    const good = relayBody('doc-1', keypair().pubkey);
    const bad = { ...good, host: 'Not A Host', color: 'red' };
    expect(createBody(good)).toBe(true);
    expect(createBody(bad)).toBe(false);
    expect((await server.api('POST', '/v1/relays', good)).status).toBe(201);
    const refused = await server.api('POST', '/v1/relays', bad);
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('invalid_request');

    const list = doc.paths['/v1/relays'].get.parameters.map((p: any) => p.name);
    expect(list).toEqual(['owner', 'fleet', 'status', 'live', 'inactive', 'after', 'limit']);
    // Relay answers are documented too, live status beside sync, and match what is served.
    const relayAnswer = ajv.compile(
      doc.paths['/v1/relays/{id}'].get.responses['200'].content['application/json'].schema,
    );
    const served = (await server.api('GET', '/v1/relays/doc-1')).body;
    expect(relayAnswer(served)).toBe(true);
    expect(relayAnswer({ ...served, live: { ...served.live, status: 'bogus' } })).toBe(false);
    const patch =
      doc.paths['/v1/relays/{id}'].patch.requestBody.content['application/merge-patch+json'].schema;
    expect(ajv.compile(patch)({ info: { name: 'x' }, policy: null })).toBe(true);
  });
});
