import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/domain/principal.js';
import { createRelaySchema, parseOrThrow } from '../../src/domain/relay.js';
import {
  conflictError,
  createdRelay,
  deletedRelay,
  draftNewRelay,
  patchedRelay,
} from '../../src/domain/relay-changes.js';
import { keypair } from '../support/env.js';

const admin: Principal = { role: 'admin', actor: 'admin' };
const alice: Principal = { role: 'tenant', owner: 'alice', actor: 'tenant:alice' };
const { pubkey } = keypair();

function created(principal: Principal, input: Record<string, unknown>, now = 1000) {
  const draft = draftNewRelay(principal, parseOrThrow(createRelaySchema, input));
  return createdRelay(draft, undefined, principal, now);
}

describe('relay changes', () => {
  it('creates version 1 with the caller as owner, a derived schema and the time given', () => {
    const { relay, activity } = created(alice, { id: 'my-relay', host: 'a.example.com', info: { pubkey } });
    expect(relay).toMatchObject({ id: 'my-relay', owner: 'alice', fleet: 'default', version: 1, rev: 1 });
    expect(relay.config).toMatchObject({ schema: 'my_relay', inactive: false, host: 'a.example.com' });
    expect(relay.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(relay.sync.status).toBe('pending');
    expect(activity).toEqual({
      type: 'create_relay',
      relayId: 'my-relay',
      owner: 'alice',
      actor: 'tenant:alice',
      payload: { version: 1 },
      createdAt: 1000,
    });
  });

  it('refuses a tenant creating a relay for another owner', () => {
    expect(() =>
      draftNewRelay(
        alice,
        parseOrThrow(createRelaySchema, { owner: 'bob', host: 'b.example.com', info: { pubkey } }),
      ),
    ).toThrow('owner: a tenant can only create relays it owns');
  });

  it('patches to a new version naming the changed fields, and to nothing when nothing changes', () => {
    const { relay } = created(admin, { id: 'r1', host: 'r1.example.com', info: { pubkey, name: 'one' } });
    const change = patchedRelay(relay, { info: { name: 'uno' }, fleet: 'eu' }, admin, 2000)!;
    expect(change.relay).toMatchObject({ version: 2, rev: 2, fleet: 'eu', updatedAt: 2000 });
    expect(change.relay.config.info.name).toBe('uno');
    expect(change.activity.payload).toEqual({ version: 2, fields: ['fleet', 'info'] });
    expect(patchedRelay(change.relay, { info: { name: 'uno' } }, admin, 3000)).toBeNull();
  });

  it('keeps the acknowledged sync state across a change, and supersedes a pending retry', () => {
    const { relay } = created(admin, { id: 'r2', host: 'r2.example.com', info: { pubkey } });
    const synced = {
      ...relay,
      sync: {
        ...relay.sync,
        status: 'retrying' as const,
        attempts: 3,
        nextAttemptAt: 9000,
        syncedVersion: 1,
      },
    };
    const { sync } = patchedRelay(synced, { inactive: true }, admin, 2000)!.relay;
    expect(sync).toMatchObject({ status: 'pending', attempts: 0, nextAttemptAt: null, syncedVersion: 1 });
  });

  it('deletes to a tombstone; creating the id again continues its version without old credentials', () => {
    const { relay } = created(admin, { id: 'r3', host: 'r3.example.com', info: { pubkey } });
    const withExpiring = {
      ...relay,
      expiring: [{ name: 'secret' as const, value: relay.secret, expiresAt: 5000 }],
    };
    const gone = deletedRelay(withExpiring, admin, 2000);
    expect(gone.relay).toMatchObject({ version: 2, rev: 2, deletedAt: 2000 });
    expect(gone.activity).toMatchObject({ type: 'delete_relay', payload: { version: 2 } });
    const draft = draftNewRelay(
      admin,
      parseOrThrow(createRelaySchema, { id: 'r3', host: 'r3.example.com', info: { pubkey } }),
    );
    const again = createdRelay(draft, gone.relay, admin, 3000).relay;
    expect(again).toMatchObject({ version: 3, createdVersion: 3, rev: 3, deletedAt: null, expiring: [] });
  });

  it("keeps a deleted id and its schema for the deleted relay's owner; an admin may give it to another", () => {
    const bob: Principal = { role: 'tenant', owner: 'bob', actor: 'tenant:bob' };
    const input = { id: 'r4', host: 'r4.example.com', info: { pubkey }, schema: 'kept' };
    const gone = deletedRelay(created(alice, input).relay, alice, 2000).relay;
    const recreate = (principal: Principal, over: Record<string, unknown> = {}) => {
      const { schema: _schema, ...rest } = input;
      const draft = draftNewRelay(principal, parseOrThrow(createRelaySchema, { ...rest, ...over }));
      return createdRelay(draft, gone, principal, 3000);
    };
    expect(() => recreate(bob)).toThrow(
      expect.objectContaining({ code: 'id_conflict', message: expect.stringMatching(/reserved/) }),
    );
    expect(() => recreate(bob)).not.toThrow(/alice/);
    // The id comes back with the schema it was deleted with, which cannot be changed.
    expect(recreate(alice).relay.config.schema).toBe('kept');
    expect(recreate(alice, { schema: 'kept' }).relay.config.schema).toBe('kept');
    expect(() => recreate(alice, { schema: 'r4' })).toThrow(
      expect.objectContaining({
        code: 'schema_conflict',
        message: expect.stringMatching(/"kept".*reserved/),
      }),
    );
    const given = recreate(admin, { owner: 'bob' });
    expect(given.relay).toMatchObject({ owner: 'bob', version: 3, createdVersion: 3 });
    expect(given.relay.config.schema).toBe('kept');
    expect(given.activity).toMatchObject({ type: 'create_relay', owner: 'bob' });
  });

  it('names the field another relay holds', () => {
    expect(conflictError({ field: 'host', value: 'x.example.com' })).toMatchObject({
      code: 'host_conflict',
      message: 'host: "x.example.com" is already used by another relay',
    });
    expect(conflictError({ field: 'schema', value: 's' }).code).toBe('schema_conflict');
    expect(conflictError({ field: 'id', value: 'r' }).code).toBe('id_conflict');
  });
});
