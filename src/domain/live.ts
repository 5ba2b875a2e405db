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

/** When to repair a relay that stays `stale` or `not_served`. */
export interface RepairPolicy {
  /** zooid reloads files asynchronously: a repair waits this long first (default 30 s). */
  graceMs: number;
  /** After a repair that did not help, the next waits this long, doubling each time up to capMs. */
  backoffMs: number;
  capMs: number;
}

export const DEFAULT_REPAIR: RepairPolicy = { graceMs: 30_000, backoffMs: 5 * 60_000, capMs: 3_600_000 };

/** One check's verdict, as compared (src/live/compare.ts). */
export interface LiveObservation {
  status: Exclude<LiveStatus, 'unknown'>;
  error: string;
  diff: LiveDiff | null;
}

export interface LiveTransition {
  live: LiveState;
  /** The status changed: an `observe_relay` activity is due. */
  changed: boolean;
  /** A repair (full PUT) is due now; `live` already counts it and schedules the next one. */
  repair: boolean;
}

/**
 * The relay's next live state after a check at `now`. A repairable status (stale, not_served of a
 * relay that should be served) gets its first repair once it has lasted `graceMs`, the next ones on
 * a doubling backoff; `canRepair` false (push sync has not finished with the relay) postpones it.
 * A status that changes starts over.
 */
export function nextLiveState(
  prev: LiveState,
  seen: LiveObservation,
  now: number,
  opts: { shouldServe: boolean; canRepair: boolean; policy: RepairPolicy },
): LiveTransition {
  const changed = seen.status !== prev.status;
  const repairable = opts.shouldServe && REPAIRABLE.has(seen.status);
  const since = changed || prev.since === null ? now : prev.since;
  let repairs = changed ? 0 : prev.repairs;
  let nextRepairAt: number | null = null;
  if (repairable)
    nextRepairAt = changed || prev.nextRepairAt === null ? now + opts.policy.graceMs : prev.nextRepairAt;
  let repair = false;
  if (repairable && opts.canRepair && nextRepairAt !== null && now >= nextRepairAt) {
    repair = true;
    repairs++;
    nextRepairAt = now + Math.min(opts.policy.capMs, opts.policy.backoffMs * 2 ** (repairs - 1));
  }
  return {
    live: {
      status: seen.status,
      checkedAt: now,
      since,
      error: seen.error,
      diff: seen.diff,
      repairs,
      nextRepairAt,
    },
    changed,
    repair,
  };
}
