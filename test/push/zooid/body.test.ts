import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RelayConfig, relayConfigSchema } from '../../../src/domain/relay.js';
import { type BlossomS3, blossomS3FromEnv, patchBody, zooidBody } from '../../../src/push/zooid/body.js';
import { ADMIN_PUBKEY, OWNER_PUBKEY, RELAY_SECRET } from './helpers.js';

function config(extra: Record<string, unknown> = {}): RelayConfig {
  return relayConfigSchema.parse({
    host: 'r1.example.com',
    schema: 'r1',
    info: { name: 'R1', pubkey: OWNER_PUBKEY },
    ...extra,
  });
}

const S3: BlossomS3 = { region: 'us-east-1', bucket: 'media', accessKey: 'AKIA1', secretKey: 'shh' };
/** S3 as zooid's body for relay r1 carries it. */
const S3_BODY = {
  region: 'us-east-1',
  bucket: 'media',
  access_key: 'AKIA1',
  secret_key: 'shh',
  key_prefix: 'r1',
};

describe('zooidBody', () => {
  it('maps every section, secret only when asked', () => {
    const c = config({
      groups: { enabled: true },
      management: { enabled: true },
      push: { enabled: true },
      policy: { public_join: true },
      livekit: { server_url: 'wss://lk', api_key: 'k', api_secret: 's' },
      roles: { admin: { pubkeys: [ADMIN_PUBKEY], can_manage: true }, member: { can_invite: true } },
    });
    const body = zooidBody({ config: c, secret: RELAY_SECRET }, { withSecret: true, blossomS3: null });
    expect(body).toEqual({
      host: 'r1.example.com',
      schema: 'r1',
      secret: RELAY_SECRET,
      inactive: false,
      info: { name: 'R1', icon: '', description: '', pubkey: OWNER_PUBKEY },
      policy: { public_join: true, strip_signatures: false },
      groups: { enabled: true },
      management: { enabled: true },
      blossom: { enabled: false, authenticated_read: false },
      livekit: { server_url: 'wss://lk', api_key: 'k', api_secret: 's' },
      push: { enabled: true },
      roles: {
        admin: { pubkeys: [ADMIN_PUBKEY], can_invite: false, can_manage: true },
        member: { pubkeys: [], can_invite: true, can_manage: false },
      },
    });
    const withoutSecret = zooidBody(
      { config: c, secret: RELAY_SECRET },
      { withSecret: false, blossomS3: null },
    );
    expect('secret' in withoutSecret).toBe(false);
    expect(JSON.stringify(withoutSecret)).not.toContain(RELAY_SECRET);
    // the body does not alias the relay's arrays
    withoutSecret.roles.admin!.pubkeys.push('x');
    expect(c.roles.admin!.pubkeys).toEqual([ADMIN_PUBKEY]);
  });

  it('blossom disabled keeps what the record holds and gets no S3, S3 or not', () => {
    const c = config({ blossom: { enabled: false, authenticated_read: true } });
    for (const blossomS3 of [null, S3]) {
      const body = zooidBody({ config: c, secret: RELAY_SECRET }, { withSecret: false, blossomS3 });
      expect(JSON.stringify(body.blossom)).toBe('{"enabled":false,"authenticated_read":true}');
    }
  });

  it('blossom enabled without S3 omits adapter and s3 (zooid defaults to local)', () => {
    const c = config({ blossom: { enabled: true, authenticated_read: true } });
    const body = zooidBody({ config: c, secret: RELAY_SECRET }, { withSecret: false, blossomS3: null });
    expect(body.blossom).toEqual({ enabled: true, authenticated_read: true });
    expect('adapter' in body.blossom || 's3' in body.blossom).toBe(false);
  });

  it('blossom enabled with S3 injects adapter s3 and key_prefix = schema; endpoint only when set', () => {
    const c = config({ blossom: { enabled: true } });
    const body = zooidBody({ config: c, secret: RELAY_SECRET }, { withSecret: false, blossomS3: S3 });
    expect(body.blossom).toEqual({
      enabled: true,
      authenticated_read: false,
      adapter: 's3',
      s3: S3_BODY,
    });
    expect(JSON.stringify(body.blossom)).not.toContain('endpoint');
    const withEndpoint = zooidBody(
      { config: c, secret: RELAY_SECRET },
      { withSecret: false, blossomS3: { ...S3, endpoint: 'http://minio:9000' } },
    );
    expect(withEndpoint.blossom).toEqual({
      enabled: true,
      authenticated_read: false,
      adapter: 's3',
      s3: { ...S3_BODY, endpoint: 'http://minio:9000' },
    });
  });
});

