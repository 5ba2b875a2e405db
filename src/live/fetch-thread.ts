import type { Worker } from 'node:worker_threads';
import { SMALL_THREAD_HEAP, spawnThread } from '../threads.js';
import { type FetchRelayInfoResult, fetchRelayInfo } from './fetch.js';
import type { FetchThreadReply, FetchThreadRequest } from './fetch-worker.js';
import type { RelayInfoRequest } from './verifier.js';

/** The subset of a pino logger the thread uses. */
export interface FetchThreadLogger {
  warn(obj: object, msg: string): void;
}

export interface FetchThreadOptions {
  logger: FetchThreadLogger;
  /** Starts the thread (default: fetch-worker.ts beside this module); tests wrap it. */
  spawn?: () => Worker;
  /**
   * A read the thread has not answered this long after its own deadline is given up as failed (the
   * thread is hung): the check says so, and the thread is stopped. Default 1 s.
   */
  answerMarginMs?: number;
}

interface Pending {
  resolve: (outcome: FetchRelayInfoResult) => void;
  timer: NodeJS.Timeout;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/**
 * Live verification's NIP-11 reads on a thread of their own (fetch-worker.ts), so the HTTP client's
 * work per check is not done on the main thread, where it would stretch push sync's commit → PATCH
 * latency (bench:live). The main thread only posts the request and takes the outcome.
 *
 * Until the thread is ready, and for good once it failed (an error, an exit, or a read unanswered
 * past its deadline), reads run on the main thread instead (logged once): a check never waits on a
 * thread that will not answer. Real time bounds every read, as fetch.ts's own deadline does. The
 * thread is unref'd: it never keeps a process alive.
 */
export class FetchThread {
  private readonly worker: Worker | null;
  private readonly pending = new Map<number, Pending>();
  private ready = false;
  private failed = false;
  private nextId = 0;
  private readonly answerMarginMs: number;

  constructor(private readonly o: FetchThreadOptions) {
    this.answerMarginMs = o.answerMarginMs ?? 1000;
    let worker: Worker | null = null;
    try {
      worker = (o.spawn ?? spawnFetchWorker)();
    } catch (err) {
      this.fail(err, 'cannot start the live check thread');
    }
    this.worker = worker;
    if (!worker) return;
    worker.unref();
    worker.on('message', (reply: FetchThreadReply) => this.onReply(reply));
    worker.on('error', (err) => this.fail(err, 'live check thread failed'));
    worker.on('messageerror', (err) => this.fail(err, 'live check thread failed'));
    worker.on('exit', (code) =>
      this.fail(new Error(`exited with code ${code}`), 'live check thread stopped'),
    );
  }

  /** Whether reads go to the thread now (it is ready and has not failed). */
  get onThread(): boolean {
    return this.ready && !this.failed && this.worker !== null;
  }

  /** Reads one relay's NIP-11 document (fetchRelayInfo's contract: never throws). */
  readonly fetch = (req: RelayInfoRequest): Promise<FetchRelayInfoResult> => {
    const worker = this.worker;
    if (!this.onThread || !worker) return fetchRelayInfo(req);
    if (req.signal?.aborted) return Promise.resolve({ ok: false, error: 'aborted' });
    const id = this.nextId++;
    return new Promise((resolve) => {
      const onAbort = () => {
        worker.postMessage({ type: 'cancel', id } satisfies FetchThreadRequest);
        this.settle(id, { ok: false, error: 'aborted' });
      };
      const timer = setTimeout(() => {
        this.settle(id, {
          ok: false,
          error: `no answer from the live check thread within ${req.timeoutMs} ms`,
        });
        this.fail(new Error('a read went unanswered past its deadline'), 'live check thread hung');
      }, req.timeoutMs + this.answerMarginMs);
      timer.unref();
      req.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { resolve, timer, signal: req.signal, onAbort });
      const { signal: _, ...rest } = req;
      worker.postMessage({ type: 'fetch', id, ...rest } satisfies FetchThreadRequest);
    });
  };

  /** Stops the thread; reads it still owed fail, later ones run on the main thread. */
  async close(): Promise<void> {
    this.failed = true;
    this.settleAll('live verification stopped');
    await this.worker?.terminate().catch(() => undefined);
  }

  private onReply(reply: FetchThreadReply): void {
    if (reply.type === 'ready') this.ready = true;
    else this.settle(reply.id, reply.outcome);
  }

  /** Answers a read once (the thread's answer, its abort or its deadline, whichever comes first). */
  private settle(id: number, outcome: FetchRelayInfoResult): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.signal?.removeEventListener('abort', p.onAbort);
    p.resolve(outcome);
  }

  private fail(err: unknown, message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.o.logger.warn({ err }, `${message}; reading NIP-11 documents on the main thread`);
    this.settleAll('the live check thread stopped');
    void this.worker?.terminate().catch(() => undefined);
  }

  private settleAll(error: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id, { ok: false, error });
  }
}

/** Starts the NIP-11 read thread (fetch-worker.ts beside this module; see spawnThread). */
export function spawnFetchWorker(): Worker {
  return spawnThread(import.meta.url, 'fetch-worker', {
    workerData: null,
    name: 'live-check',
    resourceLimits: SMALL_THREAD_HEAP,
  });
}
