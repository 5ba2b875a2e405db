/** The version table of docs/stream-protocol.md §4, row by row. */
import { describe, expect, it } from 'vitest';
import {
  decideDelete,
  decideUpsert,
  type Held,
  RelayState,
  sortIds,
  TOMBSTONE_TTL_MS,
} from '../../../src/pull/agent/relay-state.js';

const live = (version: number, digest?: string): Held => ({ kind: 'live', version, rep: undefined, digest });
const tomb = (version: number): Held => ({ kind: 'tomb', version, since: 0 });

describe('§4 upsert rows', () => {
  it.each<[string, Held | undefined, number, ReturnType<typeof decideUpsert>]>([
    ['nothing -> add', undefined, 1, { action: 'add' }],
    ['live@10, v11 -> update', live(10), 11, { action: 'update', previousVersion: 10 }],
    ['tomb@10, v11 -> add', tomb(10), 11, { action: 'add' }],
    ['live@10, v10 -> none', live(10, 'd'), 10, { action: 'none', contentDiffers: false }],
    ['live@10, v9 -> none', live(10, 'd'), 9, { action: 'none', contentDiffers: false }],
    ['tomb@10, v10 -> none', tomb(10), 10, { action: 'none', contentDiffers: false }],
    ['tomb@10, v3 -> none', tomb(10), 3, { action: 'none', contentDiffers: false }],
  ])('%s', (_name, held, version, expected) => {
    expect(decideUpsert(held, version, 'd')).toEqual(expected);
  });

  it('same version with other content: none, flagged', () => {
    expect(decideUpsert(live(10, 'old'), 10, 'new')).toEqual({ action: 'none', contentDiffers: true });
    // a lower version is expected to differ; an unknown digest (saved state) cannot be compared
    expect(decideUpsert(live(10, 'old'), 9, 'new')).toEqual({ action: 'none', contentDiffers: false });
    expect(decideUpsert(live(10), 10, 'new')).toEqual({ action: 'none', contentDiffers: false });
  });

  it('a new epoch voids old versions: any other version updates, even lower; the same one does not', () => {
    expect(decideUpsert(live(9), 5, 'd', true)).toEqual({ action: 'update', previousVersion: 9 });
    expect(decideUpsert(live(9), 12, 'd', true)).toEqual({ action: 'update', previousVersion: 9 });
    expect(decideUpsert(live(9, 'd'), 9, 'd', true)).toEqual({ action: 'none', contentDiffers: false });
    expect(decideUpsert(tomb(9), 1, 'd', true)).toEqual({ action: 'add' });
  });
});

describe('§4 delete rows', () => {
  it.each<[string, Held | undefined, number, string]>([
    ['nothing -> tomb, no callback', undefined, 5, 'tombstone'],
    ['live@10, v11 -> deleteRelay', live(10), 11, 'delete'],
    ['tomb@10, v11 -> tomb, no callback', tomb(10), 11, 'tombstone'],
    ['live@10, v10 -> none', live(10), 10, 'none'],
    ['live@10, v2 -> none', live(10), 2, 'none'],
    ['tomb@10, v10 -> none', tomb(10), 10, 'none'],
  ])('%s', (_name, held, version, expected) => {
    expect(decideDelete(held, version)).toBe(expected);
  });
});

describe('RelayState', () => {
  it('starts from saved state as live entries without reps', () => {
    const s = new RelayState({ epoch: 'e1', relays: { b: 2, A: 1 } });
    expect(s.epoch).toBe('e1');
    expect(s.get('A')).toEqual({ kind: 'live', version: 1, rep: undefined, digest: undefined });
    expect(s.liveVersions()).toEqual([
      ['A', 1],
      ['b', 2],
    ]);
  });

  it('omittedBy: live ids outside the membership, ascending; tombstones are not deleted again', () => {
    const s = new RelayState({ epoch: 'e1', relays: { c: 1, a: 1, b: 1, d: 1 } });
    s.setTomb('d', 2, 0);
    expect(s.omittedBy(new Set(['b']))).toEqual(['a', 'c']);
  });

  it('tombstones live at least an hour; a new epoch drops them all', () => {
    const s = new RelayState();
    s.setTomb('a', 1, 1_000);
    s.setTomb('b', 1, 2_000);
    s.setLive('c', 1, undefined, undefined);
    s.pruneTombstones(1_000 + TOMBSTONE_TTL_MS - 1);
    expect(s.get('a')?.kind).toBe('tomb');
    s.pruneTombstones(1_000 + TOMBSTONE_TTL_MS);
    expect(s.get('a')).toBeUndefined();
    expect(s.get('b')?.kind).toBe('tomb');
    s.dropTombstones();
    expect(s.get('b')).toBeUndefined();
    expect(s.get('c')?.kind).toBe('live');
  });

  it('sorts ids by code unit', () => {
    expect(sortIds(['b', 'B', '../x', 'a-1', 'a.1', 'a'])).toEqual(['../x', 'B', 'a', 'a-1', 'a.1', 'b']);
  });
});
