/**
 * The autoconfig stream server over real loopback HTTP: conformance cases 1 and 33–37 of
 * docs/stream-protocol.md §12 (37's agent half is in agent.test.ts), plus resume, load shedding and
 * backpressure.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { Command } from '../../../src/command.js';
import { systemClock } from '../../../src/domain/clock.js';
import { Notifier } from '../../../src/notifier.js';
import { StreamServer, type StreamServerOptions } from '../../../src/pull/server/stream-server.js';
import { DelegatingStore } from '../../../src/store/delegating-store.js';
import type { ActivityFilter, RelayFilter, Store } from '../../../src/store/port.js';
import { ChangeFeed } from '../../../src/store/postgres/change-feed.js';
import { parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../../support/clock.js';
import {
  captureLogger,
  keypair,
  relayBody,
  startServer,
  type TestServer,
  tempDir,
} from '../../support/env.js';
import { freshSchema, postgresUrl } from '../../support/postgres.js';
import { expectIncreasing, type Probe, probe } from '../sse-probe.js';

const { pubkey } = keypair();
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(opts: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const s = await startServer(opts);
  cleanups.push(() => s.close());
  return s;
}

async function agentToken(s: TestServer, fleet: string): Promise<{ token: string; id: string }> {
  const res = await s.api('POST', '/v1/tokens', { role: 'agent', fleet });
  expect(res.status).toBe(201);
  return { token: res.body.token, id: res.body.id };
}

async function open(s: TestServer, token: string | undefined, headers: Record<string, string> = {}) {
  const p = await probe(s.url, token, headers);
  cleanups.push(() => p.close());
  return p;
}

const puts = (p: Probe) => p.events.filter((e) => e.event === 'put');
const relayIds = (p: Probe) => Object.keys(puts(p)[0]?.data.data.relays ?? {}).sort();

describe('autoconfig stream server', () => {
  it('case 1: no token → 401 JSON; tenant or admin token → 403; no stream', async () => {
    const s = await server();
    const none = await open(s, undefined);
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toMatch(/^application\/json/);
    expect(none.body.error.code).toBe('unauthorized');
    expect((await open(s, 'bosun_not-a-token')).status).toBe(401);

    const admin = await open(s, 'test-admin-token-0123456789');
    expect(admin.status).toBe(403);
    expect(admin.body.error.code).toBe('forbidden');
    const tenant = await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' });
    const t = await open(s, tenant.body.token);
    expect(t.status).toBe(403);
    expect(t.events).toEqual([]);

    const agent = await open(s, (await agentToken(s, 'default')).token);
    expect(agent.status).toBe(200);
    expect(agent.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(agent.headers.get('cache-control')).toBe('no-store');
    expect(agent.headers.get('x-accel-buffering')).toBe('no');
    await agent.until((p) => puts(p).length === 1, 'the put');
    // Only comments may precede the one put; no id: lines.
    expect(agent.events[0]!.event).toBe('put');
    expect(agent.events[0]!.data).toMatchObject({ path: '/', data: { relays: {} } });
    expect(agent.events[0]!.data.epoch).toMatch(/^e-[0-9a-z]+$/);
  });

  it('exposes connected agents and events sent in /metrics', async () => {
    const s = await server();
    await s.api('POST', '/v1/relays', relayBody('m1', pubkey));
    const agent = await open(s, (await agentToken(s, 'default')).token);
    await agent.until((p) => puts(p).length === 1, 'the put');
    await s.api('PATCH', '/v1/relays/m1', { info: { name: 'changed' } });
    await agent.until((p) => p.events.some((e) => e.event === 'patch'), 'the patch');
    const metrics = await fetch(`${s.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/^bosun_agents_connected 1$/m);
    expect(metrics).toMatch(/^bosun_stream_events_sent_total 2$/m);
  });

  it('case 33: a fleet token never sees another fleet; a move sends the old fleet a delete and the new a patch, same version', async () => {
    const s = await server();
    await s.api('POST', '/v1/relays', relayBody('a', pubkey, { fleet: 'edge' }));
    await s.api('POST', '/v1/relays', relayBody('b', pubkey, { fleet: 'core' }));
    const edge = await open(s, (await agentToken(s, 'edge')).token);
    const core = await open(s, (await agentToken(s, 'core')).token);
    await edge.until((p) => puts(p).length === 1, 'edge put');
    await core.until((p) => puts(p).length === 1, 'core put');
    expect(relayIds(edge)).toEqual(['a']);
    expect(relayIds(core)).toEqual(['b']);

    // Changes in another fleet are invisible.
    await s.api('POST', '/v1/relays', relayBody('c', pubkey, { fleet: 'core' }));
    await s.api('PATCH', '/v1/relays/b', { info: { name: 'renamed' } });
    await core.until((p) => p.events.length === 3, 'core patches');

    const moved = await s.api('PATCH', '/v1/relays/a', { fleet: 'core' });
    const version = moved.body.version as number;
    await edge.until((p) => p.events.some((e) => e.event === 'delete'), 'edge delete');
    await core.until(
      (p) => p.events.some((e) => e.event === 'patch' && e.data.data.id === 'a'),
      'core patch',
    );
    expect(edge.events.at(-1)!.data).toEqual({ path: 'relays/a', version });
    const patch = core.events.find((e) => e.event === 'patch' && e.data.data.id === 'a')!;
    expect(patch.data.path).toBe('relays/a');
    expect(patch.data.data.version).toBe(version);

    // Moving back: edge gets it again above the delete; core deletes it.
    const back = await s.api('PATCH', '/v1/relays/a', { fleet: 'edge' });
    await edge.until((p) => p.events.at(-1)?.data.data?.version === back.body.version, 'edge re-add');
    await core.until((p) => p.events.at(-1)?.data.version === back.body.version, 'core delete');

    const edgeText = edge.events.map((e) => e.raw).join('\n');
    expect(edgeText).not.toMatch(/"(b|c)"|relays\/(b|c)\b/);
    expect(edge.events.map((e) => e.event)).toEqual(['put', 'delete', 'patch']);
    expectIncreasing(edge);
    expectIncreasing(core);
  });

  it('case 34: a change committed during the snapshot read arrives after the put; versions only increase; sync bookkeeping is silent', async () => {
    const s = await server();
    await s.api('POST', '/v1/relays', relayBody('x', pubkey, { fleet: 'f34' }));
    const { token } = await agentToken(s, 'f34');

    // Commit an update while the server is reading the put's snapshot (after the rows were read).
    const store = s.peer.store;
    const listRelays = store.listRelays.bind(store);
    let injected = 0;
    store.listRelays = async (filter) => {
      const page = await listRelays(filter);
      if (filter.fleet === 'f34' && injected++ === 0) {
        expect((await s.api('PATCH', '/v1/relays/x', { info: { name: 'during' } })).status).toBe(200);
      }
      return page;
    };
    cleanups.push(() => {
      store.listRelays = listRelays;
    });
    const p = await open(s, token);
    await p.until((q) => q.events.length >= 2, 'put then patch');
    expect(p.events[0]!.event).toBe('put');
    expect(p.events[0]!.data.data.relays.x.version).toBe(1);
    expect(p.events[1]!).toMatchObject({ event: 'patch', data: { path: 'relays/x', data: { version: 2 } } });
    expect(p.events[1]!.data.data.config.info.name).toBe('during');

    // A burst seen by three connections: each sees strictly increasing versions and the last one.
    const more = [await open(s, token), await open(s, token)];
    for (const q of more) await q.until((r) => puts(r).length === 1, 'put');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.api('PATCH', '/v1/relays/x', { info: { name: `n${i}` } })),
    );
    const last = (await s.api('GET', '/v1/relays/x')).body.version as number;
    expect(last).toBe(22);
    for (const q of [p, ...more]) {
      await q.until((r) => r.versions().get('x')?.at(-1) === last, 'the last version');
      expectIncreasing(q);
    }

    // Sync bookkeeping (complete/fail sync, resync) changes no version and sends nothing.
    const before = p.events.length;
    await s.peer.command.completeRelaySync('x', { version: last, config: null, deleted: false });
    await s.peer.command.failRelaySync('x', {
      version: last,
      error: 'boom',
      attempts: 1,
      nextAttemptAt: null,
    });
    expect((await s.api('POST', '/v1/relays/x/sync')).status).toBe(202);
    await new Promise((r) => setTimeout(r, 200));
    expect(p.events.length).toBe(before);
    expect((await s.api('GET', '/v1/relays/x')).body.version).toBe(last);
    await s.api('POST', '/v1/relays/x/deactivate');
    await p.until((r) => r.events.length === before + 1, 'the deactivate patch');
    expect(p.events.at(-1)!.data.data).toMatchObject({ version: last + 1, config: { inactive: true } });
  });

  it('case 35: revoking a token closes its streams within 5 s and reconnecting gets 401; a 5th stream per token gets 429', async () => {
    const s = await server();
    const { token, id } = await agentToken(s, 'default');
    const streams = [];
    for (let i = 0; i < 4; i++) streams.push(await open(s, token));
    for (const p of streams) await p.until((q) => puts(q).length === 1, 'put');
    const fifth = await open(s, token);
    expect(fifth.status).toBe(429);
    expect(fifth.body.error.code).toBe('too_many_requests');
    expect(Number(fifth.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another token of the same fleet is not limited by this one.
    const other = await open(s, (await agentToken(s, 'default')).token);
    expect(other.status).toBe(200);
    // A stream that ends frees its slot.
    streams[0]!.close();
    await streams[0]!.ended;
    await expect.poll(() => s.peer.streams.stats().streams).toBe(4);
    streams[0] = await open(s, token);
    expect(streams[0].status).toBe(200);

    const revokedAt = Date.now();
    expect((await s.api('DELETE', `/v1/tokens/${id}`)).status).toBe(204);
    await Promise.all(streams.map((p) => p.ended));
    expect(Date.now() - revokedAt).toBeLessThan(5000);
    expect(other.isEnded()).toBe(false);
    const again = await open(s, token);
    expect(again.status).toBe(401);
  });

  it('starts every stream with retry: (BOSUN_STREAM_RETRY, default 1 s) before the put', async () => {
    const s = await server();
    const p = await open(s, (await agentToken(s, 'default')).token);
    await p.until((q) => puts(q).length === 1, 'put');
    expect(p.retries).toEqual([{ ms: 1000, seq: 0 }]);
    expect(puts(p)[0]!.seq).toBe(1);
    const fast = await server({ env: { BOSUN_STREAM_RETRY: '250ms' } });
    const q = await open(fast, (await agentToken(fast, 'default')).token);
    await q.until((x) => puts(x).length === 1, 'put');
    expect(q.retries.map((r) => r.ms)).toEqual([250]);
  });

  it('case 36: heartbeats at most 15 s apart; shutdown sends reconnect before closing', async () => {
    const clock = new FakeClock(Date.now());
    const s = await startServer({ clock });
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await s.close();
    });
    const p = await open(s, (await agentToken(s, 'default')).token);
    await p.until((q) => puts(q).length === 1, 'put');
    await clock.advance(14_999);
    await new Promise((r) => setTimeout(r, 50));
    expect(p.comments).toEqual([]);
    await clock.advance(1);
    await p.until((q) => q.comments.length === 1, 'first heartbeat');
    expect(p.comments[0]!.text).toBe('hb');
    for (let i = 2; i <= 3; i++) {
      await clock.advance(15_000);
      await p.until((q) => q.comments.length === i, `heartbeat ${i}`);
    }

    const closing = s.close();
    closed = true;
    await p.ended;
    await closing;
    const last = p.events.at(-1)!;
    expect(last.event).toBe('reconnect');
    expect(last.data).toEqual({ reason: 'shutdown', delayMs: 10_000 });
  });

  it('resumes with a delta put for a matching epoch; a garbage header or another epoch gets a full put, never 400', async () => {
    const s = await server();
    for (const id of ['a', 'b']) await s.api('POST', '/v1/relays', relayBody(id, pubkey));
    const { token } = await agentToken(s, 'default');
    const first = await open(s, token);
    await first.until((p) => puts(p).length === 1, 'put');
    const epoch = puts(first)[0]!.data.epoch as string;
    first.close();
    await s.api('PATCH', '/v1/relays/a', { info: { name: 'A2' } });
    await s.api('POST', '/v1/relays', relayBody('c', pubkey));

    const resumed = await open(s, token, { 'Bosun-Epoch': epoch, 'Bosun-Held-Versions': 'a=1,b=1,gone=7' });
    await resumed.until((p) => puts(p).length === 1, 'delta put');
    const put = puts(resumed)[0]!.data;
    expect(put.data.delta).toBe(true);
    expect(put.data.unchanged).toEqual(['b']);
    expect(Object.keys(put.data.relays).sort()).toEqual(['a', 'c']);
    expect(put.data.relays.a.version).toBe(2);

    const variants: Record<string, string>[] = [
      { 'Bosun-Epoch': epoch, 'Bosun-Held-Versions': 'a=1,,b=x' },
      { 'Bosun-Epoch': 'e-other', 'Bosun-Held-Versions': 'a=1,b=1' },
      { 'Bosun-Epoch': epoch, 'Bosun-Held-Versions': `a=1,${'z'.repeat(9000)}=1` },
      { 'Bosun-Epoch': epoch },
    ];
    for (const headers of variants) {
      const full = await open(s, token, headers);
      expect(full.status).toBe(200);
      await full.until((p) => puts(p).length === 1, 'full put');
      const data = puts(full)[0]!.data.data;
      expect(data.delta).toBeUndefined();
      expect(Object.keys(data.relays).sort()).toEqual(['a', 'b', 'c']);
      full.close();
    }
  });

  it('puts 10,000 relays in one put, read in pages', async () => {
    const s = await server();
    const created = await s.api('POST', '/v1/relays', relayBody('t0', pubkey, { fleet: 'big' }));
    expect(created.status).toBe(201);
    const template = (await s.peer.store.getRelay('t0'))!;
    for (let b = 0; b < 10; b++) {
      const relays = Array.from({ length: b === 0 ? 999 : 1000 }, (_, i) => {
        const id = `t${b * 1000 + i + (b === 0 ? 1 : 0)}`;
        const relay = {
          ...template,
          id,
          config: { ...template.config, host: `${id}.example.com`, schema: id },
        };
        return { kind: 'insert' as const, relay };
      });
      await s.peer.store.commit({ relays, activities: [] });
    }
    const p = await open(s, (await agentToken(s, 'big')).token);
    await p.until((q) => puts(q).length === 1, 'the big put', 20_000);
    const relays = puts(p)[0]!.data.data.relays;
    expect(Object.keys(relays)).toHaveLength(10_000);
    expect(relays.t9999).toMatchObject({ id: 't9999', version: 1, config: { host: 't9999.example.com' } });
  });

  it('serializes a change once for every connection: all get the same bytes', async () => {
    const s = await server();
    const { token } = await agentToken(s, 'default');
    const other = (await agentToken(s, 'default')).token;
    const conns = [await open(s, token), await open(s, token), await open(s, other)];
    for (const p of conns) await p.until((q) => puts(q).length === 1, 'put');
    await s.api('POST', '/v1/relays', relayBody('shared', pubkey));
    for (const p of conns) await p.until((q) => q.events.length === 2, 'patch');
    const raws = conns.map((p) => p.events[1]!.raw);
    expect(new Set(raws).size).toBe(1);
    // The config is what push sync sends zooid, without the secret.
    const rep = conns[0]!.events[1]!.data.data;
    expect(Object.keys(rep).sort()).toEqual(['config', 'expiring', 'id', 'secret', 'version']);
    expect(rep.config.secret).toBeUndefined();
    expect(rep.config).toMatchObject({ host: 'shared.example.com', schema: 'shared', inactive: false });
  });

  it('rotation: the new rep lists the old secret in expiring; the expiry chore drops it with a new version', async () => {
    const s = await server();
    await s.api('POST', '/v1/relays', relayBody('rot', pubkey));
    const p = await open(s, (await agentToken(s, 'default')).token);
    await p.until((q) => puts(q).length === 1, 'put');
    const oldSecret = puts(p)[0]!.data.data.relays.rot.secret as string;
    const rotated = await s.api('POST', '/v1/relays/rot/rotate-secret', { grace_seconds: 1 });
    expect(rotated.status).toBe(200);
    expect(rotated.body.expiring).toEqual([
      { name: 'secret', fingerprint: expect.stringMatching(/^[0-9a-f]{8}$/), expires_at: expect.any(String) },
    ]);
    expect(JSON.stringify(rotated.body)).not.toContain(oldSecret);
    await p.until((q) => q.events.length === 2, 'rotation patch');
    const rep = p.events[1]!.data.data;
    expect(rep.version).toBe(2);
    expect(rep.secret).not.toBe(oldSecret);
    expect(rep.expiring).toEqual([{ name: 'secret', value: oldSecret, expiresAt: expect.any(Number) }]);

    await new Promise((r) => setTimeout(r, 1100));
    await s.peer.chores.get('credential_expiry')!.cycle.triggerWait();
    await p.until((q) => q.events.length === 3, 'expiry patch');
    expect(p.events[2]!.data.data).toMatchObject({ version: 3, secret: rep.secret, expiring: [] });
    const acts = await s.api('GET', '/v1/activities?relay=rot');
    const types = acts.body.activities.map((a: { type: string }) => a.type);
    expect(types).toEqual(['create_relay', 'rotate_secret', 'expire_credentials']);
    expect(JSON.stringify(acts.body)).not.toContain(oldSecret);
    expect(JSON.stringify(acts.body)).not.toContain(rep.secret);
    expect((await s.api('POST', '/v1/relays/rot/rotate-secret', { grace_seconds: -1 })).status).toBe(400);
  });
});

/** The stream server's reads of relays and of the log, counted (the Command writes beside it). */
class CountingStore extends DelegatingStore {
  reads = { relays: 0, log: 0 };
  override getRelay(id: string) {
    this.reads.relays++;
    return super.getRelay(id);
  }
  override getRelays(ids: readonly string[]) {
    this.reads.relays++;
    return super.getRelays(ids);
  }
  override listRelays(filter: RelayFilter) {
    this.reads.relays++;
    return super.listRelays(filter);
  }
  override activitiesAfter(filter: ActivityFilter) {
    this.reads.log++;
    return super.activitiesAfter(filter);
  }
}

