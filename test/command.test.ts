import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Command } from '../src/command.js';
import type { Activity } from '../src/domain/activity.js';
import { BosunError } from '../src/domain/errors.js';
import type { Principal } from '../src/domain/principal.js';
import { Notifier } from '../src/notifier.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { FakeClock } from './support/clock.js';
import { keypair, relayBody, tempDir } from './support/env.js';

const admin: Principal = { role: 'admin', actor: 'admin:test' };
const alice: Principal = { role: 'tenant', owner: 'alice', actor: 'tenant:alice' };
const bob: Principal = { role: 'tenant', owner: 'bob', actor: 'tenant:bob' };

describe('Command', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteStore;
  let notifier: Notifier;
  let command: Command;
  let clock: FakeClock;
  const { pubkey } = keypair();

  beforeEach(() => {
    dir = tempDir();
    store = new SqliteStore(join(dir.path, 'bosun.db'));
    notifier = new Notifier();
    clock = new FakeClock();
    command = new Command(store, notifier, clock);
  });
  afterEach(async () => {
    await store.close();
    dir.cleanup();
  });

  it('creates a relay with generated secret, derived schema and one activity', async () => {
    const { relay, activity } = await command.createRelay(admin, relayBody('my-relay', pubkey));
    expect(relay.config.schema).toBe('my_relay');
    expect(relay.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(relay.version).toBe(1);
    expect(relay.sync.status).toBe('pending');
    expect(activity).toMatchObject({ id: 1, type: 'create_relay', relayId: 'my-relay', actor: 'admin:test' });
    expect(JSON.stringify(activity)).not.toContain(relay.secret);
  });

  it('writes from a cached relay, and a process that changed it meanwhile loses nothing', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    await command.updateRelay(admin, 'r1', { info: { name: 'one' } }); // cached here now
    // Another process on the same file changes the relay behind this Command's back.
    const other = new SqliteStore(join(dir.path, 'bosun.db'));
    const elsewhere = new Command(other, new Notifier(), clock);
    await elsewhere.updateRelay(admin, 'r1', { groups: { enabled: true } });
    await elsewhere.deactivateRelay(admin, 'r1');
    await other.close();
    // The stale cached rev fails the write's compare-and-set; the retry reads the row again.
    const { relay } = await command.updateRelay(admin, 'r1', { info: { name: 'two' } });
    expect(relay.version).toBe(5);
    expect(relay.config).toMatchObject({ inactive: true, groups: { enabled: true }, info: { name: 'two' } });
    expect(await store.getRelay('r1')).toEqual(relay);
    const versions = (await store.activitiesAfter({ after: 0, relayId: 'r1', limit: 10 })).map(
      (a) => a.payload.version,
    );
    expect(versions).toEqual([1, 2, 3, 4, 5]);
    // A relay deleted elsewhere is gone for this Command too, cache or not.
    const third = new SqliteStore(join(dir.path, 'bosun.db'));
    await new Command(third, new Notifier(), clock).deleteRelay(admin, 'r1');
    await third.close();
    await expect(command.updateRelay(admin, 'r1', { info: { name: 'three' } })).rejects.toMatchObject({
      code: 'relay_not_found',
    });
  });

  it("evicts a cached relay when another process's change is notified, sparing a failed write", async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    const other = new SqliteStore(join(dir.path, 'bosun.db'));
    const { activity } = await new Command(other, new Notifier(), clock).updateRelay(admin, 'r1', {
      groups: { enabled: true },
    });
    await other.close();
    let commits = 0;
    let reads = 0;
    const commit = store.commit.bind(store);
    const getRelay = store.getRelay.bind(store);
    store.commit = (batch) => {
      commits++;
      return commit(batch);
    };
    store.getRelay = (id) => {
      reads++;
      return getRelay(id);
    };
    // What a PostgreSQL replica's change feed does with another replica's commit.
    notifier.publish([activity!]);
    await new Promise((r) => setTimeout(r, 0));
    const { relay } = await command.updateRelay(admin, 'r1', { info: { name: 'after' } });
    expect({ commits, reads }).toEqual({ commits: 1, reads: 1 });
    expect(relay.config.groups.enabled).toBe(true);
    // Its own notifications do not evict what it just wrote: the next write reads nothing.
    await new Promise((r) => setTimeout(r, 0));
    await command.updateRelay(admin, 'r1', { info: { name: 'again' } });
    expect({ commits, reads }).toEqual({ commits: 2, reads: 1 });
  });

  it('bumps the version only when something zooid sees changes', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    const same = await command.updateRelay(admin, 'r1', { info: { name: 'r1' } });
    expect(same.activity).toBeNull();
    expect(same.relay.version).toBe(1);
    const changed = await command.updateRelay(admin, 'r1', {
      info: { name: 'R1' },
      groups: { enabled: true },
    });
    expect(changed.relay.version).toBe(2);
    expect(changed.activity?.payload).toEqual({ version: 2, fields: ['info', 'groups'] });
    const deact = await command.deactivateRelay(admin, 'r1');
    expect(deact.relay.version).toBe(3);
    expect((await command.deactivateRelay(admin, 'r1')).activity).toBeNull();
    expect((await command.activateRelay(admin, 'r1')).relay.version).toBe(4);
    // Sync bookkeeping never changes the version.
    await command.completeRelaySync('r1', { version: 4, config: deact.relay.config, deleted: false });
    const resync = await command.resyncRelay(admin, 'r1');
    expect(resync.relay.version).toBe(4);
    expect(resync.activity?.type).toBe('resync_relay');
  });

  it('refuses to change schema, secret, id or owner by update', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    for (const [patch, msg] of [
      [{ schema: 'other' }, /schema: is immutable/],
      [{ secret: 'ab'.repeat(32) }, /secret: cannot be changed/],
      [{ id: 'x' }, /id: cannot be changed/],
      [{ owner: 'x' }, /owner: cannot be changed/],
      [{ bogus: 1 }, /bogus: unknown field/],
      [{ info: { pubkey: null } }, /info.pubkey: is required/],
    ] as const) {
      await expect(command.updateRelay(admin, 'r1', patch)).rejects.toThrow(msg);
    }
    expect((await command.updateRelay(admin, 'r1', { schema: 'r1' })).activity).toBeNull();
    expect(await store.lastActivityId()).toBe(1);
  });

  it('deletes into a tombstone; re-creating the id continues its versions', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    await command.updateRelay(admin, 'r1', { info: { name: 'x' } });
    const del = await command.deleteRelay(admin, 'r1');
    expect(del.relay.version).toBe(3);
    expect(del.relay.deletedAt).not.toBeNull();
    await expect(command.updateRelay(admin, 'r1', {})).rejects.toMatchObject({ code: 'relay_not_found' });
    await expect(command.deleteRelay(admin, 'r1')).rejects.toMatchObject({ code: 'relay_not_found' });
    const again = await command.createRelay(admin, relayBody('r1', pubkey));
    expect(again.relay.version).toBe(4);
    expect(again.relay.deletedAt).toBeNull();
  });

  it('keeps tenants to their own relays and answers 404 for others', async () => {
    await command.createRelay(alice, relayBody('a1', pubkey));
    await expect(command.updateRelay(bob, 'a1', { inactive: true })).rejects.toMatchObject({ status: 404 });
    await expect(command.deleteRelay(bob, 'a1')).rejects.toMatchObject({ status: 404 });
    await expect(
      command.createRelay(bob, { ...relayBody('b1', pubkey), owner: 'alice' }),
    ).rejects.toMatchObject({
      status: 403,
    });
    const agent: Principal = { role: 'agent', fleet: 'default', actor: 'agent:x', tokenId: 'x' };
    await expect(command.createRelay(agent, relayBody('c1', pubkey))).rejects.toMatchObject({ status: 403 });
    expect((await store.getRelay('a1'))?.owner).toBe('alice');
  });

  it('maps unique violations to field conflicts', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    await expect(command.createRelay(admin, relayBody('r1', pubkey))).rejects.toMatchObject({
      code: 'id_conflict',
    });
    await expect(
      command.createRelay(admin, { ...relayBody('r2', pubkey), host: 'r1.example.com' }),
    ).rejects.toMatchObject({ code: 'host_conflict', status: 409 });
    await expect(
      command.createRelay(admin, { ...relayBody('r3', pubkey), schema: 'r1' }),
    ).rejects.toMatchObject({
      code: 'schema_conflict',
    });
    expect(await store.lastActivityId()).toBe(1);
  });

  it('records sync outcomes: stale failures are dropped, newer versions stay pending', async () => {
    const { relay } = await command.createRelay(admin, relayBody('r1', pubkey));
    await command.updateRelay(admin, 'r1', { info: { name: 'v2' } });
    // A failure of version 1 arrives after version 2 exists: superseded, nothing recorded.
    expect(
      await command.failRelaySync('r1', { version: 1, error: 'boom', attempts: 1, nextAttemptAt: 5 }),
    ).toBeNull();
    // Completing version 1 records the ack but leaves the relay pending for version 2.
    const done1 = await command.completeRelaySync('r1', { version: 1, config: relay.config, deleted: false });
    expect(done1?.relay.sync).toMatchObject({ status: 'pending', syncedVersion: 1 });
    const fail = await command.failRelaySync('r1', {
      version: 2,
      error: `zooid said no ${'x'.repeat(200)}`,
      attempts: 3,
      nextAttemptAt: clock.now() + 4000,
    });
    expect(fail?.relay.sync).toMatchObject({
      status: 'retrying',
      attempts: 3,
      nextAttemptAt: clock.now() + 4000,
    });
    expect(fail?.relay.sync.error.length).toBe(120);
    const final = await command.failRelaySync('r1', {
      version: 2,
      error: 'x',
      attempts: 10,
      nextAttemptAt: null,
    });
    expect(final?.relay.sync.status).toBe('failed');
    // A new change supersedes the failure.
    const upd = await command.updateRelay(admin, 'r1', { info: { name: 'v3' } });
    expect(upd.relay.sync).toMatchObject({ status: 'pending', attempts: 0, error: '', nextAttemptAt: null });

    // A relay parked on a placeholder host (Infra): zooid holds the stand-in config, so it is recorded
    // even for a superseded version, leaving the newer version's status alone.
    const parkedConfig = { ...upd.relay.config, host: 'r1.bosun-parked.invalid' };
    const parkedFailure = {
      error: 'zooid conflict: host swap',
      attempts: 1,
      nextAttemptAt: null,
      parked: { config: parkedConfig, secretDigest: 'd1' },
    };
    const parked = await command.failRelaySync('r1', { ...parkedFailure, version: 2 });
    expect(parked?.relay.sync).toMatchObject({
      status: 'pending',
      error: '',
      syncedVersion: 1,
      ackedConfig: parkedConfig,
      ackedDeleted: false,
      ackedSecret: 'd1',
    });
    expect(parked?.activity?.payload).toMatchObject({ version: 2, parked_host: 'r1.bosun-parked.invalid' });
    const current = await command.failRelaySync('r1', { ...parkedFailure, version: 3 });
    expect(current?.relay.sync).toMatchObject({ status: 'failed', error: 'zooid conflict: host swap' });
  });

  it('notifies subscribers after commit without letting a failing one break the writer', async () => {
    const errors: unknown[] = [];
    notifier = new Notifier((e) => errors.push(e));
    command = new Command(store, notifier, clock);
    const seen: Activity[] = [];
    const off = notifier.subscribe((as) => seen.push(...as));
    notifier.subscribe(() => {
      throw new Error('listener bug');
    });
    await command.createRelay(admin, relayBody('r1', pubkey));
    await Promise.resolve();
    expect(seen.map((a) => a.id)).toEqual([1]);
    expect(errors).toHaveLength(1);
    off();
    await command.updateRelay(admin, 'r1', { inactive: true });
    await Promise.resolve();
    expect(seen).toHaveLength(1);
  });

  it('serialises concurrent updates of one relay without losing any', async () => {
    await command.createRelay(admin, relayBody('r1', pubkey));
    // Two commands over two connections to the same file race on every write.
    const other = new SqliteStore(join(dir.path, 'bosun.db'));
    const command2 = new Command(other, new Notifier(), clock);
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? command : command2).updateRelay(admin, 'r1', { info: { name: `n${i}` } }),
      ),
    );
    const relay = await store.getRelay('r1');
    const acts = await store.activitiesAfter({ after: 0, limit: 100 });
    expect(relay?.version).toBe(acts.length);
    expect(acts.map((a) => a.id)).toEqual(Array.from({ length: acts.length }, (_, i) => i + 1));
    await other.close();
  });

  it('errors are BosunErrors with codes', async () => {
    const err = await command.createRelay(admin, { host: 'X Y' }).catch((e) => e);
    expect(err).toBeInstanceOf(BosunError);
    expect(err.message).toBe(
      'host: must be a hostname with an optional :port (1-65535, no leading zeros), without scheme or path; info: is required',
    );
    // bosun's placeholder hosts (host swaps) are reserved, with or without a port.
    await command.createRelay(admin, relayBody('r1', pubkey));
    for (const host of ['x.bosun-parked.invalid', 'r1.bosun-parked.invalid:8080']) {
      const reserved = await command.createRelay(admin, { ...relayBody('r2', pubkey), host }).catch((e) => e);
      expect(reserved.message).toBe(
        "host: must not end in .bosun-parked.invalid (bosun's placeholder hosts)",
      );
      const moved = await command.updateRelay(admin, 'r1', { host }).catch((e) => e);
      expect(moved.message).toBe("host: must not end in .bosun-parked.invalid (bosun's placeholder hosts)");
    }
  });
});
