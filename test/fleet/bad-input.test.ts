import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command } from '../../src/command.js';
import { systemClock } from '../../src/domain/clock.js';
import { BosunError } from '../../src/domain/errors.js';
import { MAX_FLEET_RELAYS, resolveFleet } from '../../src/domain/fleet/spec.js';
import { ApiSyncer } from '../../src/fleet/api-syncer.js';
import { SyncApiError, SyncError } from '../../src/fleet/errors.js';
import { readFleetDir } from '../../src/fleet/files.js';
import { Notifier } from '../../src/notifier.js';
import type { Store } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ADMIN_TOKEN, relayBody, startServer, type TestServer, tempDir } from '../support/env.js';
import { ADMIN, manifest, PUBKEY, relayFile, writeFleet } from './helpers.js';

const info = { pubkey: PUBKEY };
const body = (relays: { name: string; config: Record<string, unknown>; file?: string }[], extra = {}) => ({
  defaults: {},
  relays,
  ...extra,
});

/** Everything a bad request must leave as it was. */
async function snapshot(store: Store) {
  return {
    activity: await store.lastActivityId(),
    states: (await store.listFleetStates!({ fleet: 'edge', limit: 100 })).map((s) => s.configId),
    relays: (await store.listRelays({ limit: 1000, includeDeleted: true })).map((r) => [
      r.id,
      r.rev,
      r.version,
    ]),
  };
}

