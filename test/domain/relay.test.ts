import { describe, expect, it } from 'vitest';
import { truncateError } from '../../src/domain/errors.js';
import { isValidPublicKey, isValidSecretKey } from '../../src/domain/keys.js';
import { canonicalJson, mergePatch, schemaFromId } from '../../src/domain/relay.js';

describe('keys', () => {
  it('accepts only valid, non-zero secret keys below the curve order', () => {
    expect(isValidSecretKey('00'.repeat(32))).toBe(false);
    expect(isValidSecretKey('ff'.repeat(32))).toBe(false);
    expect(isValidSecretKey(`${'00'.repeat(31)}01`)).toBe(true);
    expect(isValidSecretKey('AB'.repeat(32))).toBe(false);
    expect(isValidSecretKey('ab'.repeat(31))).toBe(false);
  });

  it('accepts only x coordinates of curve points as public keys', () => {
    // x = 5 is not on secp256k1 (5^3 + 7 = 132 is not a quadratic residue mod p).
    expect(isValidPublicKey(`${'00'.repeat(31)}05`)).toBe(false);
    expect(isValidPublicKey('79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798')).toBe(true);
    expect(isValidPublicKey('79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798')).toBe(false);
  });
});

describe('relay helpers', () => {
  it('derives a valid schema from an id', () => {
    expect(schemaFromId('my-relay')).toBe('my_relay');
    expect(schemaFromId('9lives')).toBe('r_9lives');
  });

  it('applies RFC 7396 merge patches', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 } }, { b: { c: null, e: 4 }, f: [1] })).toEqual({
      a: 1,
      b: { d: 3, e: 4 },
      f: [1],
    });
    expect(mergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
  });

  it('serialises canonically regardless of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: 1, c: 2 } })).toBe(canonicalJson({ a: { c: 2, d: 1 }, b: 1 }));
  });

  it('truncates stored errors to 120 characters on one line', () => {
    const t = truncateError(`boom\n${'x'.repeat(300)}`);
    expect(t.length).toBe(120);
    expect(t.startsWith('boom x')).toBe(true);
    expect(truncateError('short')).toBe('short');
  });
});