describe('zooidBody sends what the record holds', () => {
  const text = fc.string({ maxLength: 12 });
  const section = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
  const role = fc.record(
    {
      pubkeys: fc.subarray([ADMIN_PUBKEY, OWNER_PUBKEY]),
      can_invite: fc.boolean(),
      can_manage: fc.boolean(),
    },
    { requiredKeys: [] },
  );
  /** Any valid relay config: every section and field optional, so defaults are covered too. */
  const configs = fc
    .record({
      inactive: section(fc.boolean()),
      info: section(fc.record({ name: text, icon: text, description: text }, { requiredKeys: [] })),
      policy: section(
        fc.record({ public_join: fc.boolean(), strip_signatures: fc.boolean() }, { requiredKeys: [] }),
      ),
      groups: section(fc.record({ enabled: fc.boolean() })),
      management: section(fc.record({ enabled: fc.boolean() })),
      blossom: section(
        fc.record({ enabled: fc.boolean(), authenticated_read: fc.boolean() }, { requiredKeys: [] }),
      ),
      livekit: section(
        fc.record({ server_url: text, api_key: text, api_secret: text }, { requiredKeys: [] }),
      ),
      push: section(fc.record({ enabled: fc.boolean() })),
      roles: section(fc.dictionary(fc.constantFrom('admin', 'member', 'mod', 'x_1'), role)),
    })
    .map(({ info, ...rest }) =>
      config(
        Object.fromEntries(
          Object.entries({ ...rest, info: { ...info, pubkey: OWNER_PUBKEY } }).filter(
            ([, v]) => v !== undefined,
          ),
        ),
      ),
    );

  /** Every leaf of `value` (arrays whole) with its path. */
  const leaves = (value: unknown, path: string[] = []): Array<[string[], unknown]> =>
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]))
      : [[path, value]];
  const at = (value: unknown, path: string[]): unknown =>
    path.reduce<unknown>(
      (v, k) => (typeof v === 'object' && v !== null && Object.hasOwn(v, k) ? (v as never)[k] : undefined),
      value,
    );

  it('every field of the record is in the POST/PUT body, with or without S3, blossom on or off', () => {
    fc.assert(
      fc.property(configs, fc.constantFrom(null, S3), (c, blossomS3) => {
        const body = zooidBody({ config: c, secret: RELAY_SECRET }, { withSecret: true, blossomS3 });
        for (const [path, value] of leaves(c)) expect(at(body, path), path.join('.')).toEqual(value);
        expect(body.secret).toBe(RELAY_SECRET);
        // Only the S3 injection depends on blossom.enabled.
        expect('s3' in body.blossom).toBe(c.blossom.enabled && blossomS3 !== null);
      }),
      { numRuns: 300 },
    );
  });
});

describe('blossomS3FromEnv', () => {
  const full = {
    BLOSSOM_S3_REGION: ' us-east-1 ',
    BLOSSOM_S3_BUCKET: 'media',
    BLOSSOM_S3_ACCESS_KEY: 'AKIA1',
    BLOSSOM_S3_SECRET_KEY: 'shh',
  };

  it('needs region, bucket, access key and secret key, trimmed', () => {
    expect(blossomS3FromEnv(full)).toEqual({
      region: 'us-east-1',
      bucket: 'media',
      accessKey: 'AKIA1',
      secretKey: 'shh',
    });
    expect(blossomS3FromEnv({ ...full, BLOSSOM_S3_ENDPOINT: ' http://minio:9000 ' })).toEqual({
      region: 'us-east-1',
      bucket: 'media',
      accessKey: 'AKIA1',
      secretKey: 'shh',
      endpoint: 'http://minio:9000',
    });
    expect(blossomS3FromEnv({ ...full, BLOSSOM_S3_ENDPOINT: '   ' })).not.toHaveProperty('endpoint');
    for (const key of Object.keys(full)) {
      expect(blossomS3FromEnv({ ...full, [key]: '  ' })).toBeNull();
      const { [key as keyof typeof full]: _dropped, ...rest } = full;
      expect(blossomS3FromEnv(rest)).toBeNull();
    }
    expect(blossomS3FromEnv({})).toBeNull();
  });
});

describe('patchBody', () => {
  const body = (c: RelayConfig, s3: BlossomS3 | null = null) =>
    zooidBody({ config: c, secret: RELAY_SECRET }, { withSecret: true, blossomS3: s3 });

  it('sends null for a removed role, arrays whole, never the secret', () => {
    const before = body(config({ roles: { admin: { pubkeys: [ADMIN_PUBKEY, OWNER_PUBKEY] }, mod: {} } }));
    const after = body(config({ roles: { mod: { pubkeys: [ADMIN_PUBKEY] } } }));
    const patch = patchBody(before, after);
    expect(patch.roles).toEqual({
      admin: null,
      mod: { pubkeys: [ADMIN_PUBKEY], can_invite: false, can_manage: false },
    });
    expect(patch).not.toHaveProperty('secret');
    expect(patch.host).toBe('r1.example.com');
    expect(Object.keys(patch)).toEqual(Object.keys(after).filter((k) => k !== 'secret'));
  });

  it('turning blossom off nulls adapter and s3, and keeps authenticated_read', () => {
    const before = body(config({ blossom: { enabled: true, authenticated_read: true } }), {
      ...{ region: 'r', bucket: 'b', accessKey: 'a', secretKey: 's' },
    });
    const after = body(config({ blossom: { enabled: false, authenticated_read: true } }));
    expect(patchBody(before, after).blossom).toEqual({
      enabled: false,
      authenticated_read: true,
      adapter: null,
      s3: null,
    });
  });

  it('dropping the S3 endpoint nulls just that key', () => {
    const c = config({ blossom: { enabled: true } });
    const before = body(c, { ...S3, endpoint: 'http://minio' });
    const after = body(c, S3);
    expect(patchBody(before, after).blossom).toEqual({
      enabled: true,
      authenticated_read: false,
      adapter: 's3',
      s3: { ...S3_BODY, endpoint: null },
    });
  });

  it('without a previous body is the next body minus the secret; inputs are not mutated', () => {
    const next = body(config());
    const copy = structuredClone(next);
    const { secret: _s, ...expected } = next;
    expect(patchBody(null, next)).toEqual(expected);
    const prev = { ...next, extra: { a: 1 } };
    expect(patchBody(prev, next).extra).toBeNull();
    expect(next).toEqual(copy);
    expect(patchBody({ a: { b: 1 } }, { a: 5 })).toEqual({ a: 5 });
    expect(patchBody({ a: 5 }, { a: { b: [1, { c: 2 }] } })).toEqual({ a: { b: [1, { c: 2 }] } });
    expect(patchBody({ secret: 'x', a: 1 }, {})).toEqual({ a: null });
  });
});