describe('declarative fleet sync: bad input changes nothing', () => {
  let s: TestServer;
  const root = tempDir('bosun-fleet-bad-');
  let before: Awaited<ReturnType<typeof snapshot>>;

  beforeAll(async () => {
    s = await startServer();
    // A fleet already applied, and a relay outside it.
    const ok = await s.api('POST', '/v1/fleets/edge/apply', {
      defaults: { info },
      relays: [
        { name: 'r1', config: { host: 'r1.example.com' } },
        { name: 'r2', config: { host: 'r2.example.com' } },
      ],
    });
    expect(ok.status).toBe(200);
    expect((await s.api('POST', '/v1/relays', relayBody('outside', PUBKEY))).status).toBe(201);
  });
  afterAll(async () => {
    await s.close();
    root.cleanup();
  });

  const refused = async (path: string, payload: unknown, status: number, match: Record<string, unknown>) => {
    before = await snapshot(s.peer.store);
    const res = await s.api('POST', path, payload);
    expect(res.status).toBe(status);
    expect(res.body.error).toMatchObject(match);
    expect(await snapshot(s.peer.store)).toEqual(before);
    return res.body.error as { code: string; message: string; resource?: string };
  };

  it('refuses unknown fields, in a relay, in the defaults and in the body', async () => {
    for (const path of ['/v1/fleets/edge/plan', '/v1/fleets/edge/apply']) {
      await refused(
        path,
        body([{ name: 'r1', file: 'r1.toml', config: { host: 'r1.example.com', info, colour: 'red' } }]),
        400,
        { code: 'invalid_request', message: 'colour: unknown field', resource: 'r1.toml' },
      );
    }
    await refused('/v1/fleets/edge/apply', { defaults: { host: 'x.example.com' }, relays: [] }, 400, {
      message: 'defaults.host: unknown field',
      resource: 'fleet/edge',
    });
    await refused('/v1/fleets/edge/apply', { ...body([]), force: true }, 400, {
      message: 'force: unknown field',
    });
    await refused(
      '/v1/fleets/edge/apply',
      body([{ name: 'x', config: { host: 'x.example.com', info, fleet: 'a' } }]),
      400,
      {
        message: 'fleet: unknown field (fleet.toml names the fleet of every relay file)',
        resource: 'relay/x',
      },
    );
  });

  it('refuses duplicate ids, hosts and schemas across files', async () => {
    /** Relay file `name` (`name.toml` unless it has no file) with this host and more. */
    const file = (name: string, host: string, more: object = {}, named = true) => ({
      name,
      ...(named ? { file: `${name}.toml` } : {}),
      config: { host, info, ...more },
    });
    // Each pair clashes; the error names the second file and the first.
    const pairs = [
      [file('a', 'a.example.com', { id: 'same' }), file('b', 'b.example.com', { id: 'same' })],
      [file('a', 'same.example.com'), file('b', 'same.example.com')],
      // Two ids that derive the same schema, and two explicit ones.
      [file('x-1', 'x1.example.com'), file('x_1', 'x2.example.com')],
      [file('r1', 'r1.example.com', {}, false), file('n1', 'n1.example.com', { schema: 'r1' }, false)],
    ];
    const errors = [
      ['id: "same" is also the id of a.toml', 'b.toml'],
      ['host: "same.example.com" is also the host of a.toml', 'b.toml'],
      ['schema: "x_1" is also the schema of x-1.toml', 'x_1.toml'],
      ['schema: "r1" is also the schema of relay/r1', 'relay/n1'],
    ];
    for (const [i, pair] of pairs.entries()) {
      const [message, resource] = errors[i]!;
      await refused('/v1/fleets/edge/apply', body(pair), 400, { message, resource });
    }
  });

  it('refuses a host or schema used outside the fleet, applying none of the other changes', async () => {
    const changes = [
      { name: 'r1', config: { host: 'r1.example.com', info: { ...info, name: 'changed' } } },
      { name: 'new-1', file: 'new-1.toml', config: { host: 'new-1.example.com', info } },
    ];
    await refused(
      '/v1/fleets/edge/apply',
      body([
        ...changes,
        { name: 'new-2', file: 'new-2.toml', config: { host: 'outside.example.com', info } },
      ]),
      409,
      { code: 'host_conflict', resource: 'new-2.toml' },
    );
    await refused(
      '/v1/fleets/edge/apply',
      body([
        ...changes,
        { name: 'new-2', file: 'new-2.toml', config: { host: 'n2.example.com', info, schema: 'outside' } },
      ]),
      409,
      { code: 'schema_conflict', resource: 'new-2.toml' },
    );
  });

  it(`refuses more than ${MAX_FLEET_RELAYS} relays, but takes bodies over the API's usual 1 MiB`, async () => {
    const many = Array.from({ length: MAX_FLEET_RELAYS + 1 }, (_, i) => ({ name: `m${i}`, config: {} }));
    await refused('/v1/fleets/edge/plan', body(many), 400, {
      message: 'fleet has 10001 relays; the limit is 10000 relays per fleet',
    });
    const description = 'd'.repeat(4000);
    const big = Array.from({ length: 600 }, (_, i) => ({
      name: `big-${i}`,
      config: { host: `big-${i}.example.com`, info: { ...info, description } },
    }));
    const payload = JSON.stringify(body(big));
    expect(payload.length).toBeGreaterThan(2 * 1024 * 1024);
    const plan = await s.api('POST', '/v1/fleets/edge/plan', payload);
    expect(plan.status).toBe(200);
    expect(plan.body.summary).toMatchObject({ create: 600, orphaned: 2 });
  });

  it('refuses callers without credentials before reading the body, agents, and bad fleet names', async () => {
    before = await snapshot(s.peer.store);
    expect((await s.api('POST', '/v1/fleets/edge/apply', body([]), '')).status).toBe(401);
    expect((await s.api('POST', '/v1/fleets/edge/apply', body([]), 'wrong-token')).status).toBe(401);
    const agent = (await s.api('POST', '/v1/tokens', { role: 'agent', fleet: 'edge' })).body.token;
    expect((await s.api('POST', '/v1/fleets/edge/apply', body([]), agent)).status).toBe(403);
    expect((await s.api('GET', '/v1/fleets/edge/states', undefined, agent)).status).toBe(403);
    await refused('/v1/fleets/Edge!/apply', body([]), 400, {
      message: 'fleet: must match ^[a-z0-9][a-z0-9_-]{0,63}$',
    });
    expect((await snapshot(s.peer.store)).states).toEqual(before.states);
  });

  it('refuses a second apply of a fleet while one is in progress (409), and applies the first whole', async () => {
    before = await snapshot(s.peer.store);
    const command = s.peer.command as unknown as {
      locks: { run: (k: string, t: () => Promise<void>) => Promise<void> };
      applyingFleets: Set<string>;
    };
    // Something else holds relay r1 (e.g. a sync completing); the first apply waits for it.
    let release!: () => void;
    const held = command.locks.run('r1', () => new Promise<void>((r) => (release = r)));
    const files = body([
      { name: 'r1', config: { host: 'r1.example.com', info: { ...info, name: 'first' } } },
      { name: 'r2', config: { host: 'r2.example.com', info: { ...info, name: 'first' } } },
    ]);
    const first = s.api('POST', '/v1/fleets/edge/apply', files);
    while (!command.applyingFleets.has('edge')) await new Promise((r) => setTimeout(r, 5));
    const second = await s.api('POST', '/v1/fleets/edge/apply', files);
    expect(second.status).toBe(409);
    expect(second.body.error).toMatchObject({ code: 'conflict', resource: 'fleet/edge' });
    expect(second.body.error.message).toMatch(/being applied by another request; nothing was applied/);
    expect(await snapshot(s.peer.store)).toEqual(before);
    release();
    await held;
    const done = await first;
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ written: true, activities: 2, state: { config_id: 'edge.v2' } });
    expect((await s.peer.store.getRelay('r2'))!.config.info.name).toBe('first');
  });

  it('the API syncer reports refusals as typed errors naming the resource', async () => {
    const dir = writeFleet(join(root.path, 'dup'), manifest('edge'), {
      'a.toml': relayFile('a.example.com', 'schema = "shared"\n'),
      'b.toml': relayFile('b.example.com', 'schema = "shared"\n'),
    });
    const err = await new ApiSyncer({ server: s.url, token: ADMIN_TOKEN, fleet: readFleetDir(dir) })
      .sync()
      .catch((e) => e);
    expect(err).toBeInstanceOf(SyncError);
    expect(err).toMatchObject({
      resource: join(dir, 'b.toml'),
      description: `schema: "shared" is also the schema of ${join(dir, 'a.toml')}`,
    });
    const unauthorized = await new ApiSyncer({ server: s.url, token: 'nope', fleet: readFleetDir(dir) })
      .plan()
      .catch((e) => e);
    expect(unauthorized).toBeInstanceOf(SyncApiError);
    expect(unauthorized).toMatchObject({
      resource: 'fleet/edge',
      cause: { code: 'unauthorized', status: 401 },
    });
    const down = await new ApiSyncer({ server: 'http://127.0.0.1:9', token: 'x', fleet: readFleetDir(dir) })
      .plan()
      .catch((e) => e);
    expect(down).toBeInstanceOf(SyncApiError);
    expect(down.cause.code).toBe('unreachable');
  });
});

