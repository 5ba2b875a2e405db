import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Credential } from '../../auth/tokens.js';
import type { Clock } from '../../domain/clock.js';
import type { Principal } from '../../domain/principal.js';
import type { Store } from '../../store/port.js';

/** The shared secret (Store.sharedSecret) whose bytes sign stream tickets. */
const KEY_NAME = 'dashboard_stream_tickets';

export type Redeemed =
  | { ok: true; principal: Principal; credential: Credential }
  | { ok: false; reason: string };

/**
 * Short-lived, single-use tickets that let a browser's EventSource (which cannot send headers) open
 * the activity stream without putting the long-lived token in a URL. A ticket is an HMAC-signed
 * copy of the caller's principal and credential (a token id or a Nostr key, never a secret) with
 * an expiry and a nonce; it opens one stream once, only that route accepts it, and only while its
 * credential still signs in (a revoked or expired token's tickets are refused).
 *
 * The key and the spent nonces live in the database, so behind a load balancer any replica opens
 * a stream with a ticket another one issued, and no two replicas accept the same ticket.
 */
export class StreamTickets {
  private key: Promise<Buffer> | undefined;

  constructor(
    private readonly store: Pick<Store, 'sharedSecret' | 'spendNonce'>,
    private readonly clock: Clock,
    private readonly isLive: (credential: Credential) => Promise<boolean>,
    readonly ttlMs = 60_000,
  ) {}

  /**
   * Reads (or makes) the signing key now, so issuing a ticket later needs no database write (a
   * full disk would refuse it). A failure is left for the first issue to try again.
   */
  async prepare(): Promise<void> {
    await this.signingKey();
  }

  async issue(principal: Principal, credential: Credential): Promise<{ ticket: string; expiresAt: number }> {
    const key = await this.signingKey();
    const expiresAt = this.clock.now() + this.ttlMs;
    const claims: TicketClaims = {
      p: principal,
      c: credential,
      e: expiresAt,
      n: randomBytes(12).toString('base64url'),
    };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { ticket: `${body}.${sign(key, body)}`, expiresAt };
  }

  /** The ticket's principal, or a reason it is refused. Redeeming spends the ticket. */
  async redeem(ticket: string): Promise<Redeemed> {
    const dot = ticket.indexOf('.');
    if (dot < 1 || ticket.length > 2048) return { ok: false, reason: 'malformed stream ticket' };
    const body = ticket.slice(0, dot);
    const mac = Buffer.from(ticket.slice(dot + 1), 'base64url');
    const expected = Buffer.from(sign(await this.signingKey(), body), 'base64url');
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
      return { ok: false, reason: 'invalid stream ticket' };
    }
    let claims: TicketClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TicketClaims;
    } catch {
      return { ok: false, reason: 'malformed stream ticket' };
    }
    const now = this.clock.now();
    if (claims.e <= now) return { ok: false, reason: 'stream ticket expired; ask for a new one' };
    if (!claims.c || !(await this.isLive(claims.c))) {
      return { ok: false, reason: 'the token this stream ticket was issued to is revoked or expired' };
    }
    if (!(await this.store.spendNonce(`ticket:${claims.n}`, claims.e, now))) {
      return { ok: false, reason: 'stream ticket already used; ask for a new one' };
    }
    return { ok: true, principal: claims.p, credential: claims.c };
  }

  /** Read once per process; a failed read (database down) is tried again on the next call. */
  private signingKey(): Promise<Buffer> {
    this.key ??= this.store.sharedSecret(KEY_NAME).then(
      (hex) => Buffer.from(hex, 'hex'),
      (err: unknown) => {
        this.key = undefined;
        throw err;
      },
    );
    return this.key;
  }
}

function sign(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}

interface TicketClaims {
  p: Principal;
  c: Credential;
  e: number;
  n: string;
}
