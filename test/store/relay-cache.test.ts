import { describe, expect, it } from 'vitest';
import type { Activity } from '../../src/domain/activity.js';
import type { Relay } from '../../src/domain/relay.js';
import { RelayCache } from '../../src/store/relay-cache.js';
import { relayRecord } from '../support/relays.js';

const PUBKEY = '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798';
const relay = (id: string, rev: number): Relay => relayRecord(id, PUBKEY, { rev });
// Only the fields the cache reads; the cast keeps this test independent of fields added later.
const activity = (id: number, relayId: string) =>
  ({ id, relayId, type: 'update_relay', actor: 'admin', payload: {}, createdAt: 0 }) as Activity;

describe('RelayCache', () => {
  it('returns what was set, and nothing for an id it never saw', () => {
    const cache = new RelayCache();
    const r = relay('a', 1);
    cache.set(r);
    expect(cache.get('a')).toBe(r);
    expect(cache.get('b')).toBeUndefined();
  });

  it('replaces an entry only with a higher rev, so a slow writer cannot put back an older relay', () => {
    const cache = new RelayCache();
    const v2 = relay('a', 2);
    cache.set(v2);
    cache.set(relay('a', 1));
    cache.set(relay('a', 2));
    expect(cache.get('a')).toBe(v2);
    const v3 = relay('a', 3);
    cache.set(v3);
    expect(cache.get('a')).toBe(v3);
  });

  it('evicts the least recently used entry past its capacity; a get counts as a use', () => {
    const cache = new RelayCache(2);
    cache.set(relay('a', 1));
    cache.set(relay('b', 1));
    cache.get('a'); // b is now the least recently used
    cache.set(relay('c', 1));
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    expect(cache.get('c')).toBeDefined();
  });

  it('a committed activity newer than an entry’s own commit evicts it; its own or older ones do not', () => {
    const cache = new RelayCache();
    cache.set(relay('a', 1), 10);
    cache.changed([activity(9, 'a'), activity(10, 'a')]);
    expect(cache.get('a')).toBeDefined();
    cache.changed([activity(11, 'a')]);
    expect(cache.get('a')).toBeUndefined();
  });

  it('an entry that was read (no commit of ours) is evicted by any change to its relay', () => {
    const cache = new RelayCache();
    cache.set(relay('a', 1));
    cache.set(relay('b', 1));
    cache.changed([activity(1, 'a')]);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBeDefined();
  });

  it('delete forgets an entry', () => {
    const cache = new RelayCache();
    cache.set(relay('a', 1));
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
