import { describe, expect, it } from 'vitest';
import { liveProblem } from '../../src/domain/live.js';
import { compareLive, expectationOf, type FetchOutcome } from '../../src/live/compare.js';
import { keypair } from '../support/env.js';
import { relayRecord } from '../support/relays.js';

const owner = keypair();

function relay(over: { inactive?: boolean; deleted?: boolean; name?: string } = {}) {
  const r = relayRecord('r1', owner.pubkey);
  return {
    ...r,
    deletedAt: over.deleted ? 5000 : null,
    config: {
      ...r.config,
      inactive: over.inactive ?? false,
      info: { ...r.config.info, name: over.name ?? 'Relay One', description: 'about', icon: '' },
    },
  };
}

/** The document zooid builds from a config (docs/zooid-contract.md §5): empty strings left out. */
function served(r: ReturnType<typeof relay>, over: Record<string, unknown> = {}): FetchOutcome {
  const want = expectationOf(r);
  const doc: Record<string, unknown> = {
    name: r.config.info.name,
    description: r.config.info.description,
    pubkey: r.config.info.pubkey,
    self: want.self,
    software: 'https://github.com/coracle-social/zooid',
    supported_nips: [1, 11, '43'],
  };
  return { ok: true, doc: { ...doc, ...over } };
}

describe('compareLive', () => {
  it('live: the served document matches the record (a missing field is an empty one)', () => {
    const r = relay();
    expect(compareLive(expectationOf(r), served(r))).toEqual({ status: 'live', error: '', diff: null });
  });

  it('stale: served but different, with both values per field', () => {
    const r = relay();
    const seen = compareLive(expectationOf(r), served(r, { name: 'Old', icon: 'https://x/i.png' }));
    expect(seen.status).toBe('stale');
    expect(seen.diff).toEqual({
      name: { want: 'Relay One', got: 'Old' },
      icon: { want: '', got: 'https://x/i.png' },
    });
    expect(seen.error).toBe('served document differs: name, icon');
  });

  it('stale: a non-string or huge field is shown bounded', () => {
    const r = relay();
    const seen = compareLive(expectationOf(r), served(r, { name: 7, description: 'x'.repeat(70_000) }));
    expect(seen.status).toBe('stale');
    expect(seen.diff?.name).toEqual({ want: 'Relay One', got: '7' });
    expect(seen.diff?.description?.got.length).toBe(4097);
  });

  it('not_served: the fetch failed (404, refused, not NIP-11), with a bounded error', () => {
    const r = relay();
    const seen = compareLive(expectationOf(r), { ok: false, error: `HTTP 404 ${'y'.repeat(300)}` });
    expect(seen.status).toBe('not_served');
    expect(seen.error.length).toBeLessThanOrEqual(120);
    expect(seen.error.startsWith('HTTP 404')).toBe(true);
  });

  it('wrong_identity: self is not the public key of the stored secret, or missing', () => {
    const r = relay();
    const other = keypair();
    const seen = compareLive(expectationOf(r), served(r, { self: other.pubkey }));
    expect(seen.status).toBe('wrong_identity');
    expect(seen.error).toContain(other.pubkey.slice(0, 16));
    expect(seen.error).not.toContain(r.secret);
    expect(compareLive(expectationOf(r), served(r, { self: undefined })).status).toBe('wrong_identity');
  });

  it('unexpected: an inactive or deleted relay that is still served', () => {
    const inactive = relay({ inactive: true });
    expect(compareLive(expectationOf(inactive), served(inactive))).toEqual({
      status: 'unexpected',
      error: 'inactive relay is still served',
      diff: null,
    });
    const deleted = relay({ deleted: true });
    expect(compareLive(expectationOf(deleted), served(deleted)).error).toBe('deleted relay is still served');
    // Its host now serves another relay (another key): not the deleted one.
    const other = served(deleted, { self: keypair().pubkey });
    expect(compareLive(expectationOf(deleted), other).status).toBe('not_served');
  });

  it('not_served without an error for a relay that should not be served and is not', () => {
    const r = relay({ inactive: true });
    expect(compareLive(expectationOf(r), { ok: false, error: 'HTTP 404' })).toEqual({
      status: 'not_served',
      error: '',
      diff: null,
    });
  });
});

describe('liveProblem', () => {
  it('counts what needs attention', () => {
    expect(liveProblem('live', true)).toBe(false);
    expect(liveProblem('unknown', true)).toBe(false);
    expect(liveProblem('not_served', false)).toBe(false);
    expect(liveProblem('not_served', true)).toBe(true);
    for (const s of ['stale', 'unexpected', 'wrong_identity'] as const)
      expect(liveProblem(s, true)).toBe(true);
  });
});
