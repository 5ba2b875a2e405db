/**
 * What the stream client holds per relay and the version table of docs/stream-protocol.md §4. Pure:
 * no I/O, no callbacks; the StreamManager asks what to do, runs the callback, then records.
 */
import type { RelayRep } from '../protocol.js';

/** Tombstones live at least this long, then may be dropped. */
export const TOMBSTONE_TTL_MS = 60 * 60_000;

/** live@h. `rep` is absent for entries restored from an agent's saved state (no addRelay for them). */
export interface LiveEntry {
  kind: 'live';
  version: number;
  rep: RelayRep | undefined;
  /** Digest of the rep as received, to notice a changed rep at an unchanged version. */
  digest: string | undefined;
}
/** tomb@h: deleted at version h, remembered so a late, older upsert cannot resurrect it. */
export interface TombEntry {
  kind: 'tomb';
  version: number;
  since: number;
}
export type Held = LiveEntry | TombEntry;

export type UpsertDecision =
  | { action: 'add' }
  | { action: 'update'; previousVersion: number }
  | { action: 'none'; contentDiffers: boolean };

/**
 * The upsert rows of §4. With `epochReset` (a put from another epoch) old versions are void: any
 * other version of a live relay applies as an update, even a lower one.
 */
export function decideUpsert(
  held: Held | undefined,
  version: number,
  digest: string | undefined,
  epochReset = false,
): UpsertDecision {
  if (!held) return { action: 'add' };
  if (held.kind === 'live') {
    if (version > held.version || (epochReset && version !== held.version)) {
      return { action: 'update', previousVersion: held.version };
    }
    const contentDiffers =
      version === held.version && digest !== undefined && held.digest !== undefined && digest !== held.digest;
    return { action: 'none', contentDiffers };
  }
  if (version > held.version || epochReset) return { action: 'add' };
  return { action: 'none', contentDiffers: false };
}

/** The delete rows of §4: `delete` calls deleteRelay, `tombstone` records without a callback. */
export type DeleteDecision = 'delete' | 'tombstone' | 'none';

export function decideDelete(held: Held | undefined, version: number): DeleteDecision {
  if (!held) return 'tombstone';
  if (version <= held.version) return 'none';
  return held.kind === 'live' ? 'delete' : 'tombstone';
}

const ascending = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function sortIds(ids: Iterable<string>): string[] {
  return [...ids].sort(ascending);
}

export class RelayState {
  /** The server's data lineage, from the last fully applied put (or the saved state). */
  epoch: string | undefined;
  private readonly held = new Map<string, Held>();

  constructor(initial?: { epoch: string; relays: Record<string, number> }) {
    if (!initial) return;
    this.epoch = initial.epoch;
    for (const [id, version] of Object.entries(initial.relays)) {
      this.held.set(id, { kind: 'live', version, rep: undefined, digest: undefined });
    }
  }

  get(id: string): Held | undefined {
    return this.held.get(id);
  }

  setLive(id: string, version: number, rep: RelayRep | undefined, digest: string | undefined): void {
    this.held.set(id, { kind: 'live', version, rep, digest });
  }

  setTomb(id: string, version: number, now: number): void {
    this.held.set(id, { kind: 'tomb', version, since: now });
  }

  /** Live ids and versions, ascending id. */
  liveVersions(): [string, number][] {
    const out: [string, number][] = [];
    for (const id of sortIds(this.held.keys())) {
      const h = this.held.get(id)!;
      if (h.kind === 'live') out.push([id, h.version]);
    }
    return out;
  }

  /** A new epoch voids every tombstone. */
  dropTombstones(): void {
    for (const [id, h] of this.held) if (h.kind === 'tomb') this.held.delete(id);
  }

  /** Drops tombstones at least `TOMBSTONE_TTL_MS` old. */
  pruneTombstones(now: number): void {
    for (const [id, h] of this.held)
      if (h.kind === 'tomb' && now - h.since >= TOMBSTONE_TTL_MS) this.held.delete(id);
  }

  /**
   * Step (1) of a put: the live ids absent from its membership (entries, refused keys and, for a
   * delta put, `unchanged`), ascending. They are deleted (deleteRelay(id, null)) before any upsert.
   */
  omittedBy(membership: ReadonlySet<string>): string[] {
    return this.liveVersions()
      .map(([id]) => id)
      .filter((id) => !membership.has(id));
  }
}
