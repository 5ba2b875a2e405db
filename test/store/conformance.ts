import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActivityDraft } from '../../src/domain/activity.js';
import { generateSecretKey } from '../../src/domain/keys.js';
import { type LiveState, UNKNOWN_LIVE } from '../../src/domain/live.js';
import type { Relay } from '../../src/domain/relay.js';
import type { Target } from '../../src/domain/target.js';
import type { FleetStateRecord, RelayFilter, Store } from '../../src/store/port.js';
import {
  FencedError,
  StaleFleetStateError,
  StaleWriteError,
  StoreConflictError,
  UnknownTargetError,
} from '../../src/store/write-errors.js';
import { keypair } from '../support/env.js';
import { relayRecord } from '../support/relays.js';

/** Behaviour every Store adapter must have. Each adapter's test file runs this suite. */
export function storeConformance(
  name: string,
  open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>,
) {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    const { pubkey } = keypair();

    beforeEach(async () => {
      ({ store, cleanup } = await open());
    });
    afterEach(async () => {
      await cleanup();
    });

    const relay = (id: string, over: Partial<Relay> = {}): Relay => relayRecord(id, pubkey, over);
    const act = (
      relayId: string,
      type: ActivityDraft['type'] = 'create_relay',
      owner = 'alice',
    ): ActivityDraft => ({
      type,
      relayId,
      owner,
      actor: 'test',
      payload: { version: 1 },
      createdAt: 1000,
    });

    it('round-trips a relay and returns activities with increasing ids', async () => {
      const r = relay('a1');
      const [a] = await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a1')] });
      expect(a?.id).toBe(1);
      expect(await store.getRelay('a1')).toEqual(r);
      const [b] = await store.commit({
        relays: [{ kind: 'insert', relay: relay('a2') }],
        activities: [act('a2')],
      });
      expect(b?.id).toBe(2);
      expect(await store.lastActivityId()).toBe(2);
    });

    it('rejects duplicate id, host and schema with a typed conflict, writing nothing', async () => {
      await store.commit({ relays: [{ kind: 'insert', relay: relay('a1') }], activities: [act('a1')] });
      const dupHost = relay('b1', { config: { ...relay('b1').config, host: 'a1.example.com' } });
      const dupSchema = relay('c1', { config: { ...relay('c1').config, schema: 'a1' } });
      const dupId = relay('a1', { config: { ...relay('z9').config } });
      for (const [r, field] of [
        [dupId, 'id'],
        [dupHost, 'host'],
        [dupSchema, 'schema'],
      ] as const) {
        const err = await store
          .commit({ relays: [{ kind: 'insert', relay: r }], activities: [act(r.id)] })
          .catch((e) => e);
        expect(err).toBeInstanceOf(StoreConflictError);
        expect((err as StoreConflictError).field).toBe(field);
      }
      expect(await store.lastActivityId()).toBe(1);
      expect((await store.listRelays({ limit: 10 })).map((r) => r.id)).toEqual(['a1']);
    });

    it('guards updates by rev: a stale write fails and rolls back its activities', async () => {
      const r = relay('a1');
      await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a1')] });
      const next = { ...r, version: 2, rev: 2 };
      await store.commit({
        relays: [{ kind: 'update', relay: next, previous: r }],
        activities: [act('a1', 'update_relay')],
      });
      const stale = store.commit({
        relays: [{ kind: 'update', relay: { ...r, version: 2, rev: 2 }, previous: r }],
        activities: [act('a1', 'update_relay')],
      });
      await expect(stale).rejects.toBeInstanceOf(StaleWriteError);
      expect(await store.lastActivityId()).toBe(2);
      expect((await store.getRelay('a1'))?.rev).toBe(2);
    });

    it('a batch is atomic: one failing write undoes the others', async () => {
      await store.commit({ relays: [{ kind: 'insert', relay: relay('a1') }], activities: [act('a1')] });
      const err = await store
        .commit({
          relays: [
            { kind: 'insert', relay: relay('b1') },
            { kind: 'insert', relay: relay('a1') },
          ],
          activities: [act('b1'), act('a1')],
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(StoreConflictError);
      expect(await store.getRelay('b1')).toBeUndefined();
      expect(await store.lastActivityId()).toBe(1);
    });

    it('writes one relay twice in a batch (a placeholder host, then its own): hosts swap in one commit', async () => {
      const a = relay('a1');
      const b = relay('b1');
      await store.commit({
        relays: [
          { kind: 'insert', relay: a },
          { kind: 'insert', relay: b },
        ],
        activities: [act('a1'), act('b1')],
      });
      const host = (r: Relay, h: string, rev: number): Relay => ({
        ...r,
        rev,
        config: { ...r.config, host: h },
      });
      const parked = host(a, 'a1.bosun-parked.invalid', 2);
      const [a2, b2] = [
        { ...host(a, 'b1.example.com', 3), version: 2 },
        { ...host(b, 'a1.example.com', 2), version: 2 },
      ];
      // The same order without the placeholder write collides on the unique host.
      await expect(
        store.commit({
          relays: [
            { kind: 'update', relay: b2, previous: b },
            { kind: 'update', relay: { ...a2, rev: 2 }, previous: a },
          ],
          activities: [act('b1', 'update_relay'), act('a1', 'update_relay')],
        }),
      ).rejects.toBeInstanceOf(StoreConflictError);
      const written = await store.commit({
        relays: [
          { kind: 'update', relay: parked, previous: a },
          { kind: 'update', relay: b2, previous: b },
          { kind: 'update', relay: a2, previous: parked },
        ],
        activities: [act('b1', 'update_relay'), act('a1', 'update_relay')],
      });
      expect(written.map((w) => w.id)).toEqual([3, 4]);
      const rows = await store.getRelays(['a1', 'b1']);
      const [ra, rb] = ['a1', 'b1'].map((id) => rows.find((r) => r.id === id));
      expect([ra?.config.host, ra?.rev, ra?.version]).toEqual(['b1.example.com', 3, 2]);
      expect([rb?.config.host, rb?.rev, rb?.version]).toEqual(['a1.example.com', 2, 2]);
      expect((await store.relaysUsing({ host: 'a1.bosun-parked.invalid' })).length).toBe(0);
      expect((await store.activitiesAfter({ after: 2, relayId: 'a1', limit: 10 })).map((x) => x.id)).toEqual([
        4,
      ]);
      // The next write of each builds on what was committed.
      await store.commit({
        relays: [{ kind: 'update', relay: { ...ra!, rev: 4, version: 3 }, previous: ra! }],
        activities: [act('a1', 'update_relay')],
      });
      expect((await store.getRelay('a1'))?.rev).toBe(4);
    });

    it('frees the host of a deleted relay but keeps its schema reserved', async () => {
      const r = relay('a1');
      await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a1')] });
      await store.commit({
        relays: [{ kind: 'update', relay: { ...r, version: 2, rev: 2, deletedAt: 2000 }, previous: r }],
        activities: [act('a1', 'delete_relay')],
      });
      const sameHost = relay('b1', { config: { ...relay('b1').config, host: 'a1.example.com' } });
      await store.commit({ relays: [{ kind: 'insert', relay: sameHost }], activities: [act('b1')] });
      const sameSchema = relay('c1', { config: { ...relay('c1').config, schema: 'a1' } });
      await expect(
        store.commit({ relays: [{ kind: 'insert', relay: sameSchema }], activities: [act('c1')] }),
      ).rejects.toBeInstanceOf(StoreConflictError);
      expect((await store.listRelays({ limit: 10 })).map((x) => x.id)).toEqual(['b1']);
      expect((await store.listRelays({ limit: 10, includeDeleted: true })).map((x) => x.id)).toEqual([
        'a1',
        'b1',
      ]);
    });

    it('lists with filters and keyset pagination', async () => {
      for (const id of ['a', 'b', 'c', 'd', 'e']) {
        const r = relay(id, { owner: id < 'c' ? 'alice' : 'bob', fleet: id === 'e' ? 'edge' : 'default' });
        await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act(id)] });
      }
      expect((await store.listRelays({ limit: 2 })).map((r) => r.id)).toEqual(['a', 'b']);
      expect((await store.listRelays({ limit: 2, after: 'b' })).map((r) => r.id)).toEqual(['c', 'd']);
      expect((await store.listRelays({ limit: 10, owner: 'bob' })).map((r) => r.id)).toEqual(['c', 'd', 'e']);
      expect((await store.listRelays({ limit: 10, fleet: 'edge' })).map((r) => r.id)).toEqual(['e']);
      expect((await store.listRelays({ limit: 10, status: 'synced' })).map((r) => r.id)).toEqual([]);
      const off = relay('f', { config: { ...relay('f').config, inactive: true } });
      await store.commit({ relays: [{ kind: 'insert', relay: off }], activities: [act('f')] });
      expect((await store.listRelays({ limit: 10, inactive: true })).map((r) => r.id)).toEqual(['f']);
      expect((await store.listRelays({ limit: 2, inactive: false, after: 'c' })).map((r) => r.id)).toEqual([
        'd',
        'e',
      ]);
      expect(await store.countRelaysByStatus()).toEqual({
        pending: 6,
        synced: 0,
        retrying: 0,
        failed: 0,
        pull: 0,
      });
    });

    it('counts the relays of a pull-only fleet as pull, whatever push sync recorded', async () => {
      const retrying = (r: Relay): Relay => ({ ...r, sync: { ...r.sync, status: 'retrying' } });
      for (const r of [relay('a', { fleet: 'edge' }), retrying(relay('b', { fleet: 'edge' })), relay('c')])
        await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act(r.id)] });
      await store.commit({
        relays: [],
        activities: [],
        fleets: [{ fleet: 'edge', target: { kind: 'none' }, at: 1000 }],
      });
      expect(await store.countRelaysByStatus()).toEqual({
        pending: 1,
        synced: 0,
        retrying: 0,
        failed: 0,
        pull: 2,
      });
      const counts = (await store.relayCounts()).map((c) => [c.fleet, c.status, c.n]);
      expect(counts.sort()).toEqual([
        ['default', 'pending', 1],
        ['edge', 'pull', 2],
      ]);
      // The list filters by what readers see: `pull`, or a recorded status of a pushed fleet only.
      const ids = async (f: Partial<RelayFilter>) =>
        (await store.listRelays({ limit: 10, ...f })).map((r) => r.id);
      expect(await ids({ pullOnly: true })).toEqual(['a', 'b']);
      expect(await ids({ pullOnly: true, after: 'a' })).toEqual(['b']);
      expect(await ids({ status: 'pending', pullOnly: false })).toEqual(['c']);
      expect(await ids({ status: 'retrying', pullOnly: false })).toEqual([]);
      expect(await ids({ status: 'retrying' })).toEqual(['b']);
      // Pinned to a target again: their recorded status shows.
      await store.commit({
        relays: [],
        activities: [],
        fleets: [{ fleet: 'edge', target: { kind: 'default' }, at: 2000 }],
      });
      expect(await store.countRelaysByStatus()).toMatchObject({ pending: 2, retrying: 1, pull: 0 });
    });

    it('counts relays by fleet, status and inactive, with the oldest change; synced deletes left out', async () => {
      const synced = (r: Relay): Relay => ({ ...r, sync: { ...r.sync, status: 'synced' } });
      const rows: Relay[] = [
        relay('a', { fleet: 'east', updatedAt: 5000 }),
        relay('b', { fleet: 'east', updatedAt: 3000 }),
        synced(relay('c', { fleet: 'east' })),
        synced(relay('d', { config: { ...relay('d').config, inactive: true } })),
        relay('e', { deletedAt: 4000, updatedAt: 4000 }),
        synced(relay('f', { deletedAt: 4000 })),
      ];
      for (const r of rows)
        await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act(r.id)] });
      const counts = await store.relayCounts();
      const key = (c: (typeof counts)[number]) => `${c.fleet}/${c.status}/${c.inactive}/${c.deleted}`;
      expect(counts.sort((x, y) => key(x).localeCompare(key(y)))).toEqual([
        { fleet: 'default', status: 'pending', inactive: false, deleted: true, n: 1, oldestChangeAt: 4000 },
        { fleet: 'default', status: 'synced', inactive: true, deleted: false, n: 1, oldestChangeAt: 1000 },
        { fleet: 'east', status: 'pending', inactive: false, deleted: false, n: 2, oldestChangeAt: 3000 },
        { fleet: 'east', status: 'synced', inactive: false, deleted: false, n: 1, oldestChangeAt: 1000 },
      ]);
    });

    it('keeps live verification state: round-trips it, lists, counts and picks relays to verify by it', async () => {
      const live = (status: LiveState['status'], over: Partial<LiveState> = {}): LiveState => ({
        ...UNKNOWN_LIVE,
        status,
        checkedAt: 2000,
        since: 1500,
        ...over,
      });
      const inactive = relay('d');
      const rows: Relay[] = [
        relay('a', { live: live('live') }),
        relay('b', {
          live: live('stale', {
            error: 'served document differs: name',
            diff: { name: { want: 'New', got: 'Old' } },
            repairs: 1,
            nextRepairAt: 9000,
          }),
        }),
        relay('c'),
        relay('d', { config: { ...inactive.config, inactive: true }, live: live('unexpected') }),
        relay('e', { deletedAt: 1000, live: live('not_served') }),
        relay('f', { deletedAt: 5000, live: live('not_served') }),
        relay('g', { deletedAt: 1000, live: live('unexpected') }),
      ];
      for (const r of rows)
        await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act(r.id)] });
      expect(await store.getRelay('b')).toEqual(rows[1]);
      expect((await store.getRelay('c'))?.live).toEqual(UNKNOWN_LIVE);

      // A check that changes the status writes the row and its activity together.
      const before = (await store.getRelay('a'))!;
      const after: Relay = {
        ...before,
        rev: before.rev + 1,
        live: live('not_served', { error: 'HTTP 404' }),
      };
      await store.commit({
        relays: [{ kind: 'update', relay: after, previous: before }],
        activities: [act('a', 'observe_relay')],
      });
      expect((await store.getRelay('a'))?.live).toEqual(after.live);
      // One that does not writes the row only.
      const checked: Relay = { ...after, rev: after.rev + 1, live: { ...after.live, checkedAt: 3000 } };
      expect(
        await store.commit({ relays: [{ kind: 'update', relay: checked, previous: after }], activities: [] }),
      ).toEqual([]);
      expect((await store.getRelay('a'))?.live.checkedAt).toBe(3000);

      expect((await store.listRelays({ live: 'stale', limit: 10 })).map((r) => r.id)).toEqual(['b']);
      expect(
        (await store.listRelays({ live: 'unexpected', includeDeleted: true, limit: 10 })).map((r) => r.id),
      ).toEqual(['d', 'g']);

      const ids = async (deletedSince: number, after?: string, limit = 10) =>
        (await store.relaysToVerify({ deletedSince, limit, ...(after ? { after } : {}) })).map((r) => r.id);
      expect(await ids(4000)).toEqual(['a', 'b', 'c', 'd', 'f', 'g']);
      expect(await ids(6000)).toEqual(['a', 'b', 'c', 'd', 'g']);
      expect(await ids(4000, 'b', 2)).toEqual(['c', 'd']);

      const counts = await store.liveCounts();
      const key = (c: (typeof counts)[number]) => `${c.status}/${c.inactive}/${c.deleted}`;
      expect(counts.sort((x, y) => key(x).localeCompare(key(y)))).toEqual([
        { status: 'not_served', inactive: false, deleted: false, n: 1 },
        { status: 'stale', inactive: false, deleted: false, n: 1 },
        { status: 'unexpected', inactive: false, deleted: true, n: 1 },
        { status: 'unexpected', inactive: true, deleted: false, n: 1 },
        { status: 'unknown', inactive: false, deleted: false, n: 1 },
      ]);
    });

    it('reads activities after a cursor, by relay and by owner', async () => {
      await store.commit({ relays: [{ kind: 'insert', relay: relay('a') }], activities: [act('a')] });
      await store.commit({
        relays: [{ kind: 'insert', relay: relay('b', { owner: 'bob' }) }],
        activities: [act('b', 'create_relay', 'bob')],
      });
      await store.commit({ relays: [], activities: [act('a', 'resync_relay')] });
      expect((await store.activitiesAfter({ after: 0, limit: 10 })).map((a) => a.id)).toEqual([1, 2, 3]);
      expect((await store.activitiesAfter({ after: 1, limit: 1 })).map((a) => a.id)).toEqual([2]);
      expect((await store.activitiesAfter({ after: 0, relayId: 'a', limit: 10 })).map((a) => a.id)).toEqual([
        1, 3,
      ]);
      expect((await store.activitiesAfter({ after: 0, owner: 'bob', limit: 10 })).map((a) => a.id)).toEqual([
        2,
      ]);
      const [a] = await store.activitiesAfter({ after: 2, limit: 1 });
      expect(a).toEqual({
        id: 3,
        type: 'resync_relay',
        relayId: 'a',
        owner: 'alice',
        actor: 'test',
        payload: { version: 1 },
        createdAt: 1000,
      });
    });

    it("scopes activities by the owner recorded on each, not by the relay's owner now", async () => {
      // alice's relay, deleted, then created again for bob (an admin's choice).
      const r = relay('a');
      const gone = { ...r, version: 2, rev: 2, deletedAt: 2000 };
      const bobs = { ...r, owner: 'bob', version: 3, createdVersion: 3, rev: 3, deletedAt: null };
      const [first] = await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a')] });
      expect(first?.owner).toBe('alice');
      await store.commit({
        relays: [{ kind: 'update', relay: gone, previous: r }],
        activities: [act('a', 'delete_relay')],
      });
      const [again] = await store.commit({
        relays: [{ kind: 'update', relay: bobs, previous: gone }],
        activities: [act('a', 'create_relay', 'bob')],
      });
      expect(again?.owner).toBe('bob');
      expect(await store.getRelay('a')).toEqual(bobs);
      const ids = async (filter: { owner?: string; relayId?: string }) =>
        (await store.activitiesAfter({ after: 0, limit: 10, ...filter })).map((a) => [a.id, a.owner]);
      expect(await ids({ owner: 'alice' })).toEqual([
        [1, 'alice'],
        [2, 'alice'],
      ]);
      expect(await ids({ owner: 'bob' })).toEqual([[3, 'bob']]);
      expect(await ids({ owner: 'bob', relayId: 'a' })).toEqual([[3, 'bob']]);
      expect(await ids({ owner: 'alice', relayId: 'a' })).toEqual([
        [1, 'alice'],
        [2, 'alice'],
      ]);
      expect(await ids({ relayId: 'a' })).toEqual([
        [1, 'alice'],
        [2, 'alice'],
        [3, 'bob'],
      ]);
    });

    it('stores tokens by hash, revokes and expires them', async () => {
      const token = {
        id: 'tok_1',
        name: 't',
        role: 'tenant' as const,
        owner: 'alice',
        fleet: null,
        createdAt: 1,
        expiresAt: 5000,
        revokedAt: null,
      };
      await store.insertToken(token, 'h1');
      expect(await store.findTokenByHash('h1')).toEqual(token);
      expect(await store.findTokenByHash('h2')).toBeUndefined();
      expect(await store.findTokenById('tok_1')).toEqual(token);
      expect(await store.findTokenById('tok_2')).toBeUndefined();
      expect(await store.hasTenant('alice', 4000)).toBe(true);
      expect(await store.hasTenant('alice', 5000)).toBe(false);
      expect(await store.revokeToken('tok_1', 10)).toBe(true);
      expect(await store.revokeToken('tok_1', 11)).toBe(false);
      expect(await store.hasTenant('alice', 4000)).toBe(false);
      expect((await store.listTokens())[0]?.revokedAt).toBe(10);
    });

    it('touches live checks in bulk: forward only, no rev, no activity, fenced', async () => {
      const checked = (at: number): LiveState => ({
        ...UNKNOWN_LIVE,
        status: 'live',
        checkedAt: at,
        since: 1000,
      });
      const rows = [
        relay('a', { live: checked(2000) }),
        relay('b', { live: checked(5000) }),
        relay('c'),
        relay('d', { live: checked(2000) }),
      ];
      for (const r of rows)
        await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act(r.id)] });
      const lastActivity = await store.lastActivityId();

      // b was checked later than the touch: it stays; c was never checked: it stays so; d is not named.
      expect(await store.touchLiveChecks(['a', 'b', 'c', 'nope'], 4000)).toBe(1);
      const a = (await store.getRelay('a'))!;
      expect(a.live).toEqual(checked(4000));
      expect(a.rev).toBe(rows[0]!.rev);
      expect((await store.getRelay('b'))?.live.checkedAt).toBe(5000);
      expect((await store.getRelay('c'))?.live).toEqual(UNKNOWN_LIVE);
      expect((await store.getRelay('d'))?.live.checkedAt).toBe(2000);
      expect(await store.lastActivityId()).toBe(lastActivity);
      expect(await store.touchLiveChecks([], 9000)).toBe(0);

      // Not a commit: a later write guarded by the same rev still applies.
      const synced = {
        ...rows[0]!,
        rev: rows[0]!.rev + 1,
        sync: { ...rows[0]!.sync, status: 'synced' as const },
      };
      await store.commit({ relays: [{ kind: 'update', relay: synced, previous: rows[0]! }], activities: [] });
      expect((await store.getRelay('a'))?.sync.status).toBe('synced');
      // It writes the columns it changed, so the touched time is not put back.
      expect((await store.getRelay('a'))?.live.checkedAt).toBe(4000);

      const first = { lease: 'worker', epoch: await store.newLeaseEpoch('worker') };
      expect(await store.touchLiveChecks(['a', 'd'], 6000, first)).toBe(2);
      await store.newLeaseEpoch('worker');
      await expect(store.touchLiveChecks(['a', 'd'], 7000, first)).rejects.toBeInstanceOf(FencedError);
      expect((await store.getRelay('a'))?.live.checkedAt).toBe(6000);
      expect((await store.getRelay('d'))?.live.checkedAt).toBe(6000);
    });

    it('fences worker writes by lease epoch: an older epoch writes nothing', async () => {
      const r = relay('a1');
      await store.commit({ relays: [{ kind: 'insert', relay: r }], activities: [act('a1')] });
      const first = { lease: 'worker', epoch: await store.newLeaseEpoch('worker') };
      expect(first.epoch).toBe(1);
      await store.setCursor('observer', 5, first);
      const synced = { ...r, rev: 2, sync: { ...r.sync, status: 'synced' as const, syncedVersion: 1 } };
      await store.commit({
        relays: [{ kind: 'update', relay: synced, previous: r }],
        activities: [act('a1', 'complete_relay_sync')],
        fence: first,
      });
      // Another replica takes the lease over: the old holder's writes are refused, changing nothing.
      const second = { lease: 'worker', epoch: await store.newLeaseEpoch('worker') };
      expect(second.epoch).toBe(2);
      await expect(store.setCursor('observer', 9, first)).rejects.toBeInstanceOf(FencedError);
      expect(await store.getCursor('observer')).toBe(5);
      const late = store.commit({
        relays: [{ kind: 'update', relay: { ...synced, rev: 3 }, previous: synced }],
        activities: [act('a1', 'fail_relay_sync')],
        fence: first,
      });
      await expect(late).rejects.toBeInstanceOf(FencedError);
      expect((await store.getRelay('a1'))?.rev).toBe(2);
      expect(await store.lastActivityId()).toBe(2);
      // A fence of a lease nobody ever took is refused too; unfenced writes are not affected.
      await expect(store.setCursor('observer', 9, { lease: 'other', epoch: 1 })).rejects.toBeInstanceOf(
        FencedError,
      );
      await store.setCursor('observer', 7, second);
      await store.setCursor('api', 1);
      expect(await store.getCursor('observer')).toBe(7);
      expect(await store.newLeaseEpoch('other')).toBe(1);
    });

    it('makes a shared secret once and returns it from then on; spends a nonce only once', async () => {
      const key = await store.sharedSecret('stream_tickets');
      expect(key).toMatch(/^[0-9a-f]{64}$/);
      expect(await store.sharedSecret('stream_tickets')).toBe(key);
      expect(await store.sharedSecret('other')).not.toBe(key);

      expect(await store.spendNonce('n1', 2000, 1000)).toBe(true);
      expect(await store.spendNonce('n1', 2000, 1500)).toBe(false);
      expect(await store.spendNonce('n2', 3000, 1500)).toBe(true);
      // Past its expiry a spent nonce is forgotten (its ticket is refused as expired before that).
      expect(await store.spendNonce('n1', 4000, 2000)).toBe(true);
      expect(await store.spendNonce('n2', 4000, 2000)).toBe(false);
    });

    it('persists named cursors', async () => {
      expect(await store.getCursor('observer')).toBe(0);
      await store.setCursor('observer', 42);
      await store.setCursor('observer', 43);
      expect(await store.getCursor('observer')).toBe(43);
    });

    it('finds due retries, expires tokens and prunes old activities below a cursor', async () => {
      const retrying = (id: string, at: number) =>
        relay(id, { sync: { ...relay(id).sync, status: 'retrying', nextAttemptAt: at } });
      await store.commit({
        relays: [
          { kind: 'insert', relay: retrying('late', 5000) },
          { kind: 'insert', relay: retrying('due', 1000) },
          { kind: 'insert', relay: relay('fresh') },
        ],
        activities: [act('late'), act('due'), { ...act('fresh'), createdAt: 9000 }],
      });
      expect((await store.relaysDueForRetry(2000, 10)).map((r) => r.id)).toEqual(['due']);
      expect((await store.relaysDueForRetry(6000, 10)).map((r) => r.id)).toEqual(['due', 'late']);

      const token = {
        id: 't1',
        name: 't',
        role: 'agent' as const,
        owner: null,
        fleet: 'default',
        createdAt: 1,
        expiresAt: 100,
        revokedAt: null,
      };
      await store.insertToken(token, 'h');
      await store.insertToken({ ...token, id: 't2', expiresAt: null }, 'h2');
      expect(await store.expireTokens(99)).toBe(0);
      expect(await store.expireTokens(100)).toBe(1);
      expect((await store.listTokens()).map((t) => t.revokedAt)).toEqual([100, null]);

      // Activities 1 and 2 are old; the cursor allows pruning up to 1 only.
      expect(await store.pruneActivities({ before: 5000, maxId: 1, limit: 100 })).toBe(1);
      expect((await store.activitiesAfter({ after: 0, limit: 10 })).map((a) => a.id)).toEqual([2, 3]);
      // Never the newest, even when everything is old and below the cursor.
      expect(await store.pruneActivities({ before: 10_000, maxId: 3, limit: 100 })).toBe(1);
      expect((await store.activitiesAfter({ after: 0, limit: 10 })).map((a) => a.id)).toEqual([3]);
      const [next] = await store.commit({ relays: [], activities: [act('fresh', 'resync_relay')] });
      expect(next?.id).toBe(4);
    });

    it("reads one relay's history across batches, several per batch, a rewrite and pruning", async () => {
      const a1 = relay('a');
      await store.commit({ relays: [{ kind: 'insert', relay: a1 }], activities: [act('a')] }); // 1
      await store.commit({ relays: [{ kind: 'insert', relay: relay('b') }], activities: [act('b')] }); // 2
      const a2 = { ...a1, rev: 2, version: 2 };
      await store.commit({
        relays: [{ kind: 'update', relay: a2, previous: a1 }],
        activities: [act('a', 'update_relay'), act('b', 'resync_relay'), act('a', 'complete_relay_sync')], // 3, 4, 5
      });
      await store.commit({ relays: [], activities: [act('a', 'resync_relay')] }); // 6
      const ids = async (after: number, limit = 10) =>
        (await store.activitiesAfter({ after, relayId: 'a', limit })).map((x) => x.id);
      expect(await ids(0)).toEqual([1, 3, 5, 6]);
      expect(await ids(3)).toEqual([5, 6]);
      expect(await ids(0, 2)).toEqual([1, 3]);
      expect(await ids(6)).toEqual([]);
      expect((await store.activitiesAfter({ after: 0, relayId: 'b', limit: 10 })).map((x) => x.id)).toEqual([
        2, 4,
      ]);
      expect(await store.activitiesAfter({ after: 0, relayId: 'nobody', limit: 10 })).toEqual([]);
      // Pruning the oldest leaves the rest of the history readable.
      expect(await store.pruneActivities({ before: 5000, maxId: 3, limit: 100 })).toBe(3);
      expect(await ids(0)).toEqual([5, 6]);
      expect((await store.activitiesAfter({ after: 0, relayId: 'b', limit: 10 })).map((x) => x.id)).toEqual([
        4,
      ]);
    });

    it('reads many relays by id in one call, deleted ones included, unknown ids left out', async () => {
      const a = relay('a');
      const c = relay('c');
      await store.commit({
        relays: [
          { kind: 'insert', relay: a },
          { kind: 'insert', relay: relay('b') },
          { kind: 'insert', relay: c },
        ],
        activities: [],
      });
      await store.commit({
        relays: [{ kind: 'update', relay: { ...a, rev: 2, version: 2, deletedAt: 2000 }, previous: a }],
        activities: [],
      });
      const got = await store.getRelays!(['c', 'nope', 'a']);
      expect(got.map((r) => [r.id, r.deletedAt])).toEqual([
        ['a', 2000],
        ['c', null],
      ]);
      expect([got[1]?.secret, got[1]?.config]).toEqual([c.secret, c.config]);
      expect(await store.getRelays!([])).toEqual([]);
    });

    it('lists the heads (id, owner, version) of a fleet’s live relays', async () => {
      const a = relay('a', { fleet: 'edge', version: 3 });
      await store.commit({
        relays: [
          { kind: 'insert', relay: a },
          { kind: 'insert', relay: relay('b', { fleet: 'edge', owner: 'bob' }) },
          { kind: 'insert', relay: relay('c', { fleet: 'core' }) },
          { kind: 'insert', relay: relay('d', { fleet: 'edge', deletedAt: 5 }) },
        ],
        activities: [],
      });
      expect(await store.relayHeads!('edge')).toEqual([
        { id: 'a', owner: 'alice', version: 3 },
        { id: 'b', owner: 'bob', version: 1 },
      ]);
      expect(await store.relayHeads!('none')).toEqual([]);
    });

    const fleetRecord = (fleet: string, version: number, owner: string | null = null): FleetStateRecord => ({
      fleet,
      version,
      configId: `${fleet}.v${version}`,
      owner,
      actor: 'test',
      createdAt: 1000 + version,
      state: {
        version: 'v1',
        config_id: `${fleet}.v${version}`,
        fleet_id: fleet,
        fleet_version: version,
        owner,
        relays: [{ name: 'a', id: 'a', config_id: `a.v${version}`, checksum: 'c'.repeat(64) }],
        orphans: { old: 'old' },
      },
    });

    it('records a fleet config version in the same transaction as its relay writes', async () => {
      expect(await store.latestFleetState!('edge')).toBeUndefined();
      await store.commit({
        relays: [{ kind: 'insert', relay: relay('a', { fleet: 'edge' }) }],
        activities: [act('a')],
        fleetStates: [{ record: fleetRecord('edge', 1), previousVersion: 0 }],
      });
      expect(await store.latestFleetState!('edge')).toEqual(fleetRecord('edge', 1));
      // A failing relay write takes the fleet version down with it.
      const err = await store
        .commit({
          relays: [{ kind: 'insert', relay: relay('a') }],
          activities: [act('a')],
          fleetStates: [{ record: fleetRecord('edge', 2), previousVersion: 1 }],
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(StoreConflictError);
      expect((await store.latestFleetState!('edge'))?.version).toBe(1);
      expect(await store.lastActivityId()).toBe(1);
      // A version with no relay writes (e.g. adopting relays that already match) is fine too.
      await store.commit({
        relays: [],
        activities: [],
        fleetStates: [{ record: fleetRecord('edge', 2), previousVersion: 1 }],
      });
      expect((await store.latestFleetState!('edge'))?.configId).toBe('edge.v2');
    });

    it('refuses a fleet version computed against an older one (a concurrent apply), writing nothing', async () => {
      await store.commit({
        relays: [],
        activities: [],
        fleetStates: [{ record: fleetRecord('edge', 1), previousVersion: 0 }],
      });
      const err = await store
        .commit({
          relays: [{ kind: 'insert', relay: relay('late', { fleet: 'edge' }) }],
          activities: [act('late')],
          fleetStates: [{ record: fleetRecord('edge', 1), previousVersion: 0 }],
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(StaleFleetStateError);
      expect(err).toMatchObject({ fleet: 'edge', expected: 0, actual: 1 });
      expect(await store.getRelay('late')).toBeUndefined();
      expect(await store.lastActivityId()).toBe(0);
      expect((await store.listFleetStates!({ fleet: 'edge', limit: 10 })).length).toBe(1);
    });

    it('lists fleet versions newest first, per fleet, by owner, with keyset pagination', async () => {
      const owners = [null, 'alice', null, 'alice'];
      for (const [i, owner] of owners.entries()) {
        await store.commit({
          relays: [],
          activities: [],
          fleetStates: [{ record: fleetRecord('edge', i + 1, owner), previousVersion: i }],
        });
      }
      await store.commit({
        relays: [],
        activities: [],
        fleetStates: [{ record: fleetRecord('core', 1), previousVersion: 0 }],
      });
      const versions = async (filter: { owner?: string; before?: number; limit: number }) =>
        (await store.listFleetStates!({ fleet: 'edge', ...filter })).map((r) => r.version);
      expect(await versions({ limit: 10 })).toEqual([4, 3, 2, 1]);
      expect(await versions({ limit: 2 })).toEqual([4, 3]);
      expect(await versions({ limit: 2, before: 3 })).toEqual([2, 1]);
      expect(await versions({ limit: 10, owner: 'alice' })).toEqual([4, 2]);
      expect(await store.listFleetStates!({ fleet: 'core', limit: 10 })).toEqual([fleetRecord('core', 1)]);
      expect((await store.latestFleetState!('edge'))?.state).toEqual(fleetRecord('edge', 4, 'alice').state);
    });

    it('keeps rotated credentials and the acked secret, finds expired ones, and has a stream epoch', async () => {
      // Migration 3: `expiring` (+ its earliest expiry, indexed), `acked_secret`, the epoch cursor.
      const epoch = await store.getCursor('autoconfig:epoch');
      expect(Number.isSafeInteger(epoch) && epoch > 0).toBe(true);
      const old = generateSecretKey();
      const rotating = relay('rot', {
        expiring: [
          { name: 'secret', value: old, expiresAt: 5000 },
          { name: 'secret', value: generateSecretKey(), expiresAt: 9000 },
        ],
        sync: { ...relay('rot').sync, ackedSecret: 'ab'.repeat(32) },
      });
      await store.commit({ relays: [{ kind: 'insert', relay: rotating }], activities: [] });
      await store.commit({ relays: [{ kind: 'insert', relay: relay('plain') }], activities: [] });
      expect(await store.getRelay('rot')).toEqual(rotating);
      const due = (now: number) =>
        store.relaysWithExpiredCredentials!(now, 10).then((rs) => rs.map((r) => r.id));
      expect(await due(4999)).toEqual([]);
      expect(await due(5000)).toEqual(['rot']);
      // The earliest expiry follows the list on update; an emptied list is never due.
      const later = { ...rotating, rev: 2, expiring: rotating.expiring!.slice(1) };
      await store.commit({ relays: [{ kind: 'update', relay: later, previous: rotating }], activities: [] });
      expect(await due(8999)).toEqual([]);
      expect(await due(9000)).toEqual(['rot']);
      const none = { ...later, rev: 3, expiring: [], sync: { ...later.sync, ackedSecret: null } };
      await store.commit({ relays: [{ kind: 'update', relay: none, previous: later }], activities: [] });
      expect(await due(Number.MAX_SAFE_INTEGER)).toEqual([]);
      expect(await store.getRelay('rot')).toEqual(none);
    });

    it('keeps where each relay lives (migration 9: pushed_target), through inserts and updates', async () => {
      const placed = relay('placed', {
        sync: { ...relay('placed').sync, ackedDeleted: false, pushedTarget: 'eu-1' },
      });
      await store.commit({ relays: [{ kind: 'insert', relay: placed }], activities: [] });
      expect((await store.getRelay('placed'))!.sync.pushedTarget).toBe('eu-1');
      const moved = { ...placed, rev: 2, sync: { ...placed.sync, pushedTarget: 'default' } };
      await store.commit({ relays: [{ kind: 'update', relay: moved, previous: placed }], activities: [] });
      expect(await store.getRelay('placed')).toEqual(moved);
      const gone = { ...moved, rev: 3, sync: { ...moved.sync, ackedDeleted: true, pushedTarget: null } };
      await store.commit({ relays: [{ kind: 'update', relay: gone, previous: moved }], activities: [] });
      expect(await store.getRelay('placed')).toEqual(gone);
      expect((await store.getRelays(['placed']))[0]!.sync.pushedTarget).toBeNull();
    });

    it('refuses to delete a target a relay lives on, counting them', async () => {
      await store.insertTarget!(target('old'));
      const on = relay('on-old', {
        sync: { ...relay('on-old').sync, ackedDeleted: false, pushedTarget: 'old' },
      });
      await store.commit({ relays: [{ kind: 'insert', relay: on }], activities: [] });
      expect(await store.deleteTarget!('old')).toEqual({ deleted: false, usedBy: [], holding: 1 });
      expect(await store.getTarget!('old')).toBeDefined();
      const off = { ...on, rev: 2, sync: { ...on.sync, pushedTarget: 'default' } };
      await store.commit({ relays: [{ kind: 'update', relay: off, previous: on }], activities: [] });
      expect(await store.deleteTarget!('old')).toEqual({ deleted: true, usedBy: [], holding: 0 });
    });

    const target = (name: string, over: Partial<Target> = {}): Target => ({
      name,
      url: `http://${name}.example.com:3334`,
      secretKey: null,
      verifyUrl: null,
      rev: 1,
      createdAt: 1000,
      updatedAt: 1000,
      ...over,
    });

    it('keeps targets: insert refuses a taken name, updates are guarded by rev, keys round-trip', async () => {
      const key = generateSecretKey();
      const eu = target('eu-1', { secretKey: key, verifyUrl: 'https://eu.example.com' });
      expect(await store.insertTarget(eu)).toBe(true);
      expect(await store.insertTarget(target('eu-1', { url: 'http://other' }))).toBe(false);
      expect(await store.insertTarget(target('us-1'))).toBe(true);
      expect(await store.getTarget('eu-1')).toEqual(eu);
      expect(await store.getTarget('nope')).toBeUndefined();
      expect((await store.listTargets()).map((t) => t.name)).toEqual(['eu-1', 'us-1']);

      const moved = { ...eu, url: 'http://eu-2.example.com', secretKey: null, rev: 2, updatedAt: 2000 };
      expect(await store.updateTarget(moved, eu)).toBe(true);
      // A second writer that read rev 1 changes nothing.
      expect(await store.updateTarget({ ...eu, url: 'http://lost', rev: 2 }, eu)).toBe(false);
      expect(await store.getTarget('eu-1')).toEqual(moved);
      expect(await store.updateTarget(target('gone', { rev: 2 }), target('gone'))).toBe(false);
    });

    it('pins fleets to targets in a commit; refuses an unknown target and the delete of a used one', async () => {
      await store.insertTarget(target('eu-1'));
      await store.insertTarget(target('spare'));
      expect(await store.getFleet('edge')).toBeUndefined();
      await store.commit({
        relays: [],
        activities: [],
        fleets: [
          { fleet: 'edge', target: { kind: 'target', name: 'eu-1' }, at: 1000 },
          { fleet: 'pull', target: { kind: 'none' }, at: 1000 },
        ],
      });
      expect(await store.getFleet('edge')).toEqual({
        name: 'edge',
        target: { kind: 'target', name: 'eu-1' },
        createdAt: 1000,
        updatedAt: 1000,
      });
      // An unknown target fails the whole batch: the relay write goes too.
      const err = await store
        .commit({
          relays: [{ kind: 'insert', relay: relay('x', { fleet: 'core' }) }],
          activities: [act('x')],
          fleets: [{ fleet: 'core', target: { kind: 'target', name: 'mars' }, at: 2000 }],
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(UnknownTargetError);
      expect(err).toMatchObject({ target: 'mars' });
      expect(await store.getRelay('x')).toBeUndefined();
      expect(await store.getFleet('core')).toBeUndefined();
      expect(await store.lastActivityId()).toBe(0);

      expect(await store.deleteTarget('eu-1')).toEqual({ deleted: false, usedBy: ['edge'], holding: 0 });
      expect(await store.getTarget('eu-1')).toBeDefined();
      expect(await store.deleteTarget('spare')).toEqual({ deleted: true, usedBy: [], holding: 0 });
      expect(await store.deleteTarget('spare')).toEqual({ deleted: false, usedBy: [], holding: 0 });

      // Back to the default target: the row stays, with its first time.
      await store.commit({
        relays: [],
        activities: [],
        fleets: [{ fleet: 'edge', target: { kind: 'default' }, at: 3000 }],
      });
      expect(await store.listFleets()).toEqual([
        { name: 'edge', target: { kind: 'default' }, createdAt: 1000, updatedAt: 3000 },
        { name: 'pull', target: { kind: 'none' }, createdAt: 1000, updatedAt: 1000 },
      ]);
      expect(await store.deleteTarget('eu-1')).toEqual({ deleted: true, usedBy: [], holding: 0 });
    });

    it('finds relays needing a sync', async () => {
      const synced = relay('s', {
        sync: { ...relay('s').sync, status: 'synced', syncedVersion: 1 },
      });
      await store.commit({ relays: [{ kind: 'insert', relay: synced }], activities: [] });
      await store.commit({ relays: [{ kind: 'insert', relay: relay('p') }], activities: [] });
      expect((await store.relaysNeedingSync(10)).map((r) => r.id)).toEqual(['p']);
    });
  });
}
