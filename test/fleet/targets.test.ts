import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderApply, renderPlan } from '../../src/domain/fleet/plan.js';
import { ApiSyncer } from '../../src/fleet/api-syncer.js';
import { DbSyncer } from '../../src/fleet/db-syncer.js';
import { SyncError } from '../../src/fleet/errors.js';
import { readFleetDir } from '../../src/fleet/files.js';
import { ADMIN_TOKEN, keypair, startServer, tempDir } from '../support/env.js';
import { ADMIN, dbRig, manifest, PUBKEY, relayFile, writeFleet } from './helpers.js';

const root = tempDir('bosun-fleet-targets-');
const defaults = `[defaults.info]\npubkey = "${PUBKEY}"\n`;
const withTarget = (name: string, target: string) => `name = "${name}"\ntarget = "${target}"\n\n${defaults}`;
const eu = (at: number) => ({
  name: 'eu-1',
  url: 'http://127.0.0.1:3334',
  secretKey: null,
  verifyUrl: null,
  rev: 1,
  createdAt: at,
  updatedAt: at,
});

/**
 * A database with target eu-1, and `sync`, which writes fleet directory `name` and plans and syncs
 * it; closed after `fn`.
 */
async function withEuTarget(
  name: string,
  fn: (
    rig: ReturnType<typeof dbRig>,
    sync: (text: string, relays: Record<string, string>) => ReturnType<typeof planAndSync>,
  ) => Promise<void>,
): Promise<void> {
  const rig = dbRig();
  try {
    await rig.store.insertTarget(eu(1));
    await fn(rig, (text, relays) => planAndSync(rig, name, text, relays));
  } finally {
    await rig.close();
  }
}

/** Writes the fleet directory `name` (fleet.toml `text` and `relays`), plans it, syncs it. */
async function planAndSync(
  rig: ReturnType<typeof dbRig>,
  name: string,
  text: string,
  relays: Record<string, string>,
) {
  const dir = writeFleet(join(root.path, name), text, relays);
  const syncer = await DbSyncer.fromDir({ ...rig, principal: ADMIN, dir });
  const plan = await syncer.plan();
  await syncer.sync();
  return { plan, applied: syncer.lastResult() };
}

