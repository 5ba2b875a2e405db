/** zooid's API auth: a NIP-98 header for the URL zooid rebuilds, by a pubkey in API_WHITELIST. */
import type { IncomingMessage } from 'node:http';
import type { Clock } from '../../../domain/clock.js';
import { verifyNip98 } from '../../../nostr/nip98.js';
import { errorReply, type Reply } from './reply.js';
import type { ZooidVariant } from './types.js';

/** API_WHITELIST: exact strings after trimming (an npub never matches). */
export const parseWhitelist = (list: readonly string[] | string): string[] =>
  (typeof list === 'string' ? list.split(',') : [...list]).map((s) => s.trim()).filter((s) => s !== '');

export interface AuthContext {
  clock: Clock;
  variant: ZooidVariant;
  whitelist: ReadonlySet<string>;
}

/** The signer's pubkey, or the reply that refuses the request. */
export function authenticate(
  ctx: AuthContext,
  req: IncomingMessage,
  path: string,
): { pubkey: string } | { reply: Reply } {
  const scheme = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  const verdict = verifyNip98(req.headers.authorization, {
    url: `${scheme}://${req.headers.host ?? ''}${path}`,
    method: req.method ?? '',
    now: ctx.clock.now(),
    windowSeconds: ctx.variant === 'v2' ? 60 : null,
  });
  if (!verdict.ok) return { reply: errorReply(verdict.status, verdict.error) };
  if (!ctx.whitelist.has(verdict.pubkey)) return { reply: errorReply(403, 'pubkey not in whitelist') };
  return { pubkey: verdict.pubkey };
}
