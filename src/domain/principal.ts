import { BosunError } from './errors.js';
import type { Relay } from './relay.js';

/** Who is calling. A tenant sees only relays it owns; an agent only the relays of its fleet. */
export type Principal =
  | { role: 'admin'; actor: string }
  | { role: 'tenant'; owner: string; actor: string }
  | { role: 'agent'; fleet: string; actor: string; tokenId: string };

export type Role = Principal['role'];

export const SYSTEM: Principal = { role: 'admin', actor: 'system' };

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
