import { createHash } from 'node:crypto';
import { z } from 'zod';
import { describeIssues } from '../domain/relay.js';
import { NIP98_KIND, verifyEventSignature } from '../nostr/nip98.js';

/**
 * NIP-98 for bosun's own API: a tenant signs each request with its Nostr key. The header is judged
 * before the request's body is read (shape, kind, time, URL, method, signature); only the payload
 * hash waits for the body. Checks run cheapest first, so stale or misdirected headers never cost a
 * signature verification. Replays are the Authenticator's business (spent ids live in the database).
 */
export const NIP98_WINDOW_SECONDS = 60;

const hex = (length: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${length}}$`), `must be ${length} hex digits`);

/** The whole event, every tag element included: nothing of another shape reaches the checks. */
const eventSchema = z.object({
  id: hex(64),
  pubkey: hex(64),
  created_at: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  kind: z.number().int(),
  tags: z.array(z.array(z.string())),
  content: z.string(),
  sig: hex(128),
});

export type Nip98Event = z.output<typeof eventSchema>;

export type Nip98Result = { ok: true; event: Nip98Event } | { ok: false; reason: string };

export class Nip98Verifier {
  /** Everything but the payload hash: needs the request line and headers only. */
  verify(header: string, req: { url: string; method: string; nowMs: number }): Nip98Result {
    const space = header.indexOf(' ');
    if (space < 0 || header.slice(0, space).toLowerCase() !== 'nostr') {
      return { ok: false, reason: 'invalid authorization header format' };
    }
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(header.slice(space + 1), 'base64').toString('utf8'));
    } catch {
      return { ok: false, reason: 'invalid NIP-98 event encoding' };
    }
    const parsed = eventSchema.safeParse(json);
    if (!parsed.success)
      return { ok: false, reason: `invalid NIP-98 event: ${describeIssues(parsed.error)}` };
    const event = parsed.data;
    if (event.kind !== NIP98_KIND) return { ok: false, reason: `NIP-98 event kind must be ${NIP98_KIND}` };
    const now = Math.floor(req.nowMs / 1000);
    if (Math.abs(now - event.created_at) > NIP98_WINDOW_SECONDS) {
      return { ok: false, reason: 'NIP-98 event is outside the allowed time window' };
    }
    if (tag(event, 'u') !== req.url) {
      return { ok: false, reason: 'NIP-98 u tag does not match the request URL' };
    }
    if (tag(event, 'method')?.toUpperCase() !== req.method.toUpperCase()) {
      return { ok: false, reason: 'NIP-98 method tag does not match the request method' };
    }
    if (!verifyEventSignature(event)) return { ok: false, reason: 'invalid NIP-98 event signature' };
    return { ok: true, event };
  }

  /** A non-empty body must be the one the event's payload tag hashes. */
  payloadMatches(event: Nip98Event, body: string | undefined): boolean {
    if (body === undefined || body.length === 0) return true;
    return tag(event, 'payload') === createHash('sha256').update(body).digest('hex');
  }

  /**
   * Until when (ms) a spent event's id must be remembered: past the last `now` at which it passes
   * the time check (|floor(now / 1000) − created_at| ≤ the window), plus a window more for replicas
   * whose clocks run behind the one that forgets it.
   */
  spentUntil(event: Nip98Event): number {
    return (event.created_at + 2 * NIP98_WINDOW_SECONDS + 1) * 1000;
  }
}

const tag = (event: Nip98Event, name: string) => event.tags.find((t) => t[0] === name)?.[1];
