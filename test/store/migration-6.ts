import { expect } from 'vitest';
import type { Store } from '../../src/store/port.js';

/**
 * The data migration 6 finds (both dialects): relays with their owners and versions, and a log
 * without owners. b was deleted and created again (version 3); c's create was pruned from the log.
 */
export const MIGRATION_6_RELAYS = [
  ['a', 'alice', 2],
  ['b', 'bob', 3],
  ['c', 'carol', 5],
] as const;
export const MIGRATION_6_ACTIVITIES = [
  ['create_relay', 'a', 1],
  ['create_relay', 'b', 1],
  ['delete_relay', 'b', 2],
  ['create_relay', 'b', 3],
  ['update_relay', 'a', 2],
  ['update_relay', 'c', 5],
] as const;

/** After migration 6: each activity has its relay's owner, each relay its first version. */
export async function expectMigrated6(store: Store): Promise<void> {
  const owners = (await store.activitiesAfter({ after: 0, limit: 10 })).map((a) => [a.relayId, a.owner]);
  expect(owners).toEqual([
    ['a', 'alice'],
    ['b', 'bob'],
    ['b', 'bob'],
    ['b', 'bob'],
    ['a', 'alice'],
    ['c', 'carol'],
  ]);
  const firstVersions = (await store.getRelays(['a', 'b', 'c'])).map((r) => [r.id, r.createdVersion]);
  expect(firstVersions).toEqual([
    ['a', 1],
    ['b', 3],
    ['c', 1],
  ]);
}
