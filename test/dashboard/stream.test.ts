import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Nip98Verifier } from '../../src/auth/nip98.js';
import { systemClock } from '../../src/domain/clock.js';
import { buildApp } from '../../src/http/app.js';
import { StreamTickets } from '../../src/http/dashboard/ticket.js';
import { createMetrics } from '../../src/metrics.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../support/clock.js';
import {
  ADMIN_TOKEN,
  captureLogger,
  issueTokens,
  keypair,
  relayBody,
  startServer,
  type TestServer,
  tempDir,
} from '../support/env.js';
import { activities, openStream, ready } from './sse-client.js';

const ids = (events: Parameters<typeof activities>[0]) => activities(events).map((a) => String(a.id));

describe('GET /v1/activities/stream', () => {
  let s: TestServer;
  const owner = keypair();
  let tokens: Awaited<ReturnType<typeof issueTokens>>;
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    s = await startServer();
    tokens = await issueTokens(s, 'default');
  });
  afterAll(async () => {
    await s.close();
  });

  const lastId = async () => (await s.api('GET', '/v1/activities?limit=1000')).body.next as number;

  it('sends the log after Last-Event-ID as id-tagged events, then follows live without duplicates', async () => {
    const start = await lastId();
    for (const id of ['st-1', 'st-2', 'st-3']) {
      expect((await s.api('POST', '/v1/relays', relayBody(id, owner.pubkey))).status).toBe(201);
    }
    const first = start + 1;
    const stream = await openStream(`${s.url}/v1/activities/stream`, {
      ...auth(ADMIN_TOKEN),
      'last-event-id': String(first),
    });
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.headers['cache-control']).toContain('no-cache');
    await stream.until(ready);
    expect(ids(stream.events)).toEqual([String(first + 1), String(first + 2)]);
    const [second] = activities(stream.events);
    expect(second).toMatchObject({
      id: first + 1,
      type: 'create_relay',
      relay_id: 'st-2',
      payload: { version: 1 },
    });
    expect(second.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);

    await s.api('PATCH', '/v1/relays/st-1', { info: { name: 'renamed' } });
    await s.api('POST', '/v1/relays/st-2/deactivate');
    await stream.until((e) => activities(e).length === 4);
    expect(activities(stream.events).map((a) => [a.id, a.type])).toEqual([
      [first + 1, 'create_relay'],
      [first + 2, 'create_relay'],
      [first + 3, 'update_relay'],
      [first + 4, 'deactivate_relay'],
    ]);
    expect(stream.raw()).toMatch(/^retry: \d+\n\n/);
    stream.close();
  });

  it('starts at ?after=, at the head by default, or ?tail= activities back', async () => {
    const head = await lastId();
    const after = await openStream(`${s.url}/v1/activities/stream?after=${head - 2}`, auth(ADMIN_TOKEN));
    const now = await openStream(`${s.url}/v1/activities/stream`, auth(ADMIN_TOKEN));
    const tail = await openStream(`${s.url}/v1/activities/stream?tail=1`, auth(ADMIN_TOKEN));
    await Promise.all([after.until(ready), now.until(ready), tail.until(ready)]);
    expect(ids(after.events)).toEqual([String(head - 1), String(head)]);
    expect(ids(now.events)).toEqual([]);
    expect(ids(tail.events)).toEqual([String(head)]);
    for (const c of [after, now, tail]) c.close();

    const bad = await s.api('GET', '/v1/activities/stream?after=-1');
    expect(bad.status).toBe(400);
    const res = await fetch(`${s.url}/v1/activities/stream`, {
      headers: { ...auth(ADMIN_TOKEN), 'last-event-id': 'abc' },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('invalid_request');
  });

  it('loses and repeats nothing while writers race the backlog read', async () => {
    const head = await lastId();
    const writes = Array.from({ length: 40 }, (_, i) =>
      s.api('POST', '/v1/relays', relayBody(`race-${i}`, owner.pubkey)),
    );
    const stream = await openStream(`${s.url}/v1/activities/stream?after=${head}`, auth(ADMIN_TOKEN));
    await Promise.all(writes);
    const more = Array.from({ length: 20 }, (_, i) => s.api('POST', `/v1/relays/race-${i}/deactivate`));
    await Promise.all(more);
    await stream.until((e) => activities(e).length >= 60);
    const got = activities(stream.events).map((a) => a.id as number);
    expect(got).toEqual(Array.from({ length: 60 }, (_, i) => head + 1 + i));
    stream.close();
  });

  it('shows a tenant only its own relays’ activities, backlog and live; an agent none', async () => {
    await s.api('POST', '/v1/relays', relayBody('alice-a', owner.pubkey), tokens.alice);
    await s.api('POST', '/v1/relays', relayBody('bob-a', owner.pubkey), tokens.bob);
    const alice = await openStream(`${s.url}/v1/activities/stream?after=0`, auth(tokens.alice));
    const agent = await openStream(`${s.url}/v1/activities/stream?after=0`, auth(tokens.agent));
    await Promise.all([alice.until(ready), agent.until(ready)]);
    await s.api('POST', '/v1/relays', relayBody('bob-b', owner.pubkey), tokens.bob);
    await s.api('PATCH', '/v1/relays/bob-a', { info: { name: 'bob again' } }, tokens.bob);
    await s.api('POST', '/v1/relays', relayBody('alice-b', owner.pubkey), tokens.alice);
    await alice.until((e) => activities(e).some((a) => a.relay_id === 'alice-b'));
    expect(activities(alice.events).map((a) => a.relay_id)).toEqual(['alice-a', 'alice-b']);
    expect(alice.raw()).not.toContain('bob-');
    expect(activities(agent.events)).toEqual([]);
    alice.close();
    agent.close();
  });

  it('accepts a single-use stream ticket instead of a header, scoped like the token', async () => {
    const unauth = await fetch(`${s.url}/v1/activities/stream`);
    expect(unauth.status).toBe(401);
    expect(((await unauth.json()) as any).error.code).toBe('unauthorized');

    const issued = await s.api('POST', '/v1/activities/stream-ticket', undefined, tokens.alice);
    expect(issued.status).toBe(200);
    expect(Date.parse(issued.body.expires_at)).toBeGreaterThan(Date.now());
    const ticket: string = issued.body.ticket;
    expect(ticket).not.toContain(tokens.alice);
    const stream = await openStream(
      `${s.url}/v1/activities/stream?after=0&ticket=${encodeURIComponent(ticket)}`,
    );
    expect(stream.status).toBe(200);
    await stream.until(ready);
    expect(new Set(activities(stream.events).map((a) => a.relay_id))).toEqual(
      new Set(['alice-a', 'alice-b']),
    );
    stream.close();

    // Spent, forged, and on another route: refused.
    for (const url of [
      `/v1/activities/stream?ticket=${encodeURIComponent(ticket)}`,
      `/v1/activities/stream?ticket=${encodeURIComponent(ticket.slice(0, -2))}xx`,
      '/v1/activities/stream?ticket=nonsense',
    ]) {
      const res = await fetch(s.url + url);
      expect(res.status, url).toBe(401);
      expect(((await res.json()) as any).error.code).toBe('unauthorized');
    }
    const fresh = (await s.api('POST', '/v1/activities/stream-ticket', undefined, tokens.alice)).body.ticket;
    expect((await fetch(`${s.url}/v1/relays?ticket=${encodeURIComponent(fresh)}`)).status).toBe(401);
    expect((await s.api('POST', '/v1/activities/stream-ticket', undefined, 'nope')).status).toBe(401);
  });
});

