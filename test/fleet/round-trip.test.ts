import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiSyncer } from '../../src/fleet/api-syncer.js';
import { DbSyncer } from '../../src/fleet/db-syncer.js';
import { SyncError } from '../../src/fleet/errors.js';
import { readFleetDir } from '../../src/fleet/files.js';
import type { FleetSyncer } from '../../src/fleet/syncer.js';
import type { Store } from '../../src/store/port.js';
import { ADMIN_TOKEN, keypair, relayBody, startServer, tempDir } from '../support/env.js';
import { ADMIN, dbRig, manifest, PUBKEY, relayFile, writeFleet } from './helpers.js';

const SECRET_C = keypair().secret;

interface Harness {
  syncer: (dir: string, prune?: boolean) => FleetSyncer;
  store: Store;
  close: () => Promise<void>;
}

/** The DB syncer as `serve --fleet` runs it: files unchanged since the last State are not parsed. */
async function dbHarness(): Promise<Harness> {
  const rig = dbRig();
  return {
    syncer: (dir, prune) => lazySyncer(rig, dir, prune ?? false),
    store: rig.store,
    close: rig.close,
  };
}

/** A FleetSyncer whose DbSyncer reads the directory against the last State on first use. */
function lazySyncer(rig: ReturnType<typeof dbRig>, dir: string, prune: boolean): FleetSyncer {
  let syncer: DbSyncer | undefined;
  const get = async () =>
    (syncer ??= await DbSyncer.fromDir({
      command: rig.command,
      store: rig.store,
      principal: ADMIN,
      dir,
      prune,
    }));
  return {
    plan: async () => (await get()).plan(),
    sync: async () => (await get()).sync(),
    lastResult: () => syncer!.lastResult(),
    getConfigId: () => syncer!.getConfigId(),
    getRelayStateIds: () => syncer!.getRelayStateIds(),
    getRelaysScheduled: () => syncer!.getRelaysScheduled(),
    orphanedRelays: () => syncer!.orphanedRelays(),
  };
}

async function apiHarness(): Promise<Harness & { api: Awaited<ReturnType<typeof startServer>>['api'] }> {
  const s = await startServer();
  return {
    syncer: (dir, prune) =>
      new ApiSyncer({ server: s.url, token: ADMIN_TOKEN, fleet: readFleetDir(dir), prune: prune ?? false }),
    store: s.peer.store,
    api: s.api,
    close: s.close,
  };
}

const defaults = `[defaults.info]\npubkey = "${PUBKEY}"\n\n[defaults.blossom]\nenabled = true\n`;
const fileA = (publicJoin: boolean) =>
  relayFile('a.example.com', `\n[info]\nname = "A"\n\n[policy]\npublic_join = ${publicJoin}\n`);
const fileC = (apiSecret: string) =>
  relayFile(
    'c.example.com',
    `secret = "${SECRET_C}"\n\n[livekit]\nserver_url = "wss://lk.example.com"\napi_key = "k"\napi_secret = "${apiSecret}"\n`,
  );

/**
 * Plan, apply, re-apply, change + orphan, prune, re-apply: the same steps through either syncer.
 * Returns every plan and State so the two syncers can be compared.
 */
