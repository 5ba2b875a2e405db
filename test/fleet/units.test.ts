import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffDocuments, mergeDiff } from '../../src/domain/fleet/diff.js';
import { mergeUnder } from '../../src/domain/fleet/spec.js';
import { relayChecksum } from '../../src/domain/fleet/state.js';
import { generateSecretKey } from '../../src/domain/keys.js';
import { canonicalJson, mergePatch, type Relay } from '../../src/domain/relay.js';
import { waitForSync } from '../../src/fleet/wait.js';
import { relayConfig } from '../support/relays.js';
import { PUBKEY } from './helpers.js';

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.string(),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

function relay(
  over: Record<string, unknown> = {},
): Pick<Relay, 'id' | 'owner' | 'fleet' | 'config' | 'secret'> {
  return {
    id: 'a',
    owner: 'default',
    fleet: 'edge',
    config: relayConfig(
      { host: 'a.example.com', info: { pubkey: PUBKEY, name: 'A "quoted" é' }, ...over },
      'a',
    ),
    secret: generateSecretKey(),
  };
}

describe('fleet building blocks', () => {
  it('canonicalJson is JSON with keys sorted at every level', () => {
    const reversed = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(reversed)
        : typeof v === 'object' && v !== null
          ? Object.fromEntries(
              Object.entries(v)
                .reverse()
                .map(([k, x]) => [k, reversed(x)]),
            )
          : v;
    fc.assert(
      fc.property(json, (v) => {
        const text = canonicalJson(v);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(v)));
        expect(canonicalJson(reversed(v))).toBe(text);
      }),
    );
    expect(canonicalJson({ b: 1, '10': 2, '9': 3, a: [{ y: 1, x: null }] })).toBe(
      '{"10":2,"9":3,"a":[{"x":null,"y":1}],"b":1}',
    );
  });

  it('checksums a relay as sha256 of its canonical config, whatever the key order', () => {
    const r = relay({ roles: { b: { can_invite: true }, a: { pubkeys: [PUBKEY] } } });
    const expected = createHash('sha256')
      .update(canonicalJson({ id: r.id, owner: r.owner, fleet: r.fleet, config: r.config }))
      .digest('hex');
    expect(relayChecksum(r)).toBe(expected);
    const reordered = {
      ...r,
      config: Object.fromEntries(Object.entries(r.config).reverse()) as Relay['config'],
    };
    expect(relayChecksum(reordered)).toBe(expected);
    // A shape the layout does not know falls back to the generic form, still canonical.
    const odd = { ...r, config: { ...r.config, extra: { z: 1, a: 2 } } as Relay['config'] };
    expect(relayChecksum(odd)).toBe(
      createHash('sha256')
        .update(canonicalJson({ id: r.id, owner: r.owner, fleet: r.fleet, config: odd.config }))
        .digest('hex'),
    );
  });

  it('covers livekit.api_secret by a keyed digest, never the secret itself', () => {
    const r = relay({ livekit: { api_secret: 'lk-secret' } });
    const other = { ...r, config: { ...r.config, livekit: { ...r.config.livekit, api_secret: 'lk-other' } } };
    expect(relayChecksum(r)).not.toBe(relayChecksum(other));
    const plain = createHash('sha256')
      .update(canonicalJson({ id: r.id, owner: r.owner, fleet: r.fleet, config: r.config }))
      .digest('hex');
    expect(relayChecksum(r)).not.toBe(plain);
    // Without the relay's secret key one cannot tell which api_secret it was.
    expect(relayChecksum({ ...r, secret: generateSecretKey() })).not.toBe(relayChecksum(r));
  });

  it('mergeUnder merges like RFC 7396 mergePatch without copying what it need not', () => {
    fc.assert(
      fc.property(json, json, (a, b) => canonicalJson(mergeUnder(a, b)) === canonicalJson(mergePatch(a, b))),
    );
    const file = { info: { name: 'x' } };
    expect(mergeUnder({ policy: { public_join: true } }, file)).toEqual({
      policy: { public_join: true },
      info: { name: 'x' },
    });
    expect((mergeUnder({ policy: {} }, file) as typeof file).info).toBe(file.info);
  });

  it('mergeDiff is the merge patch from one document to another', () => {
    const obj = fc.dictionary(fc.string({ maxLength: 3 }), json, { maxKeys: 4 });
    fc.assert(
      fc.property(obj, obj, (from, to) => {
        const clean = mergePatch({}, to) as Record<string, unknown>; // documents hold no nulls
        expect(mergePatch(from, mergeDiff(from, clean))).toEqual(clean);
      }),
    );
  });

  it('diffs leaves, masking secret values', () => {
    expect(
      diffDocuments(
        {
          policy: { public_join: false },
          livekit: { api_secret: 'a' },
          roles: { admin: { can_manage: true } },
        },
        { policy: { public_join: true }, livekit: { api_secret: 'b' }, roles: {}, secret: 'k' },
      ),
    ).toEqual([
      { field: 'livekit.api_secret', before: '(sensitive)', after: '(sensitive)' },
      { field: 'policy.public_join', before: false, after: true },
      { field: 'roles.admin.can_manage', before: true },
      { field: 'secret', after: '(sensitive)' },
    ]);
    expect(diffDocuments({ livekit: { api_secret: '' } }, { livekit: { api_secret: 'x' } })).toEqual([
      { field: 'livekit.api_secret', before: '', after: '(sensitive)' },
    ]);
  });

  it('waits until every scheduled relay is synced at its version or failed, or times out', async () => {
    let now = 0;
    const polls = [
      new Map([
        ['a', { status: 'pending', synced_version: 0, error: '', version: 1 }],
        ['b', { status: 'synced', synced_version: 1, error: '', version: 2 }],
      ]),
      new Map([
        ['a', { status: 'synced', synced_version: 1, error: '', version: 1 }],
        ['b', { status: 'failed', synced_version: 1, error: 'zooid said no', version: 2 }],
      ]),
    ];
    const scheduled = [
      { name: 'a', id: 'a', config_id: 'a.v1', checksum: '', version: 1 },
      { name: 'b', id: 'b', config_id: 'b.v2', checksum: '', version: 2 },
    ];
    const progress: string[] = [];
    const outcome = await waitForSync({
      scheduled,
      poll: async () => polls.shift() as never,
      intervalMs: 500,
      timeoutMs: 10_000,
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
      onProgress: (p) => progress.push(`${p.synced.length}/${p.failed.length}/${p.pending.length}`),
    });
    expect(progress).toEqual(['0/0/2', '1/1/0']);
    expect(outcome).toMatchObject({
      timedOut: false,
      synced: ['a'],
      failed: [{ id: 'b', error: 'zooid said no' }],
    });

    // Relay a answers the same every poll, for a second.
    const alwaysA = (status: string, error: string) =>
      waitForSync({
        scheduled: scheduled.slice(0, 1),
        poll: async () => new Map([['a', { status, synced_version: 0, error, version: 1 }]]) as never,
        intervalMs: 400,
        timeoutMs: 1000,
        now: () => now,
        sleep: async (ms) => {
          now += ms;
        },
      });
    const stuck = await alwaysA('retrying', 'down');
    expect(stuck).toMatchObject({ timedOut: true, pending: ['a'] });

    // A pull-only fleet's relays are not pushed: nothing to wait for.
    const pulled = await alwaysA('pull', '');
    expect(pulled).toMatchObject({ timedOut: false, synced: ['a'], pending: [] });
  });
});
