import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../domain/clock.js';
import { BosunError } from '../domain/errors.js';
import { type Principal, type Token, tokenIsLive, tokenPrincipal } from '../domain/principal.js';
import { fleetNameSchema, OWNER, parseOrThrow } from '../domain/relay.js';
import type { Store } from '../store/port.js';

const TOKEN_PREFIX = 'bosun_';

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * What signed a caller in, kept beside its principal so a long-lived stream or a stream ticket can
 * ask later whether it still would: a token row, the bootstrap admin token, or a NIP-98 key.
 */
export type Credential =
  | { kind: 'token'; id: string }
  | { kind: 'bootstrap' }
  | { kind: 'nostr'; pubkey: string };

export interface Authenticated {
  principal: Principal;
  credential: Credential;
}

/** One key per credential: streams are counted and watched per key. */
export function credentialKey(credential: Credential): string {
  switch (credential.kind) {
    case 'token':
      return `token:${credential.id}`;
    case 'bootstrap':
      return 'bootstrap';
    case 'nostr':
      return `nostr:${credential.pubkey}`;
  }
}

export const createTokenSchema = z
  .strictObject({
    role: z.enum(['admin', 'tenant', 'agent']),
    owner: z.string().regex(OWNER, 'must be 1-128 letters, digits, ., _, : or -').optional(),
    fleet: fleetNameSchema.optional(),
    name: z.string().min(1).max(128).optional(),
    expires_in_seconds: z
      .number()
      .int()
      .positive()
      .max(10 * 365 * 86_400)
      .optional(),
  })
  .superRefine((t, ctx) => {
    if (t.role === 'tenant' && !t.owner)
      ctx.addIssue({ code: 'custom', path: ['owner'], message: 'is required for a tenant token' });
    if (t.role !== 'tenant' && t.owner)
      ctx.addIssue({ code: 'custom', path: ['owner'], message: 'only tenant tokens have an owner' });
    if (t.role !== 'agent' && t.fleet)
      ctx.addIssue({ code: 'custom', path: ['fleet'], message: 'only agent tokens have a fleet' });
  });

/**
 * Bearer tokens: random, shown once, stored as SHA-256 (a lookup by hash reveals nothing usable).
 * BOSUN_ADMIN_TOKEN bootstraps an admin without a database row; it is compared in constant time.
 */
export class TokenService {
  private readonly bootstrapHash: Buffer | null;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    bootstrapAdminToken?: string,
  ) {
    this.bootstrapHash = bootstrapAdminToken ? Buffer.from(hashToken(bootstrapAdminToken), 'hex') : null;
  }

  async create(input: unknown): Promise<{ token: string; info: Token }> {
    const t = parseOrThrow(createTokenSchema, input);
    if (t.role === 'agent' && !t.fleet) t.fleet = 'default';
    const secret = TOKEN_PREFIX + randomBytes(24).toString('base64url');
    const now = this.clock.now();
    const info: Token = {
      id: `tok_${randomBytes(6).toString('hex')}`,
      name: t.name ?? `${t.role}${t.owner ? `:${t.owner}` : t.fleet ? `:${t.fleet}` : ''}`,
      role: t.role,
      owner: t.owner ?? null,
      fleet: t.fleet ?? null,
      createdAt: now,
      expiresAt: t.expires_in_seconds ? now + t.expires_in_seconds * 1000 : null,
      revokedAt: null,
    };
    await this.store.insertToken(info, hashToken(secret));
    return { token: secret, info };
  }

  async list(): Promise<Token[]> {
    return this.store.listTokens();
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.store.revokeToken(id, this.clock.now()))) {
      throw new BosunError('token_not_found', `token ${JSON.stringify(id)} not found or already revoked`);
    }
  }

  /** Resolves a bearer token to its principal and credential, or null when it is unknown, revoked or expired. */
  async authenticate(bearer: string): Promise<Authenticated | null> {
    const hash = hashToken(bearer);
    if (this.bootstrapHash && timingSafeEqual(Buffer.from(hash, 'hex'), this.bootstrapHash)) {
      return { principal: { role: 'admin', actor: 'admin:bootstrap' }, credential: { kind: 'bootstrap' } };
    }
    const token = await this.store.findTokenByHash(hash);
    if (!token || !tokenIsLive(token, this.clock.now())) return null;
    return { principal: tokenPrincipal(token), credential: { kind: 'token', id: token.id } };
  }

  /**
   * Whether a credential still signs the caller in: the token is neither revoked nor expired, or
   * the NIP-98 key is still a registered tenant. Long-lived streams and stream tickets ask this.
   */
  async isLive(credential: Credential): Promise<boolean> {
    const now = this.clock.now();
    switch (credential.kind) {
      case 'bootstrap':
        return this.bootstrapHash !== null;
      case 'token': {
        const token = await this.store.findTokenById(credential.id);
        return token !== undefined && tokenIsLive(token, now);
      }
      case 'nostr':
        return this.store.hasTenant(credential.pubkey, now);
    }
  }

  /** Whether any admin can sign in (the bootstrap token or an admin row). */
  async hasAdmin(): Promise<boolean> {
    if (this.bootstrapHash) return true;
    const now = this.clock.now();
    return (await this.store.listTokens()).some((t) => t.role === 'admin' && tokenIsLive(t, now));
  }
}
