import { createHash } from 'node:crypto';

/**
 * Rotated credentials (docs/stream-protocol.md §6): after `rotate-secret`, the old secret stays valid
 * for a grace period and is listed here until it expires. Values are secrets: never logged, never
 * shown by the API (only their fingerprint is).
 */
export interface ExpiringCredential {
  /** What the value was, e.g. `secret`. */
  name: string;
  value: string;
  /** Unix milliseconds. */
  expiresAt: number;
}

/** Longest accepted grace period of a rotation. */
export const MAX_ROTATION_GRACE_MS = 365 * 86_400_000;

/**
 * SHA-256 hex of a secret: recorded as the secret zooid last acknowledged, so push sync knows to
 * replace (PUT) a relay whose secret was rotated. Reveals nothing about the secret.
 */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** First 8 hex of SHA-256(value): names a credential in logs, activities and API views. */
export function credentialFingerprint(value: string): string {
  return secretDigest(value).slice(0, 8);
}

/** The entries still valid at `now` (strictly before their expiry). */
export function unexpired(list: readonly ExpiringCredential[], now: number): ExpiringCredential[] {
  return list.filter((c) => c.expiresAt > now);
}

/** The earliest expiry of a list, or null when it is empty (an index column for the expiry chore). */
export function nextExpiry(list: readonly ExpiringCredential[]): number | null {
  if (list.length === 0) return null;
  return Math.min(...list.map((c) => c.expiresAt));
}
