import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../domain/clock.js';
import type { Principal } from '../../domain/principal.js';

/**
 * Short-lived, single-use tickets that let a browser's EventSource (which cannot send headers) open
 * the activity stream without putting the long-lived token in a URL. A ticket is an HMAC-signed
 * copy of the caller's principal with an expiry and a nonce, signed with a key that lives only in
 * this process; it opens one stream once and only that route accepts it.
 */
export class StreamTickets {
  private readonly key = randomBytes(32);
  /** Nonces already redeemed, kept until their ticket would have expired anyway. */
  private readonly used = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    readonly ttlMs = 60_000,
  ) {}

  issue(principal: Principal): { ticket: string; expiresAt: number } {
    const expiresAt = this.clock.now() + this.ttlMs;
    const claims: TicketClaims = { p: principal, e: expiresAt, n: randomBytes(12).toString('base64url') };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { ticket: `${body}.${this.sign(body)}`, expiresAt };
  }

  /** The ticket's principal, or a reason it is refused. Redeeming spends the ticket. */
  redeem(ticket: string): { ok: true; principal: Principal } | { ok: false; reason: string } {
    const now = this.clock.now();
    this.sweep(now);
    const dot = ticket.indexOf('.');
    if (dot < 1 || ticket.length > 2048) return { ok: false, reason: 'malformed stream ticket' };
    const body = ticket.slice(0, dot);
    const mac = Buffer.from(ticket.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.sign(body), 'base64url');
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
      return {
        ok: false,
        reason: 'invalid stream ticket (tickets are valid only on the server that issued them)',
      };
    }
    let claims: TicketClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TicketClaims;
    } catch {
      return { ok: false, reason: 'malformed stream ticket' };
    }
    if (claims.e <= now) return { ok: false, reason: 'stream ticket expired; ask for a new one' };
    if (this.used.has(claims.n))
      return { ok: false, reason: 'stream ticket already used; ask for a new one' };
    this.used.set(claims.n, claims.e);
    return { ok: true, principal: claims.p };
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }

  private sweep(now: number): void {
    for (const [nonce, exp] of this.used) if (exp <= now) this.used.delete(nonce);
  }
}

interface TicketClaims {
  p: Principal;
  e: number;
  n: string;
}
