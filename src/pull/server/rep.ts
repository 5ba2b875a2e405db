/**
 * Server side of the wire format (docs/stream-protocol.md §3): a relay's RelayRep and the SSE frames
 * that carry it, each serialized ONCE and shared as bytes by every connection that gets it.
 */
import type { Relay } from '../../domain/relay.js';
import { type BlossomS3, zooidBody } from '../../push/zooid/body.js';
import {
  DELETE_EVENT,
  PATCH_EVENT,
  PUT_EVENT,
  RECONNECT_EVENT,
  type RelayRep,
  relayPath,
} from '../protocol.js';

/**
 * The relay as agents see it: `config` is exactly what push sync sends zooid (Blossom S3 injected,
 * no secret), plus the secret and the rotated credentials still listed. Expired entries are NOT
 * filtered here: equal version ⇒ equal content (§9.3); clients strip them, the expiry chore drops
 * them with a new version.
 */
export function relayRep(relay: Relay, blossomS3: BlossomS3 | null): RelayRep {
  return {
    id: relay.id,
    version: relay.version,
    config: zooidBody(relay, { withSecret: false, blossomS3 }) as unknown as Record<string, unknown>,
    secret: relay.secret,
    expiring: relay.expiring.map((c) => ({ name: c.name, value: c.value, expiresAt: c.expiresAt })),
  };
}

export const repJson = (relay: Relay, blossomS3: BlossomS3 | null): string =>
  JSON.stringify(relayRep(relay, blossomS3));

/** `: hb` — a comment, so it never counts as an event. */
export const HEARTBEAT_FRAME = Buffer.from(': hb\n\n');

export function patchFrame(id: string, json: string): Buffer {
  return Buffer.from(
    `event: ${PATCH_EVENT}\ndata: {"path":${JSON.stringify(relayPath(id))},"data":${json}}\n\n`,
    'utf8',
  );
}

export function deleteFrame(id: string, version: number): Buffer {
  return Buffer.from(
    `event: ${DELETE_EVENT}\ndata: {"path":${JSON.stringify(relayPath(id))},"version":${version}}\n\n`,
    'utf8',
  );
}

export function reconnectFrame(reason: string, delayMs: number): Buffer {
  return Buffer.from(`event: ${RECONNECT_EVENT}\ndata: ${JSON.stringify({ reason, delayMs })}\n\n`, 'utf8');
}

/**
 * A put from relay entries whose rep JSON is already serialized: the big string is assembled, never
 * re-stringified. `unchanged` makes it a delta put (§8).
 */
export function putFrame(
  epoch: string,
  entries: Iterable<readonly [string, string]>,
  unchanged?: readonly string[],
): Buffer {
  const parts: string[] = [];
  for (const [id, json] of entries) parts.push(`${JSON.stringify(id)}:${json}`);
  const delta = unchanged ? `,"delta":true,"unchanged":${JSON.stringify(unchanged)}` : '';
  return Buffer.from(
    `event: ${PUT_EVENT}\ndata: {"path":"/","epoch":${JSON.stringify(epoch)},"data":{"relays":{${parts.join(',')}}${delta}}}\n\n`,
    'utf8',
  );
}
