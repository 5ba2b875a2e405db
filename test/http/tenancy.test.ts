import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { activities, openStream, ready } from './dashboard/sse-client.js';

/**
 * A deleted relay id (and its schema) stays reserved for its owner, and activities are scoped by
 * the owner recorded on each one: on both stores, through the API, fleet applies and the dashboard.
 */
const stores: { name: string; skip: boolean; url: () => { url?: string; drop: () => Promise<void> } }[] = [
  { name: 'SQLite', skip: false, url: () => ({ drop: async () => {} }) },
  {
    name: 'PostgreSQL',
    skip: !postgresUrl,
    url: () => {
      const s = freshSchema();
      return { url: s.url, drop: s.drop };
    },
  },
];

for (const { name, skip, url } of stores) {
  describe.skipIf(skip)(`deleted relay ids stay with their owner (${name})`, () => {
    let s: TestServer;
    let drop: () => Promise<void>;
    let alice: string;
    let bob: string;
    const { pubkey } = keypair();

    beforeAll(async () => {
      const db = url();
      drop = db.drop;
      s = await startServer(db.url ? { env: { BOSUN_DATABASE_URL: db.url } } : {});
      alice = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
      bob = (await s.api('POST', '/v1/tokens', { role: 'tenant', owner: 'bob' })).body.token;
    });
    afterAll(async () => {
      await s.close();
      await drop();
    });

    /** Alice creates `id`, changes it, and deletes it. */
    const aliceRelayDeleted = async (id: string) => {
      const body = relayBody(id, pubkey, { livekit: { api_key: 'alice-livekit-key' } });
      expect((await s.api('POST', '/v1/relays', body, alice)).status).toBe(201);
      expect((await s.api('PATCH', `/v1/relays/${id}`, { info: { name: 'alice only' } }, alice)).status).toBe(
        200,
      );
      expect((await s.api('DELETE', `/v1/relays/${id}`, undefined, alice)).status).toBe(200);
    };
    const types = (body: { activities: { type: string }[] }) => body.activities.map((a) => a.type);

    it('another tenant cannot create a deleted id (API): 409 id_conflict, nothing written', async () => {
      await aliceRelayDeleted('a-private');
      const head = (await s.api('GET', '/v1/activities?limit=1000')).body.next;
      const taken = await s.api('POST', '/v1/relays', relayBody('a-private', pubkey), bob);
      expect(taken.status).toBe(409);
      expect(taken.body.error.code).toBe('id_conflict');
      expect(taken.body.error.message).toMatch(/reserved/);
      expect(taken.body.error.message).not.toContain('alice');
      // Still alice's tombstone; bob cannot read its history.
      expect((await s.api('GET', '/v1/relays?owner=alice&limit=1000')).body.relays).toEqual([]);
      expect((await s.api('GET', `/v1/activities?after=${head}`)).body.activities).toEqual([]);
      expect((await s.api('GET', '/v1/activities?relay=a-private', undefined, bob)).status).toBe(404);
      expect(types((await s.api('GET', '/v1/activities?relay=a-private', undefined, alice)).body)).toEqual([
        'create_relay',
        'update_relay',
        'delete_relay',
      ]);
    });

    it('another tenant cannot take the schema a deleted relay keeps: 409 schema_conflict', async () => {
      await aliceRelayDeleted('a-schema');
      const taken = await s.api(
        'POST',
        '/v1/relays',
        relayBody('b-schema', pubkey, { schema: 'a_schema' }),
        bob,
      );
      expect(taken.status).toBe(409);
      expect(taken.body.error.code).toBe('schema_conflict');
      expect(taken.body.error.message).toMatch(/reserved/);
    });

    it('another tenant cannot create a deleted id through a fleet plan or apply', async () => {
      await aliceRelayDeleted('a-fleet');
      const fleet = { relays: [{ name: 'a-fleet', config: relayBody('a-fleet', pubkey) }] };
      for (const route of ['plan', 'apply']) {
        const res = await s.api('POST', `/v1/fleets/bobs/${route}`, fleet, bob);
        expect(res.status).toBe(409);
        expect(res.body.error).toMatchObject({ code: 'id_conflict', resource: 'relay/a-fleet' });
        expect(res.body.error.message).toMatch(/reserved/);
      }
      expect((await s.api('GET', '/v1/fleets/bobs/states', undefined, bob)).body.states).toEqual([]);
      expect((await s.api('GET', '/v1/activities?relay=a-fleet', undefined, bob)).status).toBe(404);
    });

    it('the owner re-creates its deleted id, by API and by fleet apply', async () => {
      await aliceRelayDeleted('a-again');
      const again = await s.api('POST', '/v1/relays', relayBody('a-again', pubkey), alice);
      expect(again.status).toBe(201);
      expect(again.body).toMatchObject({ owner: 'alice', version: 4, config: { schema: 'a_again' } });
      await aliceRelayDeleted('a-fleet-again');
      const fleet = { relays: [{ name: 'a-fleet-again', config: relayBody('a-fleet-again', pubkey) }] };
      expect((await s.api('POST', '/v1/fleets/alices/apply', fleet, alice)).status).toBe(200);
      expect((await s.api('GET', '/v1/relays/a-fleet-again', undefined, alice)).body.owner).toBe('alice');
    });

    it('an admin may give a deleted id to another tenant, who sees none of the old owner’s past', async () => {
      await aliceRelayDeleted('a-given');
      // zooid acknowledged alice's config, then fell behind (her delete is not acknowledged yet).
      await s.peer.command.completeRelaySync('a-given', {
        version: 2,
        config: { host: 'a-given.example.com', livekit: { api_key: 'alice-livekit-key' } },
        deleted: false,
      });
      const given = await s.api(
        'POST',
        '/v1/relays',
        relayBody('a-given', pubkey, { owner: 'bob', host: 'b-given.example.com' }),
      );
      expect(given.status).toBe(201);
      expect(given.body.owner).toBe('bob');
      const own = await s.api('GET', '/v1/activities?relay=a-given', undefined, bob);
      expect(types(own.body)).toEqual(['create_relay']);
      const all = (await s.api('GET', '/v1/activities?limit=1000', undefined, bob)).body.activities;
      expect(
        all.filter((a: { relay_id: string }) => a.relay_id === 'a-given').map((a: any) => a.type),
      ).toEqual(['create_relay']);
      // The dashboard's activity stream, from the start of the log: bob's create and nothing before.
      const stream = await openStream(`${s.url}/v1/activities/stream?after=0`, {
        authorization: `Bearer ${bob}`,
      });
      try {
        const givens = () => activities(stream.events).filter((a) => a.relay_id === 'a-given');
        await stream.until(() => givens().length > 0);
        await stream.until(ready);
        expect(givens().map((a) => [a.type, a.actor])).toEqual([['create_relay', 'admin:bootstrap']]);
      } finally {
        stream.close();
      }
      const dash = await s.api('GET', '/v1/dashboard/relays/a-given', undefined, bob);
      expect(dash.status).toBe(200);
      expect(dash.body.history.map((a: { type: string }) => a.type)).toEqual(['create_relay']);
      expect(JSON.stringify(dash.body)).not.toContain('alice');
      expect(dash.body.diff).toBeNull();
      // Alice keeps her own past in the unfiltered log, but the relay is no longer hers to read.
      const hers = (await s.api('GET', '/v1/activities?limit=1000', undefined, alice)).body.activities;
      expect(
        hers.filter((a: { relay_id: string }) => a.relay_id === 'a-given').map((a: any) => a.type),
      ).toEqual(['create_relay', 'update_relay', 'delete_relay', 'complete_relay_sync']);
      expect((await s.api('GET', '/v1/activities?relay=a-given', undefined, alice)).status).toBe(404);
      // The admin sees everything.
      expect(types((await s.api('GET', '/v1/activities?relay=a-given')).body)).toEqual([
        'create_relay',
        'update_relay',
        'delete_relay',
        'complete_relay_sync',
        'create_relay',
      ]);
    });
  });
}
