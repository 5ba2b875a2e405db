import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, keypair, relayBody, startServer, type TestServer } from '../../support/env.js';
import { openStream, ready, type SseClient } from './sse-client.js';

/**
 * The dashboard's activity stream under a hostile or careless tenant: concurrent streams are capped
 * per token and in total (429 / 503 with Retry-After), and a revoked or expired token loses its
 * open streams and its unspent tickets.
 */
describe('activity stream limits and revocation', () => {
  let s: TestServer;
  const owner = keypair();
  const open: SseClient[] = [];

  beforeAll(async () => {
    s = await startServer({
      env: { BOSUN_ACTIVITY_STREAM_MAX_PER_TOKEN: '2', BOSUN_ACTIVITY_STREAM_MAX_CONNECTIONS: '3' },
    });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await s.close();
  });

  const token = async (body: Record<string, unknown>) => (await s.api('POST', '/v1/tokens', body)).body;
  const stream = async (bearer: string) => {
    const c = await openStream(`${s.url}/v1/activities/stream`, { authorization: `Bearer ${bearer}` });
    open.push(c);
    return c;
  };

  it('caps streams per token (429) and in total (503), with Retry-After', async () => {
    const alice = (await token({ role: 'tenant', owner: 'alice' })).token;
    const bob = (await token({ role: 'tenant', owner: 'bob' })).token;
    const a1 = await stream(alice);
    const a2 = await stream(alice);
    await Promise.all([a1.until(ready), a2.until(ready)]);
    const a3 = await stream(alice);
    expect(a3.status).toBe(429);
    expect(a3.headers['retry-after']).toMatch(/^\d+$/);
    await a3.ended;
    expect(JSON.parse(a3.raw()).error.code).toBe('too_many_requests');
    const b1 = await stream(bob);
    expect(b1.status).toBe(200);
    const b2 = await stream(bob);
    expect(b2.status).toBe(503);
    expect(b2.headers['retry-after']).toMatch(/^\d+$/);
    await b2.ended;
    expect(JSON.parse(b2.raw()).error.code).toBe('unavailable');
    // A closed stream frees its place.
    a1.close();
    b1.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await stream(alice);
    expect(again.status).toBe(200);
    await again.until(ready);
    a2.close();
    again.close();
  });

  it('ends the streams of a revoked token within about a second', async () => {
    const t = await token({ role: 'tenant', owner: 'carol' });
    const c = await stream(t.token);
    await c.until(ready);
    const revokedAt = Date.now();
    expect((await s.api('DELETE', `/v1/tokens/${t.id}`)).status).toBe(204);
    await Promise.race([
      c.ended,
      new Promise((_, reject) => setTimeout(() => reject(new Error('stream still open after 3 s')), 3000)),
    ]);
    expect(Date.now() - revokedAt).toBeLessThan(2500);
  });

  it('refuses tickets of revoked or expired tokens', async () => {
    const revoked = await token({ role: 'tenant', owner: 'dave' });
    const expiring = (await token({ role: 'tenant', owner: 'erin', expires_in_seconds: 1 })).token;
    const ticket = async (bearer: string) =>
      (await s.api('POST', '/v1/activities/stream-ticket', undefined, bearer)).body.ticket as string;
    const [t1, t2] = [await ticket(revoked.token), await ticket(expiring)];
    await s.api('DELETE', `/v1/tokens/${revoked.id}`);
    await new Promise((r) => setTimeout(r, 1100));
    for (const t of [t1, t2]) {
      const res = await fetch(`${s.url}/v1/activities/stream?ticket=${encodeURIComponent(t)}`);
      expect(res.status).toBe(401);
      expect(((await res.json()) as any).error.code).toBe('unauthorized');
    }
    // The admin's tickets still work.
    const admin = await ticket(ADMIN_TOKEN);
    const c = await openStream(`${s.url}/v1/activities/stream?ticket=${encodeURIComponent(admin)}`);
    open.push(c);
    expect(c.status).toBe(200);
    c.close();
  });

  it('shows an agent no history on the relay page, as /v1/activities shows it none', async () => {
    expect((await s.api('POST', '/v1/relays', relayBody('agent-view', owner.pubkey))).status).toBe(201);
    const agent = (await token({ role: 'agent', fleet: 'default' })).token;
    const listed = await s.api('GET', '/v1/activities?relay=agent-view', undefined, agent);
    expect(listed.status).toBe(200);
    expect(listed.body.activities).toEqual([]);
    const page = await s.api('GET', '/v1/dashboard/relays/agent-view', undefined, agent);
    expect(page.status).toBe(200);
    expect(page.body.history).toEqual([]);
    // The admin sees it.
    expect((await s.api('GET', '/v1/dashboard/relays/agent-view')).body.history.length).toBe(1);
  });
});
