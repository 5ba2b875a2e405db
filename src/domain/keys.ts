import { randomBytes } from 'node:crypto';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';

const HEX64 = /^[0-9a-f]{64}$/;
const ORDER = secp256k1.Point.CURVE().n;

/** A Nostr secret key: 64 lowercase hex, a scalar in [1, n−1] (zooid rejects the zero key). */
export function isValidSecretKey(hex: string): boolean {
  if (!HEX64.test(hex)) return false;
  const k = BigInt(`0x${hex}`);
  return k > 0n && k < ORDER;
}

/**
 * Checking that a key is on the curve costs a modular square root (~130 µs), and every update
 * re-validates the relay's owner and role keys, so results are cached (bounded; oldest dropped).
 */
const pubkeyValidity = new Map<string, boolean>();
const PUBKEY_CACHE_MAX = 50_000;

/** A Nostr public key: 64 lowercase hex that is the x coordinate of a curve point (BIP-340). */
export function isValidPublicKey(hex: string): boolean {
  if (!HEX64.test(hex)) return false;
  const cached = pubkeyValidity.get(hex);
  if (cached !== undefined) return cached;
  let valid: boolean;
  try {
    schnorr.utils.lift_x(BigInt(`0x${hex}`));
    valid = true;
  } catch {
    valid = false;
  }
  if (pubkeyValidity.size >= PUBKEY_CACHE_MAX) pubkeyValidity.delete(pubkeyValidity.keys().next().value!);
  pubkeyValidity.set(hex, valid);
  return valid;
}

export function generateSecretKey(): string {
  for (;;) {
    const hex = randomBytes(32).toString('hex');
    if (isValidSecretKey(hex)) return hex;
  }
}

export function publicKeyOf(secretHex: string): string {
  return Buffer.from(schnorr.getPublicKey(Buffer.from(secretHex, 'hex'))).toString('hex');
}