/**
 * Two bosun processes on one database: each has its own Command (its own locks) over its own
 * connection. The first computes its apply, then — before it commits — the other process applies.
 */
describe('declarative fleet sync: applies from two processes', () => {
  function gateFirstCommit(inner: SqliteStore) {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    let first = true;
    const store = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'commit') {
          return async (batch: Parameters<Store['commit']>[0]) => {
            if (first) {
              first = false;
              reached();
              await gate;
            }
            return target.commit(batch);
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Store;
    return { store, atGate, release };
  }

  const fleetOf = (name: string, ids: string[]) =>
    resolveFleet('edge', {
      defaults: { info: { pubkey: PUBKEY, name } },
      relays: ids.map((id) => ({ name: id, config: { host: `${id}.example.com` } })),
    });

  async function twoProcesses() {
    const dir = tempDir('bosun-fleet-2p-');
    const file = join(dir.path, 'bosun.db');
    const a = new SqliteStore(file);
    const b = new SqliteStore(file);
    const gated = gateFirstCommit(a);
    return {
      a: new Command(gated.store, new Notifier(), systemClock),
      b: new Command(b, new Notifier(), systemClock),
      gated,
      store: b,
      close: async () => {
        await a.close();
        await b.close();
        dir.cleanup();
      },
    };
  }

  it('the apply that commits second fails with a conflict and writes nothing', async () => {
    const p = await twoProcesses();
    try {
      const slow = p.a.applyFleet(ADMIN, 'edge', fleetOf('from-a', ['r1', 'r2', 'r3']), { prune: false });
      await p.gated.atGate;
      const fast = await p.b.applyFleet(ADMIN, 'edge', fleetOf('from-b', ['r1', 'r2']), { prune: false });
      expect(fast.state?.config_id).toBe('edge.v1');
      p.gated.release();
      const err = await slow.catch((e) => e);
      expect(err).toBeInstanceOf(BosunError);
      expect(err).toMatchObject({ code: 'conflict', status: 409, resource: 'fleet/edge' });
      expect(err.message).toBe(
        'fleet edge was applied concurrently (now at version 1); nothing was applied, plan again',
      );
      // Only the winner's apply is there: its relays, its activities, its version.
      expect((await p.store.listRelays({ limit: 10 })).map((r) => [r.id, r.config.info.name])).toEqual([
        ['r1', 'from-b'],
        ['r2', 'from-b'],
      ]);
      expect(await p.store.lastActivityId()).toBe(2);
      expect((await p.store.listFleetStates!({ fleet: 'edge', limit: 10 })).map((s) => s.version)).toEqual([
        1,
      ]);
    } finally {
      await p.close();
    }
  });

  it('an update from elsewhere between plan and commit is re-read and the apply retried', async () => {
    const p = await twoProcesses();
    try {
      await p.b.applyFleet(ADMIN, 'edge', fleetOf('v1', ['r1', 'r2']), { prune: false });
      const slow = p.a.applyFleet(ADMIN, 'edge', fleetOf('v2', ['r1', 'r2']), { prune: false });
      await p.gated.atGate;
      await p.b.updateRelay(ADMIN, 'r1', { policy: { public_join: true } });
      p.gated.release();
      const result = await slow;
      expect(result.state?.config_id).toBe('edge.v2');
      const r1 = (await p.store.getRelay('r1'))!;
      expect([r1.version, r1.config.info.name, r1.config.policy.public_join]).toEqual([3, 'v2', false]);
      expect(await p.store.lastActivityId()).toBe(5);
    } finally {
      await p.close();
    }
  });
});
