import { BosunError } from './errors.js';
import type { Relay } from './relay.js';

/** Who is calling. A tenant sees only relays it owns; an agent only the relays of its fleet. */
export type Principal =
  | { role: 'admin'; actor: string }
  | { role: 'tenant'; owner: string; actor: string }
  | { role: 'agent'; fleet: string; actor: string; tokenId: string };

export type Role = Principal['role'];

/** Whether the caller may see (and, unless an agent, change) the relay. */
export function canSee(principal: Principal, relay: Relay): boolean {
  switch (principal.role) {
    case 'admin':
      return true;
    case 'tenant':
      return relay.owner === principal.owner;
    case 'agent':
      return relay.fleet === principal.fleet;
  }
}

export function assertWriter(principal: Principal): void {
  if (principal.role === 'agent') {
    throw new BosunError('forbidden', 'agent tokens can only read their fleet; use an admin or tenant token');
  }
}

/** Targets and fleets' targets are the operator's: tenants and agents may not change them. */
export function assertAdmin(principal: Principal, what: string): void {
  if (principal.role !== 'admin') throw new BosunError('forbidden', `${what} needs an admin token`);
}

export interface Token {
  id: string;
  name: string;
  role: Role;
  owner: string | null;
  fleet: string | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** The one rule for a token row: it signs its caller in while neither revoked nor expired. */
export function tokenIsLive(token: Token, now: number): boolean {
  return token.revokedAt === null && (token.expiresAt === null || token.expiresAt > now);
}

/** Who a token signs in as. */
export function tokenPrincipal(token: Token): Principal {
  switch (token.role) {
    case 'admin':
      return { role: 'admin', actor: `token:${token.id}` };
    case 'tenant':
      return tenantPrincipal(token.owner!);
    case 'agent':
      return { role: 'agent', fleet: token.fleet!, actor: `agent:${token.id}`, tokenId: token.id };
  }
}

/** A tenant, by owner: through a tenant token or its NIP-98 key (the owner is the pubkey). */
export function tenantPrincipal(owner: string): Principal {
  return { role: 'tenant', owner, actor: `tenant:${owner}` };
}

export interface TokenView {
  id: string;
  name: string;
  role: Role;
  owner: string | null;
  fleet: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function viewToken(t: Token): TokenView {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    owner: t.owner,
    fleet: t.fleet,
    created_at: iso(t.createdAt)!,
    expires_at: iso(t.expiresAt),
    revoked_at: iso(t.revokedAt),
  };
}