async function scenario(h: Harness, dir: string): Promise<unknown[]> {
  const transcript: unknown[] = [];
  const activities = () => h.store.lastActivityId();
  const outputs: string[] = [];
  const record = (x: unknown) => {
    outputs.push(JSON.stringify(x));
    transcript.push(x);
  };

  // 1. Create three relays.
  writeFleet(dir, manifest('edge', defaults), {
    'a.toml': fileA(false),
    'b.toml': relayFile('b.example.com'),
    'c.toml': fileC('lk-secret-1'),
  });
  let s = h.syncer(dir);
  const plan1 = await s.plan();
  record(plan1);
  expect(plan1.summary).toEqual({ create: 3, update: 0, unchanged: 0, orphaned: 0, delete: 0 });
  expect(plan1.changes).toBe(true);
  expect(plan1.relays.find((r) => r.id === 'c')?.changes).toEqual(
    expect.arrayContaining([
      { field: 'secret', after: '(sensitive)' },
      { field: 'livekit.api_secret', after: '(sensitive)' },
      { field: 'blossom.enabled', after: true },
      { field: 'host', after: 'c.example.com' },
    ]),
  );
  expect(await activities()).toBe(0);
  await s.sync();
  record(s.lastResult().state);
  expect(s.getConfigId()).toBe('edge.v1');
  expect(s.getRelayStateIds()).toEqual(['a', 'b', 'c']);
  expect(s.getRelaysScheduled().map((r) => [r.id, r.config_id, r.version])).toEqual([
    ['a', 'a.v1', 1],
    ['b', 'b.v1', 1],
    ['c', 'c.v1', 1],
  ]);
  expect(s.orphanedRelays()).toEqual({});
  expect(await activities()).toBe(3);
  const secretA = (await h.store.getRelay('a'))!.secret;
  expect((await h.store.getRelay('c'))!.secret).toBe(SECRET_C);
  expect(await h.store.getRelay('a')).toMatchObject({
    fleet: 'edge',
    owner: 'default',
    config: { blossom: { enabled: true }, info: { name: 'A', pubkey: PUBKEY }, schema: 'a' },
  });

  // 2. Re-apply the same files: nothing changes, no activity, no new version.
  s = h.syncer(dir);
  const plan2 = await s.plan();
  record(plan2);
  expect(plan2.changes).toBe(false);
  expect(plan2.summary.unchanged).toBe(3);
  await s.sync();
  expect(s.lastResult()).toMatchObject({ written: false, activities: 0, scheduled: [] });
  expect(s.getConfigId()).toBe('edge.v1');
  expect(await activities()).toBe(3);
  expect((await h.store.listFleetStates!({ fleet: 'edge', limit: 10 })).length).toBe(1);

  // 3. Change a and c's livekit secret, drop b's file: b is orphaned, not deleted.
  writeFleet(dir, manifest('edge', defaults), { 'a.toml': fileA(true), 'c.toml': fileC('lk-secret-2') });
  s = h.syncer(dir);
  const plan3 = await s.plan();
  record(plan3);
  expect(plan3.relays).toEqual([
    {
      name: 'a',
      id: 'a',
      action: 'update',
      file: join(dir, 'a.toml'),
      changes: [{ field: 'policy.public_join', before: false, after: true }],
    },
    {
      name: 'c',
      id: 'c',
      action: 'update',
      file: join(dir, 'c.toml'),
      changes: [{ field: 'livekit.api_secret', before: '(sensitive)', after: '(sensitive)' }],
    },
    { name: 'b', id: 'b', action: 'orphaned' },
  ]);
  await s.sync();
  record(s.lastResult().state);
  expect(s.getConfigId()).toBe('edge.v2');
  expect(s.orphanedRelays()).toEqual({ b: 'b' });
  expect(s.getRelaysScheduled().map((r) => r.config_id)).toEqual(['a.v2', 'c.v2']);
  expect((await h.store.getRelay('b'))!.deletedAt).toBeNull();
  expect(await activities()).toBe(5);
  expect((await h.store.getRelay('a'))!.secret).toBe(secretA);
  expect((await h.store.getRelay('c'))!.config.livekit.api_secret).toBe('lk-secret-2');

  // 4. Prune: b is deleted, in the same transaction as the new version.
  s = h.syncer(dir, true);
  const plan4 = await s.plan();
  record(plan4);
  expect(plan4.relays.filter((r) => r.action !== 'unchanged')).toEqual([
    { name: 'b', id: 'b', action: 'delete' },
  ]);
  await s.sync();
  record(s.lastResult().state);
  expect(s.lastResult().pruned).toEqual({ b: 'b' });
  expect(s.getConfigId()).toBe('edge.v3');
  expect((await h.store.getRelay('b'))!.deletedAt).not.toBeNull();
  const [last] = await h.store.activitiesAfter({ after: 5, limit: 10 });
  expect(last).toMatchObject({ type: 'delete_relay', relayId: 'b' });

  // 5. Re-apply with prune: nothing to do.
  s = h.syncer(dir, true);
  await s.sync();
  expect(s.lastResult()).toMatchObject({ written: false, activities: 0 });
  expect(await activities()).toBe(6);

  // No output ever carried a secret.
  for (const out of outputs) {
    for (const secret of [SECRET_C, secretA, 'lk-secret-1', 'lk-secret-2']) expect(out).not.toContain(secret);
  }
  return transcript;
}

