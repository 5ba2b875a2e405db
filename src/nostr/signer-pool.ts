/**
 * NIP-98 signing on worker threads. Schnorr signing dominates push sync (performance.md), and on
 * the main thread it competes with the HTTP API, the agent streams and the database. Here the main
 * thread only builds the unsigned template (clock reading, `u` and `method` tags, payload hash), so
 * headers are exactly what the in-thread signer makes, and a thread signs it.
 *
 * Requests go to the ready thread with the fewest pending, ties in turn; until a thread is ready
 * (its wasm backend loaded) they are signed on the main thread, so neither bosun's start nor a
 * replacement thread's start holds a request. A thread that errors, exits, or stops answering
 * (nothing back for `answerTimeoutMs` while it owes something: a hang, not a slow signature, which
 * takes well under a millisecond) never strands a caller: its pending requests are signed on the
 * main thread, it is logged once, terminated and replaced (a bounded number of times, and only if
 * it had started: one that cannot even start would fail again). A thread not ready within
 * `startTimeoutMs` is given up the same way. With no thread left, signing stays on the main thread.
 * Threads are unref'd while idle, so an open pool never keeps a process alive, and ref'd while they
 * start or owe an answer.
 */
import type { Worker } from 'node:worker_threads';
import { type Clock, systemClock } from '../domain/clock.js';
import { SMALL_THREAD_HEAP, spawnThread } from '../threads.js';
import {
  createNip98Signer,
  type Nip98Signer,
  type Nip98Template,
  nip98PublicKey,
  nip98Ready,
  nip98SecretBytes,
  nip98Template,
  signNip98Template,
} from './nip98.js';
import type { SignReply, SignRequest, SignWorkerData } from './sign-worker.js';

/** The subset of a pino logger the pool uses. */
export interface SignerLogger {
  warn(obj: object, msg: string): void;
}

export interface SignerPoolOptions {
  /** Signing threads; 0 signs on the calling thread. */
  workers: number;
  clock?: Clock;
  logger?: SignerLogger;
  /** Starts one signing thread (default `spawnSignWorker`); tests wrap it to reach the Worker. */
  spawn?: (data: SignWorkerData) => Worker;
  /** A thread that owes answers and sends none for this long is taken as hung (default 5 s). */
  answerTimeoutMs?: number;
  /** A thread not ready after this long is given up (default 30 s: loading tsx in tests is slow). */
  startTimeoutMs?: number;
}

/** Replacements of failed threads over a pool's life; past this, their share is signed in-thread. */
const MAX_REPLACEMENTS = 3;
const ANSWER_TIMEOUT_MS = 5000;
const START_TIMEOUT_MS = 30_000;

/** Starts a signing thread (sign-worker.ts beside this module; see spawnThread). */
export function spawnSignWorker(data: SignWorkerData): Worker {
  // A thread's live set is its key and the request in hand (well under 1 MB), but with V8's default
  // limits its heap grew with the garbage of every signature: ~50 MB of RSS after catching up 20,000
  // relays (bench/load). Small limits keep it near the live set; a thread that did run out is
  // replaced like any failed one (what it owed is signed again).
  return spawnThread(import.meta.url, 'sign-worker', {
    workerData: data,
    name: 'nip98-signer',
    resourceLimits: SMALL_THREAD_HEAP,
  });
}

/** A signer for `workers` threads, or the in-thread one for 0. */
export function createPooledNip98Signer(secretHex: string, options: SignerPoolOptions): Nip98Signer {
  if (options.workers === 0)
    return createNip98Signer(secretHex, options.clock ? { clock: options.clock } : {});
  return new Nip98SignerPool(secretHex, options);
}

interface Pending {
  template: Nip98Template;
  resolve(header: string): void;
  reject(err: unknown): void;
}

interface Thread {
  readonly index: number;
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
  /** Resolves when the thread reported ready or failed, whichever comes first. */
  readonly started: Promise<void>;
  markStarted(): void;
  ready: boolean;
  gone: boolean;
  /** Real time (ms) of the thread's last answer, or of its first request after being idle. */
  lastProgressAt: number;
  /** Checks for a hang while the thread owes answers, or for a start that never ends. */
  watchdog: NodeJS.Timeout | undefined;
}

const silent: SignerLogger = { warn() {} };

export class Nip98SignerPool implements Nip98Signer {
  readonly pubkey: string;
  private readonly secret: Uint8Array;
  private readonly clock: Clock;
  private readonly logger: SignerLogger;
  private readonly spawn: (data: SignWorkerData) => Worker;
  private readonly answerTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private threads: Thread[] = [];
  private readonly initial: Promise<void>[] = [];
  private nextId = 0;
  private turn = 0;
  private replacementsLeft = MAX_REPLACEMENTS;
  private closing: Promise<void> | undefined;

