import { createHash } from 'node:crypto';
import { NIP98_KIND, type NostrEvent, verifyEventSignature } from '../nostr/nip98.js';

/**
 * NIP-98 for bosun's own API: a tenant signs each request with its Nostr key. Checks run cheapest
 * first (shape, kind, time, URL, method, payload) so forged or stale headers never cost a signature
 * verification; seen event ids are remembered for the window so a captured header can't be replayed.
 */
export const NIP98_WINDOW_SECONDS = 60;

export type Nip98Result = { ok: true; pubkey: string } | { ok: false; reason: string };

export class Nip98Verifier {
  private readonly seen = new Map<string, number>();

  constructor(private readonly maxSeen = 100_000) {}

  verify(
    header: string,
    req: { url: string; method: string; body: string | undefined; nowMs: number },
  ): Nip98Result {
    const space = header.indexOf(' ');
    if (space < 0 || header.slice(0, space).toLowerCase() !== 'nostr') {
      return { ok: false, reason: 'invalid authorization header format' };
    }
    let event: NostrEvent;
    try {
      event = JSON.parse(Buffer.from(header.slice(space + 1), 'base64').toString('utf8')) as NostrEvent;
    } catch {
      return { ok: false, reason: 'invalid NIP-98 event encoding' };
    }
    if (typeof event !== 'object' || event === null || !Array.isArray(event.tags)) {
      return { ok: false, reason: 'invalid NIP-98 event' };
    }
    if (event.kind !== NIP98_KIND) return { ok: false, reason: `NIP-98 event kind must be ${NIP98_KIND}` };
    const now = Math.floor(req.nowMs / 1000);
    if (typeof event.created_at !== 'number' || Math.abs(now - event.created_at) > NIP98_WINDOW_SECONDS) {
      return { ok: false, reason: 'NIP-98 event is outside the allowed time window' };
    }
    const tag = (name: string) => event.tags.find((t) => Array.isArray(t) && t[0] === name)?.[1];
    if (tag('u') !== req.url) return { ok: false, reason: 'NIP-98 u tag does not match the request URL' };
    if (tag('method')?.toUpperCase() !== req.method.toUpperCase()) {
      return { ok: false, reason: 'NIP-98 method tag does not match the request method' };
    }
    if (req.body !== undefined && req.body.length > 0) {
      const digest = createHash('sha256').update(req.body).digest('hex');
      if (tag('payload') !== digest)
        return { ok: false, reason: 'NIP-98 payload tag does not match the body' };
    }
    if (!verifyEventSignature(event)) return { ok: false, reason: 'invalid NIP-98 event signature' };
    if (!this.remember(event.id, req.nowMs)) return { ok: false, reason: 'NIP-98 event was already used' };
    return { ok: true, pubkey: event.pubkey };
  }

  private remember(id: string, nowMs: number): boolean {
    const horizon = nowMs - 2 * NIP98_WINDOW_SECONDS * 1000;
    if (this.seen.size >= this.maxSeen) {
      for (const [key, at] of this.seen) {
        if (at > horizon && this.seen.size < this.maxSeen) break;
        this.seen.delete(key);
      }
    }
    if (this.seen.has(id)) return false;
    this.seen.set(id, nowMs);
    return true;
  }
}
