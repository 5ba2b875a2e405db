import type { FastifyRequest } from 'fastify';
import type { Nip98Event, Nip98Verifier } from '../auth/nip98.js';
import type { Credential, TokenService } from '../auth/tokens.js';
import type { Clock } from '../domain/clock.js';
import { BosunError } from '../domain/errors.js';
import { type Principal, tenantPrincipal } from '../domain/principal.js';
import type { Store } from '../store/port.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    /** What signed the principal in (streams and tickets re-check it while they live). */
    credential?: Credential;
    rawBody?: string;
    /** A NIP-98 event that passed every check the headers allow; its payload waits for the body. */
    nostrEvent?: Nip98Event;
  }
}

const unauthorized = (message: string) => new BosunError('unauthorized', message);

/** Methods that change nothing: an identical request twice is harmless, so their events may repeat. */
const SAFE_METHODS = new Set(['GET', 'HEAD']);

/**
 * Resolves the caller: `Bearer <token>` (admin, tenant, agent) or `Nostr <NIP-98 event>` for a
 * tenant whose owner id is its Nostr public key and who has been registered with a tenant token.
 *
 * In two steps, so a hostile client never makes bosun read its body: `beforeBody` (onRequest)
 * refuses everything but a good token or a well-formed, signed, fresh event of a registered tenant
 * for this URL and method; `afterBody` (preHandler) checks a NIP-98 payload hash and spends the
 * event's id in the database, so a state-changing event is accepted once by every replica, also
 * after a restart. Only events that passed every check are spent: refusals leave no trace.
 */
export class Authenticator {
  constructor(
    private readonly tokens: TokenService,
    private readonly nip98: Nip98Verifier,
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async beforeBody(request: FastifyRequest): Promise<void> {
    const header = request.headers.authorization;
    if (!header) throw unauthorized('missing Authorization header (Bearer <token> or Nostr <NIP-98 event>)');
    const space = header.indexOf(' ');
    const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
    if (scheme === 'bearer') {
      const found = space < 0 ? null : await this.tokens.authenticate(header.slice(space + 1).trim());
      if (!found) throw unauthorized('unknown, revoked or expired token');
      request.principal = found.principal;
      request.credential = found.credential;
      return;
    }
    if (scheme === 'nostr') {
      const result = this.nip98.verify(header, {
        url: `${request.protocol}://${request.host}${request.url}`,
        method: request.method,
        nowMs: this.clock.now(),
      });
      if (!result.ok) throw unauthorized(result.reason);
      if (!(await this.store.hasTenant(result.event.pubkey, this.clock.now()))) {
        throw unauthorized('this Nostr public key is not a registered tenant');
      }
      request.nostrEvent = result.event;
      return;
    }
    throw unauthorized('unsupported Authorization scheme; use Bearer or Nostr');
  }

  async afterBody(request: FastifyRequest): Promise<void> {
    const event = request.nostrEvent;
    if (!event) return;
    if (!this.nip98.payloadMatches(event, request.rawBody)) {
      throw unauthorized('NIP-98 payload tag does not match the body');
    }
    if (!SAFE_METHODS.has(request.method.toUpperCase())) {
      const fresh = await this.store.spendNonce(
        `nip98:${event.id}`,
        this.nip98.spentUntil(event),
        this.clock.now(),
      );
      if (!fresh) throw unauthorized('NIP-98 event was already used');
    }
    request.principal = tenantPrincipal(event.pubkey);
    request.credential = { kind: 'nostr', pubkey: event.pubkey };
  }
}

export function requireAdmin(principal: Principal): void {
  if (principal.role !== 'admin') throw new BosunError('forbidden', 'this needs an admin token');
}
