/**
 * What zooid really serves for a relay, read back over NIP-11 (docs/zooid-contract.md §5) and kept
 * beside the sync state: `sync` says zooid accepted the config, `live` says it loaded it.
 */
export const LIVE_STATUSES = [
  'live',
  'stale',
  'not_served',
  'unexpected',
  'wrong_identity',
  'unknown',
] as const;
export type LiveStatus = (typeof LIVE_STATUSES)[number];

/** The NIP-11 fields compared with the record. */
export const LIVE_FIELDS = ['name', 'description', 'icon', 'pubkey'] as const;
export type LiveField = (typeof LIVE_FIELDS)[number];

/** Per differing field: what the record says and what zooid serves ('' when it leaves it out). */
export type LiveDiff = Partial<Record<LiveField, { want: string; got: string }>>;

export interface LiveState {
  status: LiveStatus;
  /** Time of the last check; null: never checked. */
  checkedAt: number | null;
  /** Since when the status is what it is (the first check that saw it). */
  since: number | null;
  /** Why the relay is not live, at most 120 characters; '' when it is (or nothing is known). */
  error: string;
  /** Only for `stale`. */
  diff: LiveDiff | null;
  /** Repairs (full PUTs) sent since the relay was last live or changed status. */
  repairs: number;
  /** Earliest time of the next repair (backoff); null: none planned. */
  nextRepairAt: number | null;
}

export const UNKNOWN_LIVE: LiveState = Object.freeze({
  status: 'unknown',
  checkedAt: null,
  since: null,
  error: '',
  diff: null,
  repairs: 0,
  nextRepairAt: null,
}) as LiveState;

/** Statuses push sync can fix by saying the config again (after a grace for zooid's reload). */
export const REPAIRABLE: ReadonlySet<LiveStatus> = new Set(['stale', 'not_served']);

/**
 * Whether the status needs someone's attention: everything but `live`, `unknown`, and `not_served`
 * of a relay that should not be served (inactive or deleted), which is what is wanted.
 */
export function liveProblem(status: LiveStatus, shouldServe: boolean): boolean {
  if (status === 'live' || status === 'unknown') return false;
  if (status === 'not_served') return shouldServe;
  return true;
}
