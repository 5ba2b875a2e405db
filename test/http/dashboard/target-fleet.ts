import { expect } from 'vitest';
import { startZooidEmulator, type ZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { keypair, relayBody } from '../../support/env.js';
import { type Planet, startPlanet } from '../../support/planet.js';

/**
 * A planet with a second zooid registered as the target `eu-1`, its fleet `eu` pinned to it, and a
 * pull-only fleet `edge`: on eu-1, `eu-bad` was refused (400, failed) and `eu-later` got a 500
 * (retrying, its next attempt a minute away); `d1` (admin) and `alice-1` (tenant alice) are synced
 * on default, `p1` waits for agents. The dashboard's target page and by-target counts read these.
 */
export interface TargetFleet {
  planet: Planet;
  eu: ZooidEmulator;
  aliceToken: string;
  close: () => Promise<void>;
}

export async function startTargetFleet(): Promise<TargetFleet> {
  const owner = keypair();
  const planet = await startPlanet({
    env: { BOSUN_RETRY_MAX_ATTEMPTS: '5', BOSUN_RETRY_BASE_MS: '60000', BOSUN_RETRY_CAP_MS: '60000' },
  });
  const { bosun, bosunPubkey } = planet;
  const eu = await startZooidEmulator({ whitelist: [bosunPubkey] });
  expect((await bosun.api('POST', '/v1/targets', { name: 'eu-1', url: eu.url })).status).toBe(201);
  expect((await bosun.api('PUT', '/v1/fleets/eu', { target: 'eu-1' })).status).toBe(200);
  expect((await bosun.api('PUT', '/v1/fleets/edge', { target: null })).status).toBe(200);
  const aliceToken = (await bosun.api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body
    .token as string;
  await bosun.api('POST', '/v1/relays', relayBody('d1', owner.pubkey));
  await bosun.api('POST', '/v1/relays', relayBody('alice-1', owner.pubkey), aliceToken);
  await bosun.api('POST', '/v1/relays', relayBody('p1', owner.pubkey, { fleet: 'edge' }));
  eu.setFaults({ statusOverride: { POST: { status: 400, body: '{"error":"invalid info.pubkey: bad"}' } } });
  await bosun.api('POST', '/v1/relays', relayBody('eu-bad', owner.pubkey, { fleet: 'eu' }));
  await planet.idle();
  eu.setFaults({ failAll: true });
  await bosun.api('POST', '/v1/relays', relayBody('eu-later', owner.pubkey, { fleet: 'eu' }));
  await planet.idle();
  await planet.trigger('target_health');
  return {
    planet,
    eu,
    aliceToken,
    close: async () => {
      await planet.close();
      await eu.close();
    },
  };
}
