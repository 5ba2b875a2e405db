import type { Relay } from '../domain/relay.js';

/**
 * The relays as this process last read or committed them, so a write does not have to read the
 * row it is about to replace. Safe because every write is guarded by the row's rev: an entry that
 * another process (or a lost race) made stale fails its compare-and-set, and Command drops it and
 * reads the row again. Reads served to callers (Query) never come from here.
 *
 * Bounded (least recently used out first); an entry is only ever replaced by a higher rev, so a
 * slow writer cannot put back an older relay than a faster one already recorded.
 */
export class RelayCache {
  private readonly entries = new Map<string, Relay>();

  constructor(private readonly capacity = 10_000) {}

  get(id: string): Relay | undefined {
    const relay = this.entries.get(id);
    if (relay) {
      // Map keeps insertion order: re-inserting makes this the most recently used.
      this.entries.delete(id);
      this.entries.set(id, relay);
    }
    return relay;
  }

  set(relay: Relay): void {
    const cached = this.entries.get(relay.id);
    if (cached && cached.rev >= relay.rev) return;
    this.entries.delete(relay.id);
    this.entries.set(relay.id, relay);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }
}