  constructor(secretHex: string, options: SignerPoolOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new Error('a NIP-98 signer pool needs at least one worker');
    }
    this.secret = nip98SecretBytes(secretHex);
    this.pubkey = nip98PublicKey(this.secret);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silent;
    this.spawn = options.spawn ?? spawnSignWorker;
    this.answerTimeoutMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    this.startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS;
    for (let i = 0; i < options.workers; i++) {
      const thread = this.start(i);
      if (thread) this.initial.push(thread.started);
    }
  }

  /** Signing threads currently in use (started or starting). */
  get size(): number {
    return this.threads.length;
  }

  /**
   * The main thread's fast backend is loaded: it signs until a thread is ready, and whatever a
   * failed thread leaves behind. The threads are not waited for (see `threadsStarted`).
   */
  async ready(): Promise<void> {
    await nip98Ready();
  }

  /** Resolves when each initial thread is ready or given up. */
  async threadsStarted(): Promise<void> {
    await Promise.all(this.initial);
  }

  async sign(url: string, method: string, body?: Uint8Array | string): Promise<string> {
    const template = nip98Template(url, method, body, this.clock.now());
    const thread = this.pick();
    if (!thread) return this.signHere(template);
    return new Promise<string>((resolve, reject) => {
      const id = this.nextId++;
      if (thread.pending.size === 0) {
        thread.worker.ref();
        thread.lastProgressAt = performance.now();
        this.watch(thread, this.answerTimeoutMs);
      }
      thread.pending.set(id, { template, resolve, reject });
      thread.worker.postMessage({ id, template } satisfies SignRequest);
    });
  }

  /** Stops the threads; what they still owed is signed here, as is anything signed later. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const threads = this.threads;
      this.threads = [];
      for (const thread of threads) this.retire(thread);
      await Promise.all(threads.map((t) => t.worker.terminate().catch(() => undefined)));
    })();
    return this.closing;
  }

  private start(index: number): Thread | null {
    let worker: Worker;
    try {
      worker = this.spawn({ secret: this.secret, pubkey: this.pubkey });
    } catch (err) {
      this.logger.warn(
        { err, worker: index },
        'cannot start a NIP-98 signing thread; signing on the main thread',
      );
      return null;
    }
    let markStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      markStarted = resolve;
    });
    const thread: Thread = {
      index,
      worker,
      pending: new Map(),
      started,
      markStarted,
      ready: false,
      gone: false,
      lastProgressAt: performance.now(),
      watchdog: undefined,
    };
    worker.on('message', (message: SignReply) => this.onReply(thread, message));
    worker.on('error', (err) => this.onFailure(thread, err));
    worker.on('messageerror', (err) => this.onFailure(thread, err));
    worker.on('exit', (code) => this.onFailure(thread, new Error(`signing thread exited with code ${code}`)));
    this.threads.push(thread);
    this.watch(thread, this.startTimeoutMs);
    return thread;
  }

  /**
   * Arms the thread's watchdog, unless armed. Real time, not the injected clock: it measures whether
   * the thread makes progress, and a fake clock jumping ahead in a test says nothing about that.
   */
  private watch(thread: Thread, afterMs: number): void {
    if (thread.watchdog || thread.gone) return;
    thread.watchdog = setTimeout(() => {
      thread.watchdog = undefined;
      this.check(thread);
    }, afterMs);
    thread.watchdog.unref();
  }

  private check(thread: Thread): void {
    if (thread.gone) return;
    if (!thread.ready) {
      this.onFailure(thread, new Error(`signing thread not ready after ${this.startTimeoutMs} ms`));
      return;
    }
    if (thread.pending.size === 0) return;
    const silentMs = performance.now() - thread.lastProgressAt;
    if (silentMs >= this.answerTimeoutMs) {
      this.onFailure(thread, new Error(`signing thread did not answer for ${Math.round(silentMs)} ms`));
    } else {
      this.watch(thread, this.answerTimeoutMs - silentMs);
    }
  }

  private pick(): Thread | undefined {
    const n = this.threads.length;
    let best: Thread | undefined;
    for (let i = 0; i < n; i++) {
      const t = this.threads[(this.turn + i) % n]!;
      if (t.ready && (!best || t.pending.size < best.pending.size)) best = t;
    }
    this.turn = n === 0 ? 0 : (this.turn + 1) % n;
    return best;
  }

  private onReply(thread: Thread, message: SignReply): void {
    if (message.type === 'ready') {
      thread.ready = true;
      thread.markStarted();
      // Ref'd while starting (so a process awaiting `threadsStarted` is not cut short), idle now.
      // Not before: adding the 'message' listener refs the worker's port again.
      thread.worker.unref();
      clearTimeout(thread.watchdog);
      thread.watchdog = undefined;
      return;
    }
    const pending = thread.pending.get(message.id);
    if (!pending) return;
    thread.pending.delete(message.id);
    thread.lastProgressAt = performance.now();
    if (thread.pending.size === 0) thread.worker.unref();
    if (message.type === 'signed') pending.resolve(message.header);
    else this.settleHere(pending);
  }

  /** Runs once per thread, for whichever of error, messageerror or exit comes first. */
  private onFailure(thread: Thread, err: unknown): void {
    if (thread.gone) return;
    const owed = thread.pending.size;
    this.threads = this.threads.filter((t) => t !== thread);
    const replace = !this.closing && thread.ready && this.replacementsLeft > 0;
    if (replace) this.replacementsLeft--;
    this.logger.warn(
      { err, worker: thread.index, pending: owed, replaced: replace },
      replace
        ? 'NIP-98 signing thread failed; replaced it, its pending requests are signed on the main thread'
        : this.threads.length > 0
          ? 'NIP-98 signing thread failed; the other threads carry on, its pending requests are signed on the main thread'
          : 'NIP-98 signing thread failed; signing on the main thread from now on',
    );
    this.retire(thread);
    // An error, a bad message or a hang leaves the thread running: it is not used again either way.
    void thread.worker.terminate().catch(() => undefined);
    if (replace) this.start(thread.index);
  }

  /** Takes the thread out of service and signs what it owed on this thread, so no caller waits on it. */
  private retire(thread: Thread): void {
    thread.gone = true;
    thread.markStarted();
    clearTimeout(thread.watchdog);
    thread.watchdog = undefined;
    const owed = [...thread.pending.values()];
    thread.pending.clear();
    thread.worker.unref();
    for (const pending of owed) this.settleHere(pending);
  }

  private settleHere(pending: Pending): void {
    try {
      pending.resolve(this.signHere(pending.template));
    } catch (err) {
      pending.reject(err);
    }
  }

  private signHere(template: Nip98Template): string {
    return signNip98Template(template, this.secret, this.pubkey);
  }
}
