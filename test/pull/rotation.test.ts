/**
 * Secret rotation (the seed's expiring credentials): Command.rotateSecret, push sync replacing the
 * relay in zooid with the new secret (PUT, never a PATCH that would leave the old one), and the
 * credential-expiry chore.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { credentialFingerprint, secretDigest } from '../../src/domain/credentials.js';
import { keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

const { pubkey } = keypair();
let planet: Planet | undefined;
afterEach(async () => {
  await planet?.close();
  planet = undefined;
});

describe('secret rotation', () => {
  it('gives a new secret, keeps the old one in expiring, and push sync PUTs the new secret to zooid', async () => {
    planet = await startPlanet();
    const { bosun, zooid, idle } = planet;
    await bosun.api('POST', '/v1/relays', relayBody('r', pubkey));
    await idle();
    const before = (await bosun.peer.store.getRelay('r'))!;
    expect(zooid.relays().get('r')?.secret).toBe(before.secret);
    expect(before.sync.ackedSecret).toBe(secretDigest(before.secret));

    zooid.requests.length = 0;
    const res = await bosun.api('POST', '/v1/relays/r/rotate-secret', { grace_seconds: 600 });
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(before.version + 1);
    await idle();
    const after = (await bosun.peer.store.getRelay('r'))!;
    expect(after.secret).not.toBe(before.secret);
    expect(after.expiring).toEqual([{ name: 'secret', value: before.secret, expiresAt: expect.any(Number) }]);
    expect(after.expiring![0]!.expiresAt - after.updatedAt).toBe(600_000);
    expect(zooid.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['PUT 200']);
    expect(zooid.relays().get('r')?.secret).toBe(after.secret);
    expect(after.sync).toMatchObject({ status: 'synced', syncedVersion: after.version });
    expect(after.sync.ackedSecret).toBe(secretDigest(after.secret));

    // The activity names fingerprints, never a secret.
    const acts = (await bosun.api('GET', '/v1/activities?relay=r')).body.activities;
    const rotation = acts.find((a: { type: string }) => a.type === 'rotate_secret');
    expect(rotation.payload).toMatchObject({
      version: after.version,
      fingerprint: credentialFingerprint(after.secret),
      previous_fingerprint: credentialFingerprint(before.secret),
      grace_seconds: 600,
    });
    expect(JSON.stringify(acts)).not.toContain(before.secret);
    expect(JSON.stringify(acts)).not.toContain(after.secret);

    // Once zooid has the new secret, ordinary changes are PATCHes again.
    zooid.requests.length = 0;
    await bosun.api('PATCH', '/v1/relays/r', { info: { name: 'later' } });
    await idle();
    expect(zooid.requests.map((r) => r.method)).toEqual(['PATCH']);
    expect(zooid.relays().get('r')?.secret).toBe(after.secret);
  });

  it('a relay synced before the acked secret was recorded (null) is still replaced after a rotation', async () => {
    planet = await startPlanet();
    const { bosun, zooid, idle } = planet;
    await bosun.api('POST', '/v1/relays', relayBody('legacy', pubkey));
    await idle();
    const store = bosun.peer.store;
    const synced = (await store.getRelay('legacy'))!;
    const legacy = { ...synced, rev: synced.rev + 1, sync: { ...synced.sync, ackedSecret: null } };
    await store.commit({ relays: [{ kind: 'update', relay: legacy, previous: synced }], activities: [] });

    zooid.requests.length = 0;
    await bosun.api('POST', '/v1/relays/legacy/rotate-secret', { grace_seconds: 0 });
    await idle();
    const after = (await store.getRelay('legacy'))!;
    expect(after.expiring).toEqual([]);
    expect(zooid.requests.map((r) => r.method)).toEqual(['PUT']);
    expect(zooid.relays().get('legacy')?.secret).toBe(after.secret);
  });

  it('the expiry chore drops expired credentials with a new version; a deleted relay is only tidied', async () => {
    planet = await startPlanet();
    const { bosun, idle, trigger } = planet;
    for (const id of ['live', 'gone']) {
      await bosun.api('POST', '/v1/relays', relayBody(id, pubkey));
      await bosun.api('POST', `/v1/relays/${id}/rotate-secret`, { grace_seconds: 1 });
    }
    await bosun.api('POST', '/v1/relays/gone/rotate-secret', { grace_seconds: 3600 });
    await bosun.api('DELETE', '/v1/relays/gone');
    await idle();
    const store = bosun.peer.store;
    const live = (await store.getRelay('live'))!;
    const gone = (await store.getRelay('gone'))!;
    expect(gone.expiring).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 1100));
    await trigger('credential_expiry');
    const live2 = (await store.getRelay('live'))!;
    expect(live2.expiring).toEqual([]);
    expect(live2.version).toBe(live.version + 1);
    expect(live2.secret).toBe(live.secret);
    const gone2 = (await store.getRelay('gone'))!;
    // Only the entry still in its grace period stays (the 1 s one is dropped).
    expect(gone2.expiring).toEqual([gone.expiring![1]]);
    expect(gone.expiring![1]!.expiresAt).toBeGreaterThan(Date.now() + 3_500_000);
    expect(gone2.version).toBe(gone.version);
    // Nothing left to do: a second run changes nothing.
    await trigger('credential_expiry');
    expect((await store.getRelay('live'))!.version).toBe(live2.version);
  });

  it('only writers rotate, and only relays they can see', async () => {
    planet = await startPlanet();
    const { bosun } = planet;
    await bosun.api('POST', '/v1/relays', relayBody('mine', pubkey, { owner: 'alice' }));
    const agent = (await bosun.api('POST', '/v1/tokens', { role: 'agent', fleet: 'default' })).body.token;
    const bob = (await bosun.api('POST', '/v1/tokens', { role: 'tenant', owner: 'bob' })).body.token;
    const alice = (await bosun.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    const rotate = (token: string, body: unknown = {}) =>
      bosun.api('POST', '/v1/relays/mine/rotate-secret', body, token);
    expect((await rotate(agent)).status).toBe(403);
    expect((await rotate(bob)).status).toBe(404);
    expect((await rotate(alice, { grace_seconds: 366 * 86_400 })).status).toBe(400);
    expect((await rotate(alice, { grace: 1 })).status).toBe(400);
    const ok = await rotate(alice);
    expect(ok.status).toBe(200);
    expect(new Date(ok.body.expiring[0].expires_at).getTime() - new Date(ok.body.updated_at).getTime()).toBe(
      86_400_000,
    );
  });
});
