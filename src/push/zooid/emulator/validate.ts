/** zooid's config validation (docs/zooid-contract.md §1, in order). */
import { isValidPublicKey } from '../../../domain/keys.js';
import type { ZooidStoredConfig, ZooidVariant } from './types.js';

const SECP256K1_N = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');

export function secretKeyError(secret: string): string | null {
  const bad = secret.search(/[^0-9a-fA-F]/);
  if (bad !== -1) {
    const ch = secret.codePointAt(bad) ?? 0;
    return `encoding/hex: invalid byte: U+${ch.toString(16).toUpperCase().padStart(4, '0')} ${JSON.stringify(String.fromCodePoint(ch)).replace(/^"|"$/g, "'")}`;
  }
  if (secret.length > 64) return 'secret key should be at most 64 hex characters';
  const k = BigInt(`0x${secret.padStart(64, '0')}`);
  if (k === 0n) return 'secret key is zero';
  if (k >= SECP256K1_N) return 'secret key is not below the curve order';
  return null;
}

function pubkeyError(pubkey: string): string | null {
  if (pubkey.length !== 64) return `pubkey should be 64-char hex, got '${pubkey}'`;
  if (!isValidPublicKey(pubkey.toLowerCase())) return `'${pubkey}' is not a valid pubkey`;
  return null;
}

export function validate(c: ZooidStoredConfig, variant: ZooidVariant): string | null {
  if (variant === 'v2' && !c.blossom.adapter) c.blossom.adapter = 'local';
  if (c.host === '') return 'host is required';
  if (c.schema === '') return 'schema is required';
  if (variant === 'v1p' && !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(c.schema)) {
    return 'schema must contain only letters, numbers, and underscores';
  }
  if (variant === 'v2' && !/^[a-z_][a-z0-9_]*$/.test(c.schema)) {
    return 'schema must contain only lowercase letters, numbers, and underscores';
  }
  if (variant !== 'v2' && c.secret === '') return 'secret is required';
  const secretError = secretKeyError(c.secret);
  if (secretError) return `invalid secret key: ${secretError}`;
  if (variant === 'v1p' && c.info.pubkey === '') return 'info.pubkey is required';
  if (variant === 'v2' || c.info.pubkey !== '') {
    const err = pubkeyError(c.info.pubkey);
    if (err) return `invalid info.pubkey: ${err}`;
  }
  if (variant === 'v2') {
    if (c.blossom.adapter === 's3') {
      const s3 = c.blossom.s3;
      for (const key of ['bucket', 'region', 'access_key', 'secret_key'] as const) {
        if (!s3 || s3[key] === '') return `blossom.s3.${key} is required when blossom.adapter is s3`;
      }
    } else if (c.blossom.adapter !== 'local') {
      return 'invalid blossom adapter';
    }
  }
  return null;
}
