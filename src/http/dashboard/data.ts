import { type ActivityView, SYNC_TYPES, viewActivity } from '../../domain/activity.js';
import type { Clock } from '../../domain/clock.js';
import type { LiveStatus } from '../../domain/live.js';
import type { Principal } from '../../domain/principal.js';
import { type Relay, type RelayView, type SyncStatus, viewRelay } from '../../domain/relay.js';
import { DEFAULT_TARGET } from '../../domain/target.js';
import { zooidBody } from '../../push/zooid/body.js';
import type { Query } from '../../query.js';

/** Read models behind the dashboard: each one scoped to what the caller may see, none with a secret. */
export class DashboardData {
  constructor(
    private readonly query: Query,
    private readonly clock: Clock,
  ) {}

  /**
   * Live relays by sync status, and how many are inactive: one grouped count for an admin, the
   * caller's own relays otherwise.
   */
  async counts(
    principal: Principal,
  ): Promise<Record<SyncStatus, number> & { total: number; active: number; inactive: number }> {
    const { byStatus: counts, inactive } = await this.query.relayTally(principal);
    const total = counts.pending + counts.synced + counts.retrying + counts.failed + counts.pull;
    return { ...counts, total, active: total - inactive, inactive };
  }

  /**
   * Relays by live status: one grouped count for an admin (deleted relays only while still served),
   * the caller's own live relays otherwise.
   */
  liveCounts(principal: Principal): Promise<Record<LiveStatus, number>> {
    return this.query.liveTally(principal);
  }

  /** Relays that are not live when they should be (or served when they should not), worst first. */
  async notLive(principal: Principal, limit: number): Promise<RelayView[]> {
    const relays = await this.query.liveProblems(principal, limit);
    return relays.slice(0, limit).map(viewRelay);
  }

  /** Failed relays first (they wait for an operator), then retrying ones by their next attempt. */
  async failing(principal: Principal, limit: number): Promise<RelayView[]> {
    return worstFirst(await this.query.failingRelays(principal, limit), limit);
  }

  /**
   * The caller's live relays by target and sync status: `default` first, then the registered
   * targets by name, then the pull-only fleets (`target: null`). Only targets with relays.
   */
  async byTarget(principal: Principal): Promise<TargetCounts[]> {
    return (await this.tallyByTarget(principal)).byTarget;
  }

  private async tallyByTarget(principal: Principal) {
    const [{ byFleet }, targetOf] = await Promise.all([
      this.query.relayTally(principal),
      this.query.fleetTargets(),
    ]);
    const byTarget = new Map<string | null, TargetCounts>();
    for (const [fleet, counts] of byFleet) {
      const target = targetOf(fleet);
      const into = byTarget.get(target) ?? { target, fleets: [], ...zero(), total: 0 };
      into.fleets.push(fleet);
      for (const status of SYNC_STATUSES) {
        into[status] += counts[status];
        into.total += counts[status];
      }
      byTarget.set(target, into);
    }
    const rank = (t: string | null) => (t === DEFAULT_TARGET ? 0 : t === null ? 2 : 1);
    const sorted = [...byTarget.values()]
      .map((t) => ({ ...t, fleets: t.fleets.sort() }))
      .sort((a, b) => rank(a.target) - rank(b.target) || (a.target ?? '').localeCompare(b.target ?? ''));
    return { byTarget: sorted, byFleet };
  }

  /**
   * One target's share of the caller's relays: its counts by sync status, the fleets pinned to it
   * (with relays the caller sees), and its failing relays (failed first, then retrying by next
   * attempt), read only from the fleets that have any.
   */
  async target(principal: Principal, name: string, limit: number) {
    const { byTarget, byFleet } = await this.tallyByTarget(principal);
    const counts = byTarget.find((t) => t.target === name) ?? {
      target: name,
      fleets: [],
      ...zero(),
      total: 0,
    };
    const failingFleets = counts.fleets.filter((f) => {
      const c = byFleet.get(f);
      return c !== undefined && c.failed + c.retrying > 0;
    });
    const failing = await this.query.failingRelaysOf(principal, failingFleets, limit);
    const { target: _t, fleets, ...byStatus } = counts;
    return { fleets, counts: byStatus, failing: worstFirst(failing, limit) };
  }

  /**
   * A relay, its latest activities (newest first) and what zooid last acknowledged against now.
   * An acknowledgement of a deleted relay that had the id before this one is not shown: it may be
   * another owner's.
   */
  async relay(principal: Principal, id: string, historyLimit = 50) {
    const relay = await this.query.getRelay(principal, id);
    const ours = ackedThisRelay(relay);
    return {
      relay: viewRelay(relay),
      history: await this.history(principal, id, historyLimit),
      acked: {
        version: ours ? relay.sync.syncedVersion : 0,
        at:
          !ours || relay.sync.lastSyncedAt === null ? null : new Date(relay.sync.lastSyncedAt).toISOString(),
        known: ours && relay.sync.ackedConfig !== null && !relay.sync.ackedDeleted,
      },
      diff: configDiff(relay),
    };
  }

  /**
   * The last `limit` activities of one relay, newest first: read through the same scope as
   * `GET /v1/activities?relay=` (an agent sees none), by the log's relay index.
   */
  async history(principal: Principal, relayId: string, limit: number): Promise<ActivityView[]> {
    const last: ActivityView[] = [];
    let after = 0;
    for (let pages = 0; pages < 100; pages++) {
      const page = await this.query.activities(principal, { after, relayId, limit: 1000 });
      for (const a of page.items) last.push(viewActivity(a));
      if (last.length > limit) last.splice(0, last.length - limit);
      if (page.items.length < 1000) break;
      after = page.next;
    }
    return last.reverse();
  }

