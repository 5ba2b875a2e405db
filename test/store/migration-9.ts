import { expect } from 'vitest';
import type { Relay } from '../../src/domain/relay.js';
import type { Store } from '../../src/store/port.js';
import { relayRecord } from '../support/relays.js';

/**
 * The relays migration 9 finds (both dialects), beside target eu-1 for fleet eu and a pull-only
 * fleet edge: e, d and p are held by zooid (pushed, not deleted) in fleets eu, main and edge;
 * `never` was never pushed.
 */
export function migration9Relays(pubkey: string): Relay[] {
  const held = (id: string, fleet: string) =>
    relayRecord(id, pubkey, { fleet, sync: { ...relayRecord(id, pubkey).sync, ackedDeleted: false } });
  return [
    held('e', 'eu'),
    held('d', 'main'),
    held('p', 'edge'),
    relayRecord('never', pubkey, { fleet: 'eu' }),
  ];
}

/** After migration 9: a held relay lives on its fleet's target, `default` without one; `never` nowhere. */
export async function expectMigrated9(store: Store): Promise<void> {
  const lives = async (id: string) => (await store.getRelay(id))!.sync.pushedTarget;
  expect([await lives('e'), await lives('d'), await lives('p'), await lives('never')]).toEqual([
    'eu-1',
    'default',
    'default',
    null,
  ]);
}
