/**
 * One fleet's fan-out (docs/stream-protocol.md §9). Every connection of the fleet that has had its
 * put has been sent exactly the hub's `entries` (id -> version, and the rep's bytes), so one frame
 * per change serves them all and "never send a version ≤ one already sent" (§9.2) is one check per
 * change, not one per connection.
 *
 * Work runs one step at a time:
 * - a *full sync* reads the fleet from the store, sends existing connections what changed since
 *   (deletes first), then gives every waiting joiner its put — full (the same bytes for all of them)
 *   or delta (§8). Joiners that arrive meanwhile wait for the next full sync, whose read starts after
 *   they subscribed (§9.1): the server's notifier subscription is permanent, so any commit after
 *   that read comes later as an offer.
 * - *offers* are relays the server read after a change notification; each becomes a patch (in this
 *   fleet, newer than sent) or a delete (left the fleet or deleted, while we had sent it live).
 * Reads are monotonic, so an offer read before a full sync is simply older than what it found and is
 * skipped by the version check.
 */
import type { Clock, TimerHandle } from '../../domain/clock.js';
import { CoalescedRun } from '../../domain/coalesced-run.js';
import type { Relay } from '../../domain/relay.js';
import { deleteFrame, patchFrame, putFrame } from './rep.js';

/** What the hub needs of a connection. */
export interface HubConn {
  /** Resume state (§8) when the client's epoch matched: ids -> versions it holds. */
  held: Map<string, number> | undefined;
  readonly closed: boolean;
  /** Writes a frame; false (and the connection is being dropped) when it is closed or too slow. */
  write(frame: Buffer): boolean;
  /** The put was written: from now on it gets every frame of the hub. */
  joined(putBytes: number): void;
  /** Ends the response without a put (e.g. the store failed): the client retries. */
  end(): void;
}

export interface HubDeps {
  clock: Clock;
  /** Counts stream events written (puts, patches, deletes; not heartbeats), for /metrics. */
  onSent?: (events: number) => void;
  epoch(): Promise<string>;
  /** Live relays of a fleet. */
  readFleet(fleet: string): Promise<Relay[]>;
  /** Relays by id (deleted included); unknown ids are left out. */
  readRelays(ids: string[]): Promise<Relay[]>;
  repJson(relay: Relay): string;
  /** A full re-read of the fleet every this often, in case a notification was missed (0: never). */
  resyncMs: number;
  /** Wait before retrying a full sync that failed (e.g. the database was unavailable). */
  retryMs: number;
  /**
   * Joiners within this long of the last read of the fleet are served from what the hub holds (that
   * read plus every change notified since) instead of reading the fleet again: a reconnect storm of
   * a big fleet costs one read per interval, not one per agent. 0: always read.
   */
  reuseReadMs: number;
  onError(err: unknown, fleet: string): void;
  onEmpty(hub: FleetHub): void;
}

/** Sent state of one relay: `json` is the rep's bytes when live, undefined once deleted / moved out. */
interface Entry {
  version: number;
  json: string | undefined;
}

interface Offer {
  relay: Relay;
  json: () => string;
}

export class FleetHub {
  private readonly conns = new Set<HubConn>();
  private joiners: HubConn[] = [];
  /** Joiners taken by a full sync in progress (they count as members until served). */
  private inFlight = new Set<HubConn>();
  private readonly entries = new Map<string, Entry>();
  private pending = new Map<string, Offer>();
  /** The hub's work (see `drain`), one run at a time; anything that needs work requests a run. */
  private readonly work = new CoalescedRun({
    task: () => this.drain(),
    onError: (err) => this.failed(err),
    stopped: () => this.disposed,
  });
  private joinScheduled = false;
  private fullDue = false;
  private disposed = false;
  /** The full put of `entries`, shared by every joiner without resume state until entries change. */
  private putCache: Buffer | undefined;
  private timer: TimerHandle | undefined;
  /** When the fleet was last read (clock ms); undefined: never. */
  private readAt: number | undefined;

  constructor(
    readonly fleet: string,
    private readonly deps: HubDeps,
  ) {
    this.armResync(deps.resyncMs);
  }

  get connections(): number {
    return this.conns.size;
  }

  get joining(): number {
    return this.joiners.length;
  }