describe('fleet.toml target', () => {
  afterAll(() => root.cleanup());

  it('refuses an unknown target in the plan and the apply, naming it; nothing is written', async () => {
    const rig = dbRig();
    try {
      const dir = writeFleet(join(root.path, 'unknown'), withTarget('edge', 'eu-1'), {
        'e1.toml': relayFile('e1.example.com'),
      });
      const syncer = await DbSyncer.fromDir({ ...rig, principal: ADMIN, dir });
      for (const run of [() => syncer.plan(), () => syncer.sync()]) {
        const err = await run().catch((e) => e);
        expect(err).toBeInstanceOf(SyncError);
        expect(err.message).toMatch(/target: "eu-1" does not exist/);
      }
      expect(await rig.store.getRelay('e1')).toBeUndefined();
      expect(await rig.store.getFleet('edge')).toBeUndefined();
      expect(await rig.store.latestFleetState('edge')).toBeUndefined();
      expect(await rig.store.lastActivityId()).toBe(0);
    } finally {
      await rig.close();
    }
  });

  it('plans and applies a target change with the relays; a file without target leaves the pin alone', async () => {
    await withEuTarget('change', async (rig, sync) => {
      const relays = { 'e1.toml': relayFile('e1.example.com') };
      const first = await sync(withTarget('edge', 'eu-1'), relays);
      expect(first.plan.target).toEqual({ before: 'default', after: 'eu-1' });
      expect(renderPlan(first.plan)).toContain('  ~ target: default -> eu-1');
      expect(renderApply(first.applied)).toContain('  ~ target: default -> eu-1');
      expect(await rig.store.getFleet('edge')).toMatchObject({ target: { kind: 'target', name: 'eu-1' } });
      expect(await rig.store.getRelay('e1')).toMatchObject({ fleet: 'edge' });
      expect((await rig.store.latestFleetState('edge'))?.version).toBe(1);

      // The same files again: nothing to do.
      const again = await sync(withTarget('edge', 'eu-1'), relays);
      expect(again.plan.changes).toBe(false);
      expect(again.plan.target).toBeUndefined();

      // Only the target changes: a change, applied, with no new relay writes.
      const before = await rig.store.lastActivityId();
      const pull = await sync(withTarget('edge', 'none'), relays);
      expect(pull.plan).toMatchObject({ changes: true, target: { before: 'eu-1', after: null } });
      expect(renderPlan(pull.plan)).toContain('  ~ target: eu-1 -> none (pull-only)');
      expect(await rig.store.getFleet('edge')).toMatchObject({ target: { kind: 'none' } });
      expect(await rig.store.lastActivityId()).toBe(before);

      // No target in fleet.toml: whatever the fleet has stays.
      const left = await sync(manifest('edge'), relays);
      expect(left.plan.target).toBeUndefined();
      expect(await rig.store.getFleet('edge')).toMatchObject({ target: { kind: 'none' } });

      const pulled = await rig.store.lastActivityId();
      const back = await sync(withTarget('edge', 'default'), relays);
      expect(back.plan.target).toEqual({ before: null, after: 'default' });
      expect(await rig.store.getFleet('edge')).toMatchObject({ target: { kind: 'default' } });
      // Pushed again, now to default: e1 is synced again (resync_relay) in the same transaction.
      const resynced = await rig.store.activitiesAfter({ after: pulled, limit: 10 });
      expect(resynced.map((a) => [a.type, a.relayId])).toEqual([['resync_relay', 'e1']]);
      expect((await rig.store.getRelay('e1'))?.sync.status).toBe('pending');
    });
  });

  it('says how many relays a target change moves, and from where; pull-only leaves them in place', async () => {
    await withEuTarget('moves', async (rig, sync) => {
      const relays = { 'e1.toml': relayFile('e1.example.com'), 'e2.toml': relayFile('e2.example.com') };
      await sync(withTarget('edge', 'eu-1'), relays);
      // As push sync leaves them: acknowledged on eu-1.
      for (const id of ['e1', 'e2']) {
        const previous = (await rig.store.getRelay(id))!;
        const relay = {
          ...previous,
          rev: previous.rev + 1,
          sync: { ...previous.sync, status: 'synced' as const, ackedDeleted: false, pushedTarget: 'eu-1' },
        };
        await rig.store.commit({ relays: [{ kind: 'update', relay, previous }], activities: [] });
      }
      const moved = await sync(withTarget('edge', 'default'), relays);
      expect(moved.plan.target).toEqual({
        before: 'eu-1',
        after: 'default',
        moves: { relays: 2, from: ['eu-1'] },
      });
      const line =
        '      moves 2 relays from eu-1 to default; zooid keeps the data of a relay deleted from eu-1';
      expect(renderPlan(moved.plan)).toContain(
        `fleet edge: 0 to create, 0 to update, 0 to delete, 2 unchanged, 0 orphaned\n  ~ target: eu-1 -> default\n${line}`,
      );
      expect(renderApply(moved.applied)).toContain(line);
      const pull = await sync(withTarget('edge', 'none'), relays);
      expect(pull.plan.target).toEqual({ before: 'default', after: null });
      expect(renderPlan(pull.plan)).toContain(
        '      its relays stay on the targets they are on: bosun no longer pushes them, nor deletes them there',
      );
    });
  });

  it('refuses a bad target value in fleet.toml, naming the line', async () => {
    const dir = writeFleet(join(root.path, 'bad'), withTarget('edge', 'EU 1'), {
      'e1.toml': relayFile('e1.example.com'),
    });
    const err = (() => {
      try {
        readFleetDir(dir);
      } catch (e) {
        return e as SyncError;
      }
    })();
    expect(err).toBeInstanceOf(SyncError);
    expect(err!.message).toBe(`${join(dir, 'fleet.toml')}:2: target: must match ^[a-z0-9][a-z0-9_-]{0,63}$`);
  });

  it('over the API: the target travels with the fleet; a tenant may not change it', async () => {
    const s = await startServer();
    try {
      const key = keypair();
      await s.api('POST', '/v1/targets', {
        name: 'eu-1',
        url: 'http://127.0.0.1:3334',
        secret_key: key.secret,
      });
      const tenant = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
      const dir = writeFleet(join(root.path, 'api'), withTarget('shared', 'eu-1'), {
        'a1.toml': relayFile('a1.example.com'),
      });
      const as = (token: string) => new ApiSyncer({ server: s.url, token, fleet: readFleetDir(dir) });
      const err = await as(tenant)
        .sync()
        .catch((e) => e);
      expect(err.cause.status).toBe(403);
      expect(err.message).toMatch(
        /target: changing fleet shared's target \(default -> eu-1\) needs an admin token/,
      );
      expect(await s.peer.store.getRelay('a1')).toBeUndefined();

      await as(ADMIN_TOKEN).sync();
      expect((await s.api('GET', '/v1/fleets')).body.fleets).toEqual([
        expect.objectContaining({ name: 'shared', target: 'eu-1' }),
      ]);
      // The target as it is: a tenant's apply goes through.
      writeFleet(dir, withTarget('shared', 'eu-1'), { 'a2.toml': relayFile('a2.example.com') });
      await as(tenant).sync();
      expect(await s.peer.store.getRelay('a2')).toMatchObject({ owner: 'alice' });

      writeFleet(dir, withTarget('shared', 'none'), { 'a1.toml': relayFile('a1.example.com') });
      const plan = await as(ADMIN_TOKEN).plan();
      expect(plan.target).toEqual({ before: 'eu-1', after: null });
      await as(ADMIN_TOKEN).sync();
      expect((await s.api('GET', '/v1/fleets')).body.fleets[0].target).toBeNull();

      // The API refuses an unknown target in a plan body too.
      const res = await s.api('POST', '/v1/fleets/shared/plan', { target: 'mars', relays: [] });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/"mars" does not exist/);
    } finally {
      await s.close();
    }
  });
});
