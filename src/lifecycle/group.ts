/**
 * An errgroup-style lifecycle for the Peer's long-running services (run in `Peer.run`,
 * shut down in `Peer.close`).
 *
 * - `add()` registers services before `run()`; adding after run() or close() throws.
 * - `run(signal?)` starts every service's `run(signal)` concurrently and resolves when all have returned.
 *   The first service that rejects before shutdown is fatal: every service's signal is aborted (with a
 *   ServiceError as reason), and once all have returned `run()` rejects with that ServiceError (its
 *   message names the service, its `cause` is the original error). Later rejections are ignored.
 *   Rejections after shutdown began (close(), or the signal given to run() aborted) are not fatal:
 *   services are expected to wind down with an abort error then, and run() resolves.
 * - `close()` aborts the services' signal, then awaits each service's `close()` one at a time in
 *   REVERSE order of add. A close that takes longer than `closeTimeoutMs` is logged and left behind
 *   (counted as an error) so the next one can go. Idempotent: every call returns the same promise,
 *   which rejects with an AggregateError of ServiceErrors if any close failed or timed out. close()
 *   does not wait for run() to return; a service's close() is what makes its run() return.
 */
import { setMaxListeners } from 'node:events';
import { type Clock, systemClock } from '../domain/clock.js';

export interface Service {
  name: string;
  run(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** The subset of a pino logger the group uses. */
export interface GroupLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ServiceGroupOptions {
  /** Per service; default 10 000 ms. */
  closeTimeoutMs?: number;
  clock?: Clock;
  logger?: GroupLogger;
}

/** A failure of one named service: its run rejected, its close rejected or its close timed out. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  readonly service: string;

  constructor(service: string, phase: 'run' | 'close', cause: unknown) {
    super(`service "${service}" ${phase} failed: ${messageOf(cause)}`, { cause });
    this.service = service;
  }
}

/** The abort reason given to services when the group shuts down without a fatal error. */
export class ServiceGroupClosedError extends Error {
  override readonly name = 'AbortError';

  constructor() {
    super('service group closed');
  }
}

const silent: GroupLogger = { warn() {}, error() {} };

export class ServiceGroup {
  private readonly services: Service[] = [];
  private readonly controller = new AbortController();
  private readonly closeTimeoutMs: number;
  private readonly clock: Clock;
  private readonly logger: GroupLogger;
  private started = false;
  private shuttingDown = false;
  private closing: Promise<void> | undefined;

  constructor(options: ServiceGroupOptions = {}) {
    this.closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silent;
    // Every service (and every chore's cycle) listens on this one signal; there are more than 10.
    setMaxListeners(0, this.controller.signal);
  }

  /** The signal every service's run() gets; aborted on a fatal error or on close(). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  add(service: Service): this {
    if (this.started) throw new Error(`cannot add service "${service.name}": the group is already running`);
    if (this.closing) throw new Error(`cannot add service "${service.name}": the group is closed`);
    this.services.push(service);
    return this;
  }

  async run(signal?: AbortSignal): Promise<void> {
    if (this.started) throw new Error('service group is already running');
    this.started = true;
    if (this.closing) return;
    const onAbort = () => this.shutdown(signal?.reason ?? new ServiceGroupClosedError());
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });

    let fatal: ServiceError | undefined;
    const groupSignal = this.controller.signal;
    try {
      await Promise.all(
        this.services.map(async (service) => {
          try {
            await service.run(groupSignal);
          } catch (err) {
            if (fatal || this.shuttingDown) return;
            fatal = new ServiceError(service.name, 'run', err);
            this.logger.error({ component: service.name, err }, 'service failed; stopping the others');
            this.controller.abort(fatal);
          }
        }),
      );
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (fatal) throw fatal;
  }

  close(): Promise<void> {
    this.closing ??= this.closeAll();
    return this.closing;
  }

  private shutdown(reason: unknown): void {
    this.shuttingDown = true;
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }

  private async closeAll(): Promise<void> {
    this.shutdown(new ServiceGroupClosedError());
    const errors: ServiceError[] = [];
    for (const service of [...this.services].reverse()) {
      const err = await this.closeOne(service);
      if (err) errors.push(err);
    }
    if (errors.length > 0) {
      throw new AggregateError(errors, `closing services failed: ${errors.map((e) => e.message).join('; ')}`);
    }
  }

  private closeOne(service: Service): Promise<ServiceError | undefined> {
    return new Promise((resolve) => {
      let done = false;
      const timer = this.clock.setTimeout(() => {
        if (done) return;
        done = true;
        const err = new ServiceError(
          service.name,
          'close',
          new Error(`timed out after ${this.closeTimeoutMs} ms`),
        );
        this.logger.warn(
          { component: service.name, timeoutMs: this.closeTimeoutMs },
          'service close timed out; moving on',
        );
        resolve(err);
      }, this.closeTimeoutMs);
      const finish = (err: ServiceError | undefined) => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        resolve(err);
      };
      let closing: Promise<void>;
      try {
        closing = Promise.resolve(service.close());
      } catch (err) {
        closing = Promise.reject(err);
      }
      closing.then(
        () => finish(undefined),
        (err: unknown) => {
          if (done) {
            this.logger.warn({ component: service.name, err }, 'service close failed after its timeout');
            return;
          }
          this.logger.error({ component: service.name, err }, 'service close failed');
          finish(new ServiceError(service.name, 'close', err));
        },
      );
    });
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
