import { truncateError } from '../domain/errors.js';
import { publicKeyOf } from '../domain/keys.js';
import { LIVE_FIELDS, type LiveDiff, type LiveStatus } from '../domain/live.js';
import type { Relay } from '../domain/relay.js';

/** What the transport (src/live/fetch.ts) got from the relay's host. */
export type FetchOutcome = { ok: true; doc: Record<string, unknown> } | { ok: false; error: string };

/** What a relay's NIP-11 document should say, from the record. */
export interface LiveExpectation {
  /** Active and not deleted: zooid should serve it. */
  served: boolean;
  /** Why it should not be served ('inactive' / 'deleted'); '' when it should. */
  reason: '' | 'inactive' | 'deleted';
  info: Record<(typeof LIVE_FIELDS)[number], string>;
  /** The public key of the stored secret: the relay's own identity (`self`). */
  self: string;
}

const MAX_GOT = 4096;

/** One check's verdict. `unknown` never comes from a check. */
export interface Observation {
  status: Exclude<LiveStatus, 'unknown'>;
  error: string;
  diff: LiveDiff | null;
}

/** The public key of a secret, derived once per secret (a scalar multiplication per check adds up). */
const selfOf = new Map<string, string>();

export function expectationOf(relay: Pick<Relay, 'config' | 'deletedAt' | 'secret'>): LiveExpectation {
  let self = selfOf.get(relay.secret);
  if (self === undefined) {
    self = publicKeyOf(relay.secret);
    if (selfOf.size >= 20_000) selfOf.delete(selfOf.keys().next().value!);
    selfOf.set(relay.secret, self);
  }
  const reason = relay.deletedAt !== null ? 'deleted' : relay.config.inactive ? 'inactive' : '';
  const { name, description, icon, pubkey } = relay.config.info;
  return { served: reason === '', reason, info: { name, description, icon, pubkey }, self };
}

/**
 * Compares what zooid serves with what the record says (docs/zooid-contract.md §5). zooid leaves
 * empty strings out of the document, so a missing field equals ''.
 */
export function compareLive(want: LiveExpectation, got: FetchOutcome): Observation {
  if (!want.served) {
    // A deleted relay's host may belong to another relay by now: only its own key is its.
    const another = want.reason === 'deleted' && got.ok && got.doc.self !== want.self;
    if (!got.ok || another) return { status: 'not_served', error: '', diff: null };
    return { status: 'unexpected', error: `${want.reason} relay is still served`, diff: null };
  }
  if (!got.ok) return { status: 'not_served', error: truncateError(got.error || 'not served'), diff: null };
  const self = got.doc.self;
  if (self !== want.self) {
    const error =
      typeof self === 'string'
        ? `served under another key: self is ${self.slice(0, 16)}…, the stored secret's is ${want.self.slice(0, 16)}…`
        : 'the document has no self (the public key of the relay secret)';
    return { status: 'wrong_identity', error: truncateError(error), diff: null };
  }
  const diff: LiveDiff = {};
  for (const field of LIVE_FIELDS) {
    const value = got.doc[field];
    const served = typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value);
    // Bounded: the stored diff must not grow with whatever a host answers (4096: the longest field).
    if (served.length > MAX_GOT)
      diff[field] = { want: want.info[field], got: `${served.slice(0, MAX_GOT)}…` };
    else if (served !== want.info[field]) diff[field] = { want: want.info[field], got: served };
  }
  const fields = Object.keys(diff);
  if (fields.length === 0) return { status: 'live', error: '', diff: null };
  return { status: 'stale', error: truncateError(`served document differs: ${fields.join(', ')}`), diff };
}
