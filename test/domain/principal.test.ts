import { describe, expect, it } from 'vitest';
import { type Token, tenantPrincipal, tokenIsLive, tokenPrincipal } from '../../src/domain/principal.js';

const token = (fields: Partial<Token>): Token => ({
  id: 't1',
  name: 'n',
  role: 'admin',
  owner: null,
  fleet: null,
  createdAt: 0,
  expiresAt: null,
  revokedAt: null,
  ...fields,
});

describe('tokenIsLive', () => {
  it('is live until revoked, and until (not at) its expiry', () => {
    expect(tokenIsLive(token({}), 1_000)).toBe(true);
    expect(tokenIsLive(token({ expiresAt: 1_001 }), 1_000)).toBe(true);
    expect(tokenIsLive(token({ expiresAt: 1_000 }), 1_000)).toBe(false);
    expect(tokenIsLive(token({ revokedAt: 500 }), 1_000)).toBe(false);
    expect(tokenIsLive(token({ revokedAt: 500, expiresAt: 2_000 }), 1_000)).toBe(false);
  });
});

describe('tokenPrincipal', () => {
  it('signs an admin, a tenant (as its owner) and an agent (for its fleet) in', () => {
    expect(tokenPrincipal(token({}))).toEqual({ role: 'admin', actor: 'token:t1' });
    expect(tokenPrincipal(token({ role: 'tenant', owner: 'acme' }))).toEqual(tenantPrincipal('acme'));
    expect(tenantPrincipal('acme')).toEqual({ role: 'tenant', owner: 'acme', actor: 'tenant:acme' });
    expect(tokenPrincipal(token({ role: 'agent', fleet: 'eu' }))).toEqual({
      role: 'agent',
      fleet: 'eu',
      actor: 'agent:t1',
      tokenId: 't1',
    });
  });
});