describe('declarative fleet sync: both syncers', () => {
  const root = tempDir('bosun-fleet-rt-');
  afterAll(() => root.cleanup());

  it('plan / apply / re-apply / orphan / prune round trips give identical plans and States', async () => {
    const db = await dbHarness();
    const api = await apiHarness();
    try {
      const dir = join(root.path, 'edge');
      const viaDb = await scenario(db, dir);
      const viaApi = await scenario(api, dir);
      expect(viaApi).toEqual(viaDb);
      expect(viaDb[1]).toMatchObject({
        version: 'v1',
        config_id: 'edge.v1',
        fleet_id: 'edge',
        fleet_version: 1,
        owner: null,
        orphans: {},
      });
      expect((viaDb[1] as { relays: { checksum: string }[] }).relays[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);

      const history = await api.api('GET', '/v1/fleets/edge/states?limit=2');
      expect(history.status).toBe(200);
      expect(history.body.states.map((s: { config_id: string }) => s.config_id)).toEqual([
        'edge.v3',
        'edge.v2',
      ]);
      expect(history.body.next).toBe(2);
      expect(history.body.states[1].state).toEqual(viaDb[4]);
      const rest = await api.api('GET', '/v1/fleets/edge/states?before=2');
      expect(rest.body).toMatchObject({ states: [{ config_id: 'edge.v1', owner: null }], next: null });
    } finally {
      await db.close();
      await api.close();
    }
  });

  it('the DB syncer leaves unchanged files unparsed, yet never misses a change', async () => {
    const rig = dbRig();
    try {
      const dir = writeFleet(join(root.path, 'lazy'), manifest('lazy'), {
        'x.toml': relayFile('x.example.com'),
        'y.toml': relayFile('y.example.com', '# a comment\n'),
      });
      const syncer = (prune = false) =>
        DbSyncer.fromDir({ command: rig.command, store: rig.store, principal: ADMIN, dir, prune });
      const first = await syncer();
      expect(first.fleet.resolved.relays.every((r) => r.fields)).toBe(true);
      await first.sync();
      expect(first.lastResult().state!.relays.map((r) => r.source)).toEqual([
        expect.stringMatching(/^[0-9a-f]{64}$/),
        expect.stringMatching(/^[0-9a-f]{64}$/),
      ]);

      // Nothing changed: neither file is parsed.
      const again = await syncer();
      expect(again.fleet.resolved.relays.map((r) => r.fields)).toEqual([undefined, undefined]);
      expect((await again.plan()).changes).toBe(false);

      // x changed through the API: its unchanged file is parsed after all, and x is put back.
      await rig.command.updateRelay(ADMIN, 'x', { policy: { public_join: true } });
      const drifted = await syncer();
      expect(drifted.fleet.resolved.relays[0]!.fields).toBeUndefined();
      expect((await drifted.plan()).relays.map((r) => [r.id, r.action, r.changes])).toEqual([
        ['x', 'update', [{ field: 'policy.public_join', before: true, after: false }]],
        ['y', 'unchanged', undefined],
      ]);
      await drifted.sync();
      expect((await rig.store.getRelay('x'))!.config.policy.public_join).toBe(false);

      // A comment-only edit changes no relay, but records the file's new source.
      writeFleet(dir, manifest('lazy'), {
        'x.toml': relayFile('x.example.com'),
        'y.toml': relayFile('y.example.com', '# another comment\n'),
      });
      const activities = await rig.store.lastActivityId();
      const comment = await syncer();
      expect((await comment.plan()).changes).toBe(false);
      await comment.sync();
      expect(comment.lastResult()).toMatchObject({
        written: true,
        activities: 0,
        state: { config_id: 'lazy.v3' },
      });
      const still = await syncer();
      await still.sync();
      expect(still.lastResult()).toMatchObject({ written: false, state: { config_id: 'lazy.v3' } });
      expect(await rig.store.lastActivityId()).toBe(activities);

      // A changed file taking the host of an unchanged (unparsed) one is refused in the plan.
      writeFleet(dir, manifest('lazy'), {
        'x.toml': relayFile('x.example.com'),
        'y.toml': relayFile('x.example.com', '# another comment\n'),
      });
      const clash = await (await syncer()).plan().catch((e) => e);
      expect(clash).toBeInstanceOf(SyncError);
      expect(clash.message).toBe(
        `${join(dir, 'y.toml')}: host: "x.example.com" is also the host of ${join(dir, 'x.toml')}`,
      );

      // New defaults in fleet.toml touch every file's source: all are parsed, all change.
      writeFleet(
        dir,
        manifest('lazy', `[defaults.info]\npubkey = "${PUBKEY}"\n[defaults.groups]\nenabled = true\n`),
        {
          'x.toml': relayFile('x.example.com'),
          'y.toml': relayFile('y.example.com', '# another comment\n'),
        },
      );
      const defaults = await syncer();
      expect(defaults.fleet.resolved.relays.every((r) => r.fields)).toBe(true);
      expect((await defaults.plan()).summary).toMatchObject({ update: 2, unchanged: 0 });
    } finally {
      await rig.close();
    }
  });

  it('moves hosts along a chain and round a ring (a swap) in one apply, whatever the file order', async () => {
    const rig = dbRig();
    try {
      const dir = join(root.path, 'shift');
      const files = (...hosts: string[]) =>
        writeFleet(
          dir,
          manifest('shift'),
          Object.fromEntries(hosts.map((h, i) => [`${'abc'[i]}.toml`, relayFile(h)])),
        );
      const syncer = () =>
        DbSyncer.fromDir({ command: rig.command, store: rig.store, principal: ADMIN, dir });
      const relays = () => rig.store.getRelays(['a', 'b', 'c']);
      const hosts = async () =>
        (await relays()).sort((x, y) => (x.id < y.id ? -1 : 1)).map((r) => r.config.host);
      files('one.example.com', 'two.example.com', 'six.example.com');
      await (await syncer()).sync();

      // a takes b's host while b moves on: b is written first (a.toml comes first in the files).
      files('two.example.com', 'three.example.com', 'six.example.com');
      const shift = await syncer();
      expect((await shift.plan()).summary).toMatchObject({ update: 2 });
      await shift.sync();
      expect(await hosts()).toEqual(['two.example.com', 'three.example.com', 'six.example.com']);

      // A swap, and a ring of three: one relay of each stands on a placeholder host inside the
      // transaction. Each relay gets one new version and one activity, as for any update.
      for (const ring of [
        ['three.example.com', 'two.example.com', 'six.example.com'],
        ['six.example.com', 'three.example.com', 'two.example.com'],
      ]) {
        const before = await rig.store.lastActivityId();
        const versions = (await relays()).map((r) => [r.id, r.version]);
        files(...ring);
        const apply = await syncer();
        expect((await apply.plan()).summary).toMatchObject({ update: ring[2] === 'six.example.com' ? 2 : 3 });
        await apply.sync();
        expect(await hosts()).toEqual(ring);
        const changed = (await rig.store.activitiesAfter({ after: before, limit: 10 })).map((a) => a.relayId);
        expect(changed.sort()).toEqual(ring[2] === 'six.example.com' ? ['a', 'b'] : ['a', 'b', 'c']);
        for (const [id, version] of versions) {
          const now = (await rig.store.getRelay(id as string))!;
          expect(now.version).toBe((version as number) + (changed.includes(id as string) ? 1 : 0));
        }
        expect((await rig.store.relaysUsing({ host: 'a.bosun-parked.invalid' })).length).toBe(0);
        // Applying the same files again changes nothing.
        expect((await (await syncer()).plan()).changes).toBe(false);
      }
    } finally {
      await rig.close();
    }
  });

  it('adopts relays created through the API, keeps their secret, and moves them into the fleet', async () => {
    const api = await apiHarness();
    try {
      const created = await api.api('POST', '/v1/relays', relayBody('legacy', PUBKEY));
      expect(created.status).toBe(201);
      const secret = (await api.store.getRelay('legacy'))!.secret;
      const dir = writeFleet(join(root.path, 'adopt'), manifest('edge'), {
        'legacy.toml': relayFile('legacy.example.com', '\n[info]\nname = "legacy"\n'),
      });
      const s = api.syncer(dir);
      expect((await s.plan()).relays).toEqual([
        {
          name: 'legacy',
          id: 'legacy',
          action: 'update',
          file: join(dir, 'legacy.toml'),
          changes: [{ field: 'fleet', before: 'default', after: 'edge' }],
        },
      ]);
      await s.sync();
      expect(await api.store.getRelay('legacy')).toMatchObject({ fleet: 'edge', version: 2, secret });
    } finally {
      await api.close();
    }
  });

  it('applies for a tenant: relays it owns; another tenant’s relay, an owner or secret change is refused', async () => {
    const s = await startServer();
    try {
      const token = async (owner: string) =>
        (await s.api('POST', '/v1/tokens', { role: 'tenant', owner })).body.token as string;
      const alice = await token('alice');
      const bob = await token('bob');
      const as = (t: string, dir: string) =>
        new ApiSyncer({ server: s.url, token: t, fleet: readFleetDir(dir) });
      const aliceDir = writeFleet(join(root.path, 'alice'), manifest('shared'), {
        'al-1.toml': relayFile('al-1.example.com'),
      });
      const mine = as(alice, aliceDir);
      await mine.sync();
      expect(await s.peer.store.getRelay('al-1')).toMatchObject({ owner: 'alice', fleet: 'shared' });
      expect(mine.lastResult().state).toMatchObject({ owner: 'alice', config_id: 'shared.v1' });

      const before = await s.peer.store.lastActivityId();
      const bobDir = writeFleet(join(root.path, 'bob'), manifest('shared'), {
        'bo-1.toml': relayFile('bo-1.example.com'),
        'al-1.toml': relayFile('al-1.example.com'),
      });
      const err = await as(bob, bobDir)
        .sync()
        .catch((e) => e);
      expect(err).toBeInstanceOf(SyncError);
      expect(err.message).toBe(
        `${join(bobDir, 'al-1.toml')}: id: relay "al-1" already exists and belongs to another tenant`,
      );
      expect(await s.peer.store.getRelay('bo-1')).toBeUndefined();
      expect(await s.peer.store.lastActivityId()).toBe(before);

      // Bob sees no history of Alice's versions; Alice and the admin do.
      expect((await s.api('GET', '/v1/fleets/shared/states', undefined, bob)).body.states).toEqual([]);
      expect((await s.api('GET', '/v1/fleets/shared/states', undefined, alice)).body.states).toHaveLength(1);
      expect((await s.api('GET', '/v1/fleets/shared/states')).body.states).toHaveLength(1);

      // Bob's own fleet of the same name: Alice's relays are not his orphans.
      rmSync(join(bobDir, 'al-1.toml'));
      const bobs = as(bob, bobDir);
      expect((await bobs.plan()).relays.map((r) => [r.id, r.action])).toEqual([['bo-1', 'create']]);

      const ownerDir = writeFleet(join(root.path, 'owner'), manifest('shared'), {
        'al-1.toml': relayFile('al-1.example.com', 'owner = "bob"\n'),
      });
      const ownerErr = await as(ADMIN_TOKEN, ownerDir)
        .plan()
        .catch((e) => e);
      expect(ownerErr.message).toBe(
        `${join(ownerDir, 'al-1.toml')}: owner: cannot be changed; relay "al-1" is owned by alice`,
      );
      const secretDir = writeFleet(join(root.path, 'secret'), manifest('shared'), {
        'al-1.toml': relayFile('al-1.example.com', `secret = "${keypair().secret}"\n`),
      });
      const secretErr = await as(alice, secretDir)
        .sync()
        .catch((e) => e);
      expect(secretErr).toBeInstanceOf(SyncError);
      expect(secretErr.description).toMatch(/^secret: differs from the stored secret; sync never rotates/);
      expect(await s.peer.store.lastActivityId()).toBe(before);
    } finally {
      await s.close();
    }
  });
});
