import type { FastifyRequest } from 'fastify';
import type { Nip98Verifier } from '../auth/nip98.js';
import type { TokenService } from '../auth/tokens.js';
import type { Clock } from '../domain/clock.js';
import { BosunError } from '../domain/errors.js';
import type { Principal } from '../domain/principal.js';
import type { Store } from '../store/port.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    rawBody?: string;
  }
}

const unauthorized = (message: string) => new BosunError('unauthorized', message);

/**
 * Resolves the caller: `Bearer <token>` (admin, tenant, agent) or `Nostr <NIP-98 event>` for a
 * tenant whose owner id is its Nostr public key and who has been registered with a tenant token.
 */
export class Authenticator {
  constructor(
    private readonly tokens: TokenService,
    private readonly nip98: Nip98Verifier,
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async authenticate(request: FastifyRequest): Promise<Principal> {
    const header = request.headers.authorization;
    if (!header) throw unauthorized('missing Authorization header (Bearer <token> or Nostr <NIP-98 event>)');
    const space = header.indexOf(' ');
    const scheme = space < 0 ? header : header.slice(0, space);
    if (scheme.toLowerCase() === 'bearer') {
      const principal = await this.tokens.authenticate(header.slice(space + 1).trim());
      if (!principal) throw unauthorized('unknown, revoked or expired token');
      return principal;
    }
    if (scheme.toLowerCase() === 'nostr') {
      const url = `${request.protocol}://${request.host}${request.url}`;
      const result = this.nip98.verify(header, {
        url,
        method: request.method,
        body: request.rawBody,
        nowMs: this.clock.now(),
      });
      if (!result.ok) throw unauthorized(result.reason);
      if (!(await this.store.hasTenant(result.pubkey, this.clock.now()))) {
        throw unauthorized('this Nostr public key is not a registered tenant');
      }
      return { role: 'tenant', owner: result.pubkey, actor: `tenant:${result.pubkey}` };
    }
    throw unauthorized('unsupported Authorization scheme; use Bearer or Nostr');
  }
}

export function requireAdmin(principal: Principal): void {
  if (principal.role !== 'admin') throw new BosunError('forbidden', 'this needs an admin token');
}
