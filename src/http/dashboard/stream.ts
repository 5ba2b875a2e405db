import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { TokenWatch } from '../../auth/token-watch.js';
import { type Credential, credentialKey } from '../../auth/tokens.js';
import { viewActivity } from '../../domain/activity.js';
import { CoalescedRun } from '../../domain/coalesced-run.js';
import type { ErrorCode } from '../../domain/errors.js';
import type { Principal } from '../../domain/principal.js';
import type { Notifier } from '../../notifier.js';
import type { Query } from '../../query.js';
import { refuseForNow } from '../errors.js';

export interface ActivityStreamOptions {
  /** A comment line every so often keeps proxies from closing an idle stream; also polls the log. */
  heartbeatMs: number;
  /** The server ends a stream after this long; clients resume with Last-Event-ID (and re-authenticate). */
  maxStreamMs: number;
  /** Notifications within this window are coalesced into one read of the log. */
  coalesceMs: number;
  pageSize: number;
  /** Concurrent streams per credential (token or NIP-98 key) before 429. */
  maxStreamsPerToken: number;
  /** Concurrent streams on this server before 503: each one reads the log on every change. */
  maxStreams: number;
  /** Retry-After of a 429 or 503. */
  retryAfterSeconds: number;
  /** Revoked or expired credentials are found this often; their streams close. */
  tokenCheckMs: number;
}

export const DEFAULT_STREAM_OPTIONS: ActivityStreamOptions = {
  heartbeatMs: 15_000,
  maxStreamMs: 15 * 60_000,
  coalesceMs: 25,
  pageSize: 500,
  maxStreamsPerToken: 8,
  maxStreams: 1000,
  retryAfterSeconds: 5,
  tokenCheckMs: 1000,
};

/**
 * `GET /v1/activities/stream`: the activity log as Server-Sent Events, scoped to what the caller may
 * see. Each event is `id: <activity id>` with the activity's public view as data. The stream
 * subscribes to the Notifier first, then reads the log after the resume point, then follows live;
 * a notification is only a wake-up — every event is read from the log through the caller's scope,
 * so tenant scoping and de-duplication (by id) hold whatever the notification carried.
 *
 * Admission before any byte of the stream, as `GET /v1/stream`: a cap per credential (429) and in
 * total (503), both with Retry-After; a stream ends once its credential is revoked or expires.
 */
export class ActivityStreams {
  private readonly open = new Set<() => void>();
  private readonly perCredential = new Map<string, number>();

  constructor(
    private readonly deps: {
      query: Query;
      notifier?: Notifier | undefined;
      logger: Logger;
      /** Reads may skip ahead to the log's head after a short page (true where commits are serial). */
      serialCommits: boolean;
      onClients?: (n: number) => void;
      /** Ends the streams of credentials that stop signing in. */
      watch?: TokenWatch;
    },
    private readonly opts: ActivityStreamOptions = DEFAULT_STREAM_OPTIONS,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** Ends every open stream (server shutdown); clients reconnect elsewhere and resume. */
  closeAll(): void {
    for (const close of [...this.open]) close();
  }

  serve(
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    credential: Credential,
    after: number,
  ): FastifyReply {
    const { query, notifier, logger } = this.deps;
    const { pageSize } = this.opts;
    // From here to registration nothing awaits, so the limits hold.
    const key = credentialKey(credential);
    if (this.open.size >= this.opts.maxStreams) {
      logger.warn({ streams: this.open.size }, 'activity stream refused: server at its stream limit');
      return this.refuse(reply, 'unavailable', 'this server has too many activity streams; retry later');
    }
    if ((this.perCredential.get(key) ?? 0) >= this.opts.maxStreamsPerToken) {
      return this.refuse(
        reply,
        'too_many_requests',
        `at most ${this.opts.maxStreamsPerToken} concurrent activity streams per token`,
      );
    }
    const out = new PassThrough();
    let cursor = after;
    let closed = false;
    let wake: NodeJS.Timeout | undefined;

    const write = (chunk: string): Promise<void> | undefined => {
      if (closed) return undefined;
      if (out.write(chunk)) return undefined;
      return new Promise((resolve) => {
        const done = () => {
          out.off('drain', done);
          out.off('close', done);
          resolve();
        };
        out.on('drain', done);
        out.on('close', done);
      });
    };

    /** Sends every activity after the cursor that the caller may see, page by page. */
    const sendNew = async (): Promise<void> => {
      for (;;) {
        const head = this.deps.serialCommits ? await query.lastActivityId() : 0;
        const page = await query.activities(principal, { after: cursor, limit: pageSize });
        for (const activity of page.items) {
          if (closed) return;
          if (activity.id <= cursor) continue;
          cursor = activity.id;
          const waiting = write(`id: ${activity.id}\ndata: ${JSON.stringify(viewActivity(activity))}\n\n`);
          if (waiting) await waiting;
        }
        if (page.items.length < pageSize) {
          // Everything up to `head` was committed before this read and seen through the caller's
          // scope: don't re-scan other tenants' activities on the next wake-up.
          if (head > cursor) cursor = head;
          return;
        }
      }
    };
    const reads = new CoalescedRun({
      task: sendNew,
      onError: (err) => {
        logger.warn({ err }, 'activity stream read failed; closing the stream');
        close();
      },
      stopped: () => closed,
    });

    const schedule = () => {
      if (closed || wake) return;
      wake = setTimeout(() => {
        wake = undefined;
        reads.request();
      }, this.opts.coalesceMs);
    };

    const unsubscribe = notifier?.subscribe((activities) => {
      const last = activities[activities.length - 1];
      if (last && last.id > cursor) schedule();
    });
    const heartbeat = setInterval(() => {
      void write(': ping\n\n');
      schedule();
    }, this.opts.heartbeatMs);
    const lifetime = setTimeout(() => close(), this.opts.maxStreamMs);
    heartbeat.unref();
    lifetime.unref();

    const close = () => {
      if (closed) return;
      closed = true;
      unsubscribe?.();
      clearInterval(heartbeat);
      clearTimeout(lifetime);
      if (wake) clearTimeout(wake);
      unwatch?.();
      this.open.delete(close);
      const left = (this.perCredential.get(key) ?? 1) - 1;
      if (left > 0) this.perCredential.set(key, left);
      else this.perCredential.delete(key);
      this.deps.onClients?.(this.open.size);
      out.end();
    };
    this.open.add(close);
    this.perCredential.set(key, (this.perCredential.get(key) ?? 0) + 1);
    const unwatch = this.deps.watch?.watch(credential, close);
    this.deps.onClients?.(this.open.size);
    reply.raw.on('close', close);
    out.on('error', close);

    void write(`retry: 3000\n\n`);
    reads.request();
    void reads.current?.then(() => {
      if (!closed) void write(`event: ready\ndata: ${JSON.stringify({ cursor })}\n\n`);
    });
    request.log.debug({ after }, 'activity stream opened');
    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      .header('x-accel-buffering', 'no')
      .send(out);
  }

  private refuse(reply: FastifyReply, code: ErrorCode, message: string): FastifyReply {
    return refuseForNow(reply, code, message, this.opts.retryAfterSeconds);
  }
}
