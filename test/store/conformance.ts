import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActivityDraft } from '../../src/domain/activity.js';
import { generateSecretKey } from '../../src/domain/keys.js';
import { createRelaySchema, type Relay } from '../../src/domain/relay.js';
import { StaleWriteError, type Store, StoreConflictError } from '../../src/store/port.js';
import { keypair } from '../support/env.js';

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

    const relay = (id: string, over: Partial<Relay> = {}): Relay => {
      const {
        id: _i,
        owner: _o,
        fleet: _f,
        secret: _s,
        schema: _sc,
        inactive: _in,
        host,
        ...sections
      } = createRelaySchema.parse({ host: `${id}.example.com`, info: { pubkey } });
      return {
        id,
        owner: 'alice',
        fleet: 'default',
        version: 1,
        rev: 1,
        config: { host, schema: id.replace(/-/g, '_'), inactive: false, ...sections },
        secret: generateSecretKey(),
        createdAt: 1000,
        updatedAt: 1000,
        deletedAt: null,
        sync: {
          status: 'pending',
          error: '',
          attempts: 0,
          nextAttemptAt: null,
          syncedVersion: 0,
          lastSyncedAt: null,
          ackedConfig: null,
          ackedDeleted: true,
        },
        ...over,
      };
    };
    const act = (relayId: string, type: ActivityDraft['type'] = 'create_relay'): ActivityDraft => ({
      type,
      relayId,
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
      expect(await store.countRelaysByStatus()).toEqual({ pending: 5, synced: 0, retrying: 0, failed: 0 });
    });

    it('reads activities after a cursor, by relay and by owner', async () => {
      await store.commit({ relays: [{ kind: 'insert', relay: relay('a') }], activities: [act('a')] });
      await store.commit({
        relays: [{ kind: 'insert', relay: relay('b', { owner: 'bob' }) }],
        activities: [act('b')],
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
        actor: 'test',
        payload: { version: 1 },
        createdAt: 1000,
      });
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
      expect(await store.hasTenant('alice', 4000)).toBe(true);
      expect(await store.hasTenant('alice', 5000)).toBe(false);
      expect(await store.revokeToken('tok_1', 10)).toBe(true);
      expect(await store.revokeToken('tok_1', 11)).toBe(false);
      expect(await store.hasTenant('alice', 4000)).toBe(false);
      expect((await store.listTokens())[0]?.revokedAt).toBe(10);
    });

    it('persists named cursors', async () => {
      expect(await store.getCursor('observer')).toBe(0);
      await store.setCursor('observer', 42);
      await store.setCursor('observer', 43);
      expect(await store.getCursor('observer')).toBe(43);
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