describe('stream server limits (standalone)', () => {
  /** A stream server on a fresh SQLite file, or on `on` (closed by whoever opened it). */
  async function standalone(opts: Partial<StreamServerOptions>, on?: { store: Store; notifier: Notifier }) {
    const tmp = tempDir();
    const dbFile = join(tmp.path, 'bosun.db');
    const store = on?.store ?? new SqliteStore(dbFile);
    const counting = new CountingStore(store);
    const notifier = on?.notifier ?? new Notifier();
    const command = new Command(store, notifier, systemClock);
    const { logger, lines } = captureLogger();
    const streams = new StreamServer({
      store: counting,
      notifier,
      clock: systemClock,
      logger,
      blossomS3: null,
      tokenCheckMs: 3_600_000,
      ...opts,
    });
    const app = Fastify();
    app.decorateRequest('principal', undefined);
    app.addHook('preHandler', async (request) => {
      const tokenId = String(request.headers.authorization ?? 'x');
      request.principal = { role: 'agent', fleet: 'default', actor: `agent:${tokenId}`, tokenId };
    });
    streams.register(app);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const close = async () => {
      await streams.close();
      await app.close();
      if (!on) await store.close();
      tmp.cleanup();
    };
    cleanups.push(close);
    return { url, dbFile, store, counting, command, streams, lines, port: Number(new URL(url).port) };
  }

  const admin = { role: 'admin' as const, actor: 'test' };
  const patchesOf = (p: Probe, id: string) =>
    p.events.filter((e) => e.event === 'patch' && e.data.path === `relays/${id}`).map((e) => e.data.data);

  /** A standalone server holding `ids`, and one stream that has had its first put. */
  async function streaming(ids: string[]) {
    const s = await standalone({});
    for (const id of ids) await s.command.createRelay(admin, relayBody(id, pubkey));
    const p = await probe(s.url, 't1');
    cleanups.push(() => p.close());
    await p.until((x) => puts(x).length === 1, 'put');
    return { s, p };
  }

  it("serves this process's commits from the notification: no read of relays or of the log", async () => {
    const { s, p } = await streaming(['a', 'b']);
    const before = { ...s.counting.reads };
    for (let i = 1; i <= 3; i++) {
      await s.command.updateRelay(admin, 'a', { info: { name: `a${i}` } });
      await s.command.updateRelay(admin, 'b', { info: { name: `b${i}` } });
    }
    await s.command.deleteRelay(admin, 'b');
    await p.until((x) => x.events.some((e) => e.event === 'delete'), 'the delete');
    await p.until((x) => patchesOf(x, 'a').some((d) => d.config.info.name === 'a3'), 'a3');
    expect(patchesOf(p, 'b').map((d) => d.config.info.name)).toContain('b3');
    expect(s.counting.reads).toEqual(before);
    expect(s.streams.catchUps).toBe(0);
  });

  it('frames of one turn of the event loop go to a connection in one socket write', async () => {
    const { s, p } = await streaming(['a']);
    // The server's end of the stream: count what it hands the OS (Writable's _write/_writev).
    const [conn] = (s.streams as unknown as { all: Set<{ res: { socket: Socket } }> }).all;
    const socket = conn!.res.socket as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>;
    let writes = 0;
    for (const m of ['_write', '_writev'] as const) {
      const original = socket[m].bind(socket);
      socket[m] = (...a: unknown[]) => {
        writes++;
        original(...a);
      };
    }
    // N commits in N timers due together: one turn of the loop, N callbacks (as N requests read
    // from the network at once would be), so Node's per-tick batching alone gives N writes.
    const N = 20;
    const done = await new Promise<Promise<unknown>[]>((resolve) => {
      const all: Promise<unknown>[] = [];
      for (let i = 1; i <= N; i++) {
        setTimeout(() => {
          all.push(s.command.updateRelay(admin, 'a', { info: { name: `a${i}` } }));
          if (i === N) resolve(all);
        }, 0);
      }
    });
    await Promise.all(done);
    await p.until((x) => patchesOf(x, 'a').length === N, `${N} patches`);
    expect(patchesOf(p, 'a').map((d) => d.config.info.name)).toEqual(
      Array.from({ length: N }, (_, i) => `a${i + 1}`),
    );
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(3);
  });

  it('catches up from the log when a commit was never notified (another process on the same file)', async () => {
    const { s, p } = await streaming(['a', 'b']);
    await s.command.updateRelay(admin, 'a', { info: { name: 'a1' } });
    await p.until((x) => patchesOf(x, 'a').length === 1, 'a1');
    expect(s.counting.reads.log).toBe(0);

    // Another process writes b: this one hears nothing of it...
    const other = new SqliteStore(s.dbFile);
    cleanups.push(() => other.close());
    await new Command(other, new Notifier(), systemClock).updateRelay(admin, 'b', { info: { name: 'b1' } });
    // ...until its next own commit, whose activity id leaves a hole: the log fills it.
    await s.command.updateRelay(admin, 'a', { info: { name: 'a2' } });
    await p.until((x) => patchesOf(x, 'b').some((d) => d.config.info.name === 'b1'), 'b1 from the log');
    expect(patchesOf(p, 'a').map((d) => d.config.info.name)).toEqual(['a1', 'a2']);
    expect(s.streams.catchUps).toBe(1);
    expect(s.counting.reads.log).toBeGreaterThan(0);
  });

  it.skipIf(!postgresUrl)(
    "PostgreSQL: this replica's commits are served from the notification, another's are read by id (no log read)",
    async () => {
      const schema = freshSchema();
      cleanups.push(schema.drop);
      const replica = async () => {
        const store = await PostgresStore.open(parsePostgresUrl(schema.url, { poolSize: 2 }));
        const notifier = new Notifier();
        const feed = await ChangeFeed.start({ store, notifier, logger: captureLogger().logger });
        cleanups.push(async () => {
          await feed.stop();
          await store.close();
        });
        return { store, notifier, command: new Command(store, notifier, systemClock) };
      };
      const a = await replica();
      const b = await replica();
      const s = await standalone({}, a);
      await a.command.createRelay(admin, relayBody('a', pubkey));
      await a.command.createRelay(admin, relayBody('b', pubkey));
      const p = await probe(s.url, 't1');
      cleanups.push(() => p.close());
      await p.until((x) => puts(x).length === 1, 'put');
      const before = { ...s.counting.reads };
      await a.command.updateRelay(admin, 'a', { info: { name: 'a1' } });
      await p.until((x) => patchesOf(x, 'a').length === 1, 'a1');
      expect(s.counting.reads).toEqual(before);
      await b.command.updateRelay(admin, 'b', { info: { name: 'b1' } });
      await p.until(
        (x) => patchesOf(x, 'b').some((d) => d.config.info.name === 'b1'),
        'b1 from the other replica',
      );
      expect(s.counting.reads).toEqual({ relays: before.relays + 1, log: 0 });
      await a.command.updateRelay(admin, 'a', { info: { name: 'a2' } });
      await p.until((x) => patchesOf(x, 'a').length === 2, 'a2');
      expect(s.counting.reads).toEqual({ relays: before.relays + 1, log: 0 });
      expect(s.streams.catchUps).toBe(0);
    },
  );

  it('sheds load with 503 + Retry-After beyond its stream limit, before any event', async () => {
    const s = await standalone({ maxStreams: 2, retryAfterSeconds: 7 });
    const a = await probe(s.url, 't1');
    const b = await probe(s.url, 't2');
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const c = await probe(s.url, 't3');
    expect(c.status).toBe(503);
    expect(c.headers.get('retry-after')).toBe('7');
    expect(c.body.error.code).toBe('unavailable');
    expect(c.events).toEqual([]);
  });

  it('drops an agent that does not read instead of buffering without bound; it can resume', async () => {
    const s = await standalone({ maxBufferedBytes: 256 * 1024 });
    const admin = { role: 'admin' as const, actor: 'test' };
    // ~130 KB per rep: 2000 role keys (one valid key repeated; validation is cached).
    const roles = { big: { pubkeys: Array.from({ length: 2000 }, () => pubkey) } };
    await s.command.createRelay(admin, relayBody('big', pubkey, { roles }));
    const sock = connect(s.port, '127.0.0.1');
    cleanups.push(() => {
      sock.destroy();
    });
    await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
    sock.write(
      'GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: slow\r\nAccept: text/event-stream\r\n\r\n',
    );
    sock.pause(); // never reads: the kernel buffers fill, then the server's
    await expect.poll(() => s.streams.stats().streams).toBe(1);
    let maxBuffered = 0;
    for (let i = 0; i < 200 && s.streams.slowDrops === 0; i++) {
      await s.command.updateRelay(admin, 'big', { info: { name: `n${i}` } });
      await new Promise((r) => setImmediate(r));
      for (const conn of (s.streams as unknown as { all: Set<{ res: { writableLength: number } }> }).all) {
        maxBuffered = Math.max(maxBuffered, conn.res.writableLength);
      }
    }
    expect(s.streams.slowDrops).toBe(1);
    await expect.poll(() => s.streams.stats().streams).toBe(0);
    // Bounded: the limit, plus the put, plus one frame.
    expect(maxBuffered).toBeLessThan(256 * 1024 + 3 * 140 * 1024);
    expect(s.lines.some((l) => l.includes('reads too slowly'))).toBe(true);
    // A reader that keeps up is unaffected.
    const ok = await probe(s.url, 'fast');
    cleanups.push(() => ok.close());
    await ok.until((p) => puts(p).length === 1, 'put');
  });
});