  /** Live relays currently sent (for stats and tests). */
  get relays(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.json !== undefined) n++;
    return n;
  }

  join(conn: HubConn): void {
    this.joiners.push(conn);
    // Joins wait for the end of this turn of the event loop: in a reconnect storm every request that
    // arrived meanwhile shares one read of the fleet (and one full put), instead of one each.
    // A run in progress serves the joiner before it ends (requesting covers a run about to end).
    if (this.work.current) {
      this.work.request();
      return;
    }
    if (this.joinScheduled) return;
    this.joinScheduled = true;
    setImmediate(() => {
      this.joinScheduled = false;
      this.work.request();
    });
  }

  leave(conn: HubConn): void {
    this.conns.delete(conn);
    this.inFlight.delete(conn);
    const i = this.joiners.indexOf(conn);
    if (i >= 0) this.joiners.splice(i, 1);
    if (this.conns.size === 0 && this.joiners.length === 0 && this.inFlight.size === 0)
      this.deps.onEmpty(this);
  }

  /** A relay read after a change notification; `json` serializes its rep (memoized by the caller). */
  offer(relay: Relay, json: () => string): void {
    this.pending.set(relay.id, { relay, json });
    this.work.request();
  }

  /** Re-read the whole fleet soon (a notification may have been missed). */
  resync(): void {
    this.fullDue = true;
    this.work.request();
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Frames to every connection that has had its put. */
  broadcast(frame: Buffer): void {
    let sent = 0;
    for (const conn of this.conns) if (conn.write(frame)) sent++;
    this.deps.onSent?.(sent);
  }

  private armResync(ms: number): void {
    if (ms <= 0 || this.disposed) return;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = undefined;
      this.resync();
      this.armResync(this.deps.resyncMs);
    }, ms);
  }

  /** Full syncs, offers and joiners, until none is left. */
  private async drain(): Promise<void> {
    for (;;) {
      if (this.disposed) return;
      if (this.fullDue || (this.joiners.length > 0 && !this.recentlyRead())) await this.fullSync();
      else if (this.pending.size > 0) this.applyPending();
      else if (this.joiners.length > 0) this.serveJoiners(this.joiners.splice(0), await this.deps.epoch());
      else return;
    }
  }

  private failed(err: unknown): void {
    this.deps.onError(err, this.fleet);
    // Joiners got no put: end them so they retry with backoff. Connections that have theirs keep
    // going; the fleet is re-read after a pause.
    for (const j of this.joiners.splice(0)) j.end();
    if (this.timer) this.deps.clock.clearTimeout(this.timer);
    this.armResync(this.deps.retryMs);
    // Offers that arrived while the failing read was in flight (applying them needs no store).
    if (this.pending.size > 0 && this.joiners.length === 0) this.work.request();
  }

  private applyPending(): void {
    const batch = this.pending;
    this.pending = new Map();
    const deletes: Buffer[] = [];
    const patches: Buffer[] = [];
    for (const { relay, json } of batch.values()) this.apply(relay, json, deletes, patches);
    for (const frame of deletes) this.broadcast(frame);
    for (const frame of patches) this.broadcast(frame);
  }

  /** Records a relay read from the store and queues the frame it needs, if any. */
  private apply(relay: Relay, json: () => string, deletes: Buffer[], patches: Buffer[]): void {
    const held = this.entries.get(relay.id);
    if (relay.deletedAt === null && relay.fleet === this.fleet) {
      if (held && held.version >= relay.version) return;
      const bytes = json();
      this.entries.set(relay.id, { version: relay.version, json: bytes });
      this.putCache = undefined;
      if (this.conns.size > 0) patches.push(patchFrame(relay.id, bytes));
      return;
    }
    // Deleted, or moved to another fleet: a delete with that version, only if we had sent it live.
    if (!held || held.json === undefined || held.version >= relay.version) return;
    this.entries.set(relay.id, { version: relay.version, json: undefined });
    this.putCache = undefined;
    if (this.conns.size > 0) deletes.push(deleteFrame(relay.id, relay.version));
  }

  private recentlyRead(): boolean {
    return this.readAt !== undefined && this.deps.clock.now() - this.readAt < this.deps.reuseReadMs;
  }

  /** Gives each joiner its put from `entries` and makes it a connection of the hub. */
  private serveJoiners(joiners: HubConn[], epoch: string): void {
    for (const conn of joiners) {
      if (conn.closed) continue;
      if (this.disposed) {
        conn.end(); // the server is closing: it reconnects
        continue;
      }
      const put = this.putFor(conn, epoch);
      if (conn.write(put)) {
        this.deps.onSent?.(1);
        this.conns.add(conn);
        conn.joined(put.length);
      }
    }
  }

  private async fullSync(): Promise<void> {
    // Offers already queued were read before this snapshot: it supersedes them.
    this.pending = new Map();
    this.fullDue = false;
    const joiners = this.joiners;
    this.joiners = [];
    for (const j of joiners) this.inFlight.add(j);
    try {
      const epoch = await this.deps.epoch();
      const readAt = this.deps.clock.now();
      const live = await this.deps.readFleet(this.fleet);
      const deletes: Buffer[] = [];
      const patches: Buffer[] = [];
      const seen = new Set<string>();
      for (const relay of live) {
        seen.add(relay.id);
        this.apply(relay, () => this.deps.repJson(relay), deletes, patches);
      }
      const gone: string[] = [];
      for (const [id, e] of this.entries) if (e.json !== undefined && !seen.has(id)) gone.push(id);
      if (gone.length > 0) {
        for (const relay of await this.deps.readRelays(gone)) {
          this.apply(relay, () => this.deps.repJson(relay), deletes, patches);
        }
      }
      for (const frame of deletes) this.broadcast(frame);
      for (const frame of patches) this.broadcast(frame);
      this.readAt = readAt;
      this.serveJoiners(joiners, epoch);
    } catch (err) {
      // Give the joiners back to pump()'s error path.
      this.joiners = [...joiners.filter((j) => !j.closed), ...this.joiners];
      throw err;
    } finally {
      this.inFlight.clear();
    }
  }

  private putFor(conn: HubConn, epoch: string): Buffer {
    const held = conn.held;
    conn.held = undefined;
    if (!held) {
      this.putCache ??= putFrame(epoch, this.liveEntries());
      return this.putCache;
    }
    const changed: [string, string][] = [];
    const unchanged: string[] = [];
    for (const [id, e] of this.entries) {
      if (e.json === undefined) continue;
      if (held.get(id) === e.version) unchanged.push(id);
      else changed.push([id, e.json]);
    }
    return putFrame(epoch, changed, unchanged);
  }

  private *liveEntries(): Generator<[string, string]> {
    for (const [id, e] of this.entries) if (e.json !== undefined) yield [id, e.json];
  }
}
