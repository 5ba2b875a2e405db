import pg from 'pg';
import type { Logger } from 'pino';
import { backoffDelay } from '../../domain/backoff.js';
import { CoalescedRun } from '../../domain/coalesced-run.js';
import { type Random, systemRandom } from '../../domain/random.js';
import type { Notifier } from '../../notifier.js';
import type { PostgresStore } from './pg-store.js';

export interface ChangeFeedOptions {
  store: PostgresStore;
  notifier: Notifier;
  logger: Pick<Logger, 'info' | 'warn' | 'debug' | 'error'>;
  /** Reconnect backoff: first delay and cap (ms). Default 100 and 5000. */
  backoff?: { baseMs: number; capMs: number };
  /** Spreads the reconnect delays (±20 %). Default systemRandom. */
  random?: Random;
  pageSize?: number;
}

/**
 * Cross-process change notifications on PostgreSQL. Every commit that appends activities queues a
 * NOTIFY on the installation's channel (see PostgresStore.commit), with the committing store's
 * instance id as payload. This feed LISTENs on a dedicated connection and, when another process
 * committed, reads the activity log after the last id it has seen and publishes those activities
 * to the in-process Notifier — so listeners here (the observer on the lease holder, streams) see
 * other replicas' changes as if they were local. This process's own commits were already
 * published by the Command, so the feed skips their notifications and their ids.
 *
 * Notifications are only wake-ups and can be missed (listener connection down, server restart):
 * the listener reconnects with capped exponential backoff and, once listening again, catches up
 * from the log (a synthetic wake-up), so nothing committed meanwhile stays unpublished. Delivery
 * is at least once: a listener may see an activity twice, never miss one.
 */
export class ChangeFeed {
  private conn: pg.Client | null = null;
  private seen = 0;
  /** Ids above `seen` that this process published itself (Command, or this feed). */
  private readonly local = new Set<number>();
  private unsubscribe: (() => void) | null = null;
  /** Catch-up reads of the log, one at a time; wake-ups meanwhile coalesce. */
  private readonly reads = new CoalescedRun({
    task: () => this.catchUp(),
    onError: (err) => {
      this.options.logger.warn(
        { err },
        'change feed could not read the activity log; retrying on the next wake-up',
      );
      if (!this.stopped) setTimeout(() => this.wake(), 1000).unref();
    },
    stopped: () => this.stopped,
  });
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  /** Times the listener (re)connected; for tests and logs. */
  connects = 0;

  constructor(private readonly options: ChangeFeedOptions) {}

  static async start(options: ChangeFeedOptions): Promise<ChangeFeed> {
    const feed = new ChangeFeed(options);
    feed.unsubscribe = options.notifier.subscribe((activities) => feed.recordLocal(activities));
    feed.seen = await options.store.lastActivityId();
    await feed.listen();
    return feed;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.unsubscribe?.();
    const c = this.conn;
    this.conn = null;
    await this.reads.current;
    if (c) await Promise.race([c.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  }

  /** Resolves when no catch-up read is running (tests). */
  async settled(): Promise<void> {
    while (this.reads.current) await this.reads.current;
  }

  private recordLocal(activities: readonly { id: number }[]): void {
    for (const a of activities) if (a.id > this.seen) this.local.add(a.id);
    // A lone replica never reads its own commits back; read once in a while to keep this bounded.
    if (this.local.size > 10_000) this.wake();
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({
      ...this.options.store.clientConfig(),
      application_name: `bosun-listen:${this.options.store.instanceId.slice(0, 8)}`,
      // Detect a dead server behind a silent network.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client.on('notification', (n) => {
      if (n.payload !== this.options.store.instanceId) this.wake();
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    this.conn = client;
    await client.connect();
    await client.query(`LISTEN "${this.options.store.channel}"`);
    this.connects++;
    this.failures = 0;
  }

  private lost(client: pg.Client, err: Error): void {
    if (this.conn !== client || this.stopped) return;
    this.conn = null;
    client.end().catch(() => {});
    this.options.logger.warn({ err: err.message }, 'change listener lost its connection; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const { baseMs, capMs } = this.options.backoff ?? { baseMs: 100, capMs: 5000 };
    this.failures++;
    const curve = { baseMs, capMs, jitter: { spread: 0.2 } };
    const ms = backoffDelay(curve, this.failures, this.options.random ?? systemRandom);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.reconnect(), ms);
    this.reconnectTimer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.listen();
    } catch (err) {
      const c = this.conn;
      this.conn = null;
      c?.end().catch(() => {});
      this.options.logger.debug({ err }, 'change listener could not reconnect');
      this.scheduleReconnect();
      return;
    }
    this.options.logger.info(
      { connects: this.connects },
      'change listener reconnected; catching up from the log',
    );
    // Notifications sent while we were away are gone: the log has them.
    this.wake();
  }

  private wake(): void {
    this.reads.request();
  }

  private async catchUp(): Promise<void> {
    const limit = this.options.pageSize ?? 1000;
    for (;;) {
      const page = await this.options.store.activitiesAfter({ after: this.seen, limit });
      if (page.length === 0) return;
      const remote = page.filter((a) => !this.local.has(a.id));
      this.seen = page[page.length - 1]!.id;
      for (const id of this.local) if (id <= this.seen) this.local.delete(id);
      if (remote.length > 0) this.options.notifier.publish(remote);
      if (page.length < limit) return;
    }
  }
}
