import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { viewActivity } from '../../domain/activity.js';
import type { Principal } from '../../domain/principal.js';
import type { Notifier } from '../../notifier.js';
import type { Query } from '../../query.js';

export interface ActivityStreamOptions {
  /** A comment line every so often keeps proxies from closing an idle stream; also polls the log. */
  heartbeatMs: number;
  /** The server ends a stream after this long; clients resume with Last-Event-ID (and re-authenticate). */
  maxStreamMs: number;
  /** Notifications within this window are coalesced into one read of the log. */
  coalesceMs: number;
  pageSize: number;
}

export const DEFAULT_STREAM_OPTIONS: ActivityStreamOptions = {
  heartbeatMs: 15_000,
  maxStreamMs: 15 * 60_000,
  coalesceMs: 25,
  pageSize: 500,
};

/**
 * `GET /v1/activities/stream`: the activity log as Server-Sent Events, scoped to what the caller may
 * see. Each event is `id: <activity id>` with the activity's public view as data. The stream
 * subscribes to the Notifier first, then reads the log after the resume point, then follows live;
 * a notification is only a wake-up — every event is read from the log through the caller's scope,
 * so tenant scoping and de-duplication (by id) hold whatever the notification carried.
 */
export class ActivityStreams {
  private readonly open = new Set<() => void>();

  constructor(
    private readonly deps: {
      query: Query;
      notifier?: Notifier | undefined;
      logger: Logger;
      /** Reads may skip ahead to the log's head after a short page (true where commits are serial). */
      serialCommits: boolean;
      onClients?: (n: number) => void;
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

  serve(request: FastifyRequest, reply: FastifyReply, principal: Principal, after: number): FastifyReply {
    const { query, notifier, logger } = this.deps;
    const { pageSize } = this.opts;
    const out = new PassThrough();
    let cursor = after;
    let closed = false;
    let pumping = false;
    let again = false;
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

    const pump = async (): Promise<void> => {
      if (pumping) {
        again = true;
        return;
      }
      pumping = true;
      try {
        do {
          again = false;
          for (;;) {
            const head = this.deps.serialCommits ? await query.lastActivityId() : 0;
            const page = await query.activities(principal, { after: cursor, limit: pageSize });
            for (const activity of page.items) {
              if (closed) return;
              if (activity.id <= cursor) continue;
              cursor = activity.id;
              const waiting = write(
                `id: ${activity.id}\ndata: ${JSON.stringify(viewActivity(activity))}\n\n`,
              );
              if (waiting) await waiting;
            }
            if (page.items.length < pageSize) {
              // Everything up to `head` was committed before this read and seen through the caller's
              // scope: don't re-scan other tenants' activities on the next wake-up.
              if (head > cursor) cursor = head;
              break;
            }
          }
        } while (again && !closed);
      } catch (err) {
        logger.warn({ err }, 'activity stream read failed; closing the stream');
        close();
      } finally {
        pumping = false;
      }
    };

    const schedule = () => {
      if (closed || wake) return;
      wake = setTimeout(() => {
        wake = undefined;
        void pump();
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
      this.open.delete(close);
      this.deps.onClients?.(this.open.size);
      out.end();
    };
    this.open.add(close);
    this.deps.onClients?.(this.open.size);
    reply.raw.on('close', close);
    out.on('error', close);

    void write(`retry: 3000\n\n`);
    void pump().then(() => {
      if (!closed) void write(`event: ready\ndata: ${JSON.stringify({ cursor })}\n\n`);
    });
    request.log.debug({ after }, 'activity stream opened');
    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      .header('x-accel-buffering', 'no')
      .send(out);
  }
}