describe('StreamTickets', () => {
  const principal = { role: 'tenant' as const, owner: 'alice', actor: 'tenant:alice' };
  const credential = { kind: 'token' as const, id: 'tok_alice' };
  const live = async () => true;

  it('expire after their TTL and open one stream once', async () => {
    const dir = tempDir();
    const store = new SqliteStore(join(dir.path, 'bosun.db'));
    try {
      const clock = new FakeClock();
      const tickets = new StreamTickets(store, clock, live, 60_000);
      const a = await tickets.issue(principal, credential);
      expect(await tickets.redeem(a.ticket)).toEqual({ ok: true, principal, credential });
      expect(await tickets.redeem(a.ticket)).toMatchObject({
        ok: false,
        reason: expect.stringContaining('already used'),
      });
      const b = await tickets.issue(principal, credential);
      await clock.advance(60_000);
      expect(await tickets.redeem(b.ticket)).toMatchObject({
        ok: false,
        reason: expect.stringContaining('expired'),
      });
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  it('are accepted once by any process on the same database, and by no other database', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'bosun.db');
    // Two connections to one file stand for two replicas; a third database for another deployment.
    const [one, two, elsewhere] = [
      new SqliteStore(file),
      new SqliteStore(file),
      new SqliteStore(join(dir.path, 'other.db')),
    ];
    try {
      const clock = new FakeClock();
      const [a, b, c] = [one, two, elsewhere].map((store) => new StreamTickets(store, clock, live));
      const { ticket } = await a!.issue(principal, credential);
      expect(await c!.redeem(ticket)).toEqual({ ok: false, reason: 'invalid stream ticket' });
      expect(await b!.redeem(ticket)).toEqual({ ok: true, principal, credential });
      expect(await a!.redeem(ticket)).toMatchObject({
        ok: false,
        reason: expect.stringContaining('already used'),
      });
    } finally {
      for (const store of [one, two, elsewhere]) await store!.close();
      dir.cleanup();
    }
  });

  it('issued by one bosun open a stream on another bosun on the same database', async () => {
    const a = await startServer();
    const b = await startServer({ dir: a.dir });
    try {
      await a.api('POST', '/v1/relays', relayBody('shared', keypair().pubkey));
      const { ticket } = (await a.api('POST', '/v1/activities/stream-ticket')).body;
      const stream = await openStream(
        `${b.url}/v1/activities/stream?after=0&ticket=${encodeURIComponent(ticket)}`,
      );
      expect(stream.status).toBe(200);
      await stream.until((e) => activities(e).some((x) => x.relay_id === 'shared'));
      stream.close();
      const again = await fetch(`${a.url}/v1/activities/stream?ticket=${encodeURIComponent(ticket)}`);
      expect(again.status).toBe(401);
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe('activity stream lifecycle', () => {
  it('sends heartbeats, ends a stream after its max lifetime, and closes open streams on shutdown', async () => {
    const s = await startServer();
    const { peer } = s;
    const metrics = createMetrics();
    const app = buildApp({
      store: peer.store,
      command: peer.command,
      query: peer.query,
      tokens: peer.tokens,
      nip98: new Nip98Verifier(),
      clock: systemClock,
      logger: captureLogger().logger,
      metrics,
      notifier: peer.notifier,
      dashboard: { stream: { heartbeatMs: 40, maxStreamMs: 400 } },
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    try {
      const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const short = await openStream(`${url}/v1/activities/stream`, headers);
      await short.until(ready);
      await new Promise((r) => setTimeout(r, 150));
      expect(short.comments.filter((c) => c.trim() === 'ping').length).toBeGreaterThanOrEqual(2);
      expect(await metrics.registry.getSingleMetricAsString('bosun_activity_streams')).toMatch(/ 1$/m);
      await short.ended; // max lifetime
      const open = await openStream(`${url}/v1/activities/stream`, headers);
      await open.until(ready);
      const started = Date.now();
      await app.close();
      await open.ended;
      expect(Date.now() - started).toBeLessThan(2000);
      expect(await metrics.registry.getSingleMetricAsString('bosun_activity_streams')).toMatch(/ 0$/m);
    } finally {
      await app.close();
      await s.close();
    }
  });

  it('lets bosun shut down promptly with a live stream open', async () => {
    const s = await startServer();
    const stream = await openStream(`${s.url}/v1/activities/stream`, {
      authorization: `Bearer ${ADMIN_TOKEN}`,
    });
    await stream.until(ready);
    const started = Date.now();
    await s.close();
    await stream.ended;
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
