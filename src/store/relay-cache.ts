import type { Activity } from '../domain/activity.js';
import type { Relay } from '../domain/relay.js';

interface Entry {
  relay: Relay;
  /** The activity of the commit that produced this relay here; undefined when it was read. */
  activityId: number | undefined;
}

/**
 * The relays as this process last read or committed them, so a write does not have to read the
 * row it is about to replace. Safe because every write is guarded by the row's rev: an entry that
 * another process (or a lost race) made stale fails its compare-and-set, and Command drops it and
 * reads the row again. Reads served to callers (Query) never come from here.
 *
 * Other processes' changes that reach this one as notifications (PostgreSQL replicas' change feed)
 * evict their relays at once, so a replica rarely pays a failed compare-and-set for them.
 *
 * Bounded (least recently used out first); an entry is only ever replaced by a higher rev, so a
 * slow writer cannot put back an older relay than a faster one already recorded.
 */
export class RelayCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity = 10_000) {}

  get(id: string): Relay | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    // Map keeps insertion order: re-inserting makes this the most recently used.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry.relay;
  }

  set(relay: Relay, activityId?: number): void {
    const cached = this.entries.get(relay.id);
    if (cached && cached.relay.rev >= relay.rev) return;
    this.entries.delete(relay.id);
    this.entries.set(relay.id, { relay, activityId });
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  /** Committed activities (any process's): each one newer than an entry's own commit evicts it. */
  changed(activities: readonly Activity[]): void {
    for (const a of activities) {
      const entry = this.entries.get(a.relayId);
      if (entry && (entry.activityId === undefined || a.id > entry.activityId)) {
        this.entries.delete(a.relayId);
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