  /**
   * Syncs per bucket over the last `windowMs`, from the log's complete_relay_sync / fail_relay_sync
   * activities. The window's first activity is found by bisecting ids (Query.activityIdBefore); the
   * window itself is read once, through the caller's scope.
   */
  async syncStats(principal: Principal, windowMs: number, buckets = 60, maxScan = 200_000) {
    const now = this.clock.now();
    const bucketMs = Math.ceil(windowMs / buckets);
    const since = now - bucketMs * buckets;
    const counts = Array.from({ length: buckets }, (_, i) => ({
      start: new Date(since + i * bucketMs).toISOString(),
      synced: 0,
      failed: 0,
    }));
    let after = await this.query.activityIdBefore(since);
    let scanned = 0;
    let truncated = false;
    for (;;) {
      const page = await this.query.activities(principal, { after, limit: 1000 });
      for (const a of page.items) {
        if (a.createdAt < since || !(SYNC_TYPES as readonly string[]).includes(a.type)) continue;
        const bucket = counts[Math.min(buckets - 1, Math.floor((a.createdAt - since) / bucketMs))];
        if (!bucket) continue;
        if (a.type === 'complete_relay_sync') bucket.synced++;
        else bucket.failed++;
      }
      scanned += page.items.length;
      if (page.items.length < 1000) break;
      if (scanned >= maxScan) {
        truncated = true;
        break;
      }
      after = page.next;
    }
    const synced = counts.reduce((n, b) => n + b.synced, 0);
    const failed = counts.reduce((n, b) => n + b.failed, 0);
    return {
      window_seconds: Math.round((bucketMs * buckets) / 1000),
      bucket_seconds: bucketMs / 1000,
      since: new Date(since).toISOString(),
      buckets: counts,
      synced,
      failed,
      failure_rate: synced + failed === 0 ? 0 : failed / (synced + failed),
      truncated,
    };
  }
}

/** Live relays of one target (null: the pull-only fleets) by sync status. */
export interface TargetCounts extends Record<SyncStatus, number> {
  target: string | null;
  fleets: string[];
  total: number;
}

const SYNC_STATUSES: readonly SyncStatus[] = ['pending', 'synced', 'retrying', 'failed', 'pull'];
const zero = (): Record<SyncStatus, number> => ({ pending: 0, synced: 0, retrying: 0, failed: 0, pull: 0 });

/** Failed relays first (they wait for an operator), then retrying ones by their next attempt. */
function worstFirst(relays: Relay[], limit: number): RelayView[] {
  const rank = (r: Relay) => (r.sync.status === 'failed' ? 0 : 1);
  relays.sort(
    (a, b) =>
      rank(a) - rank(b) ||
      (a.sync.nextAttemptAt ?? 0) - (b.sync.nextAttemptAt ?? 0) ||
      a.id.localeCompare(b.id),
  );
  return relays.slice(0, limit).map(viewRelay);
}

export interface DiffEntry {
  path: string;
  /** The value zooid acknowledged last; absent when the key was absent. Credentials are masked. */
  acked?: unknown;
  current?: unknown;
}

/** Keys whose values are credentials: a diff shows whether they changed, never what they are. */
const SECRET_KEYS = new Set(['secret', 'api_secret', 'secret_key', 'access_key']);

/** Whether zooid's last acknowledgement is of this relay, not of a deleted one before it with its id. */
const ackedThisRelay = (relay: Relay): boolean => relay.sync.syncedVersion >= relay.createdVersion;

/**
 * The difference between the config zooid last acknowledged and the relay's config now, as zooid
 * would receive it, leaf by leaf; null when zooid never acknowledged this relay. The Blossom S3
 * settings injected from the environment are left out (they are not part of the relay's record),
 * and credential values are masked.
 */
export function configDiff(relay: Relay): DiffEntry[] | null {
  if (relay.sync.ackedConfig === null || relay.sync.ackedDeleted || !ackedThisRelay(relay)) return null;
  const strip = (body: Record<string, unknown>) => {
    const { secret: _s, ...rest } = body;
    const blossom = rest.blossom;
    if (isObject(blossom)) {
      const { s3: _s3, adapter: _adapter, ...b } = blossom;
      rest.blossom = b;
    }
    return rest;
  };
  const current =
    relay.deletedAt === null
      ? strip({ ...zooidBody(relay, { withSecret: false, blossomS3: null }) })
      : undefined;
  const out: DiffEntry[] = [];
  walk(strip({ ...relay.sync.ackedConfig }), current, '', out, false);
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function walk(a: unknown, b: unknown, path: string, out: DiffEntry[], secret: boolean): void {
  const nested = (isObject(a) || a === undefined) && (isObject(b) || b === undefined);
  if (nested && (isObject(a) || isObject(b))) {
    const ao = (a ?? {}) as Record<string, unknown>;
    const bo = (b ?? {}) as Record<string, unknown>;
    for (const key of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
      walk(ao[key], bo[key], path ? `${path}.${key}` : key, out, secret || SECRET_KEYS.has(key));
    }
    return;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const show = (v: unknown) => (secret ? mask(v) : redact(v));
  out.push({
    path: path || '(relay)',
    ...(a !== undefined ? { acked: show(a) } : {}),
    ...(b !== undefined ? { current: show(b) } : {}),
  });
}

const mask = (v: unknown) => (v === '' || v === null ? v : '(set, hidden)');

/** Masks every credential anywhere inside a value. */
function redact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redact);
  if (!isObject(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SECRET_KEYS.has(k) ? mask(x) : redact(x)]));
}
