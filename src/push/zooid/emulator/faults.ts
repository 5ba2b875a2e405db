/** Injected faults for the management API: latency, dropped connections, errors, fixed answers. */
import type { Clock, TimerHandle } from '../../../domain/clock.js';
import type { Random } from '../../../domain/random.js';
import { errorReply, type Reply } from './reply.js';
import type { ZooidFaults, ZooidMethod, ZooidRequestRecord } from './types.js';

export type FaultVerdict =
  | { fault: 'drop' }
  | { fault: Exclude<ZooidRequestRecord['fault'], 'drop' | null>; reply: Reply }
  | null;

export class FaultInjector {
  private faults: ZooidFaults;

  constructor(
    faults: ZooidFaults,
    private readonly rng: Random,
  ) {
    this.faults = { ...faults };
  }

  set(next: ZooidFaults): void {
    this.faults = { ...next };
  }

  get latencyMs(): number {
    return this.faults.latencyMs ?? 0;
  }

  /**
   * What the faults do to one request, in order: drop it (counting down a numbered drop), fail it
   * (`failAll` or `errorRate`), answer its method's override; null lets it through.
   */
  decide(method: string): FaultVerdict {
    const f = this.faults;
    const drop = f.dropConnections;
    if (drop === true || (typeof drop === 'number' && drop > 0)) {
      if (typeof drop === 'number') this.faults = { ...f, dropConnections: drop - 1 };
      return { fault: 'drop' };
    }
    const failStatus = f.failStatus ?? 500;
    if (f.failAll || (f.errorRate !== undefined && f.errorRate > 0 && this.rng() < f.errorRate)) {
      return { fault: 'error', reply: errorReply(failStatus, 'injected failure') };
    }
    const override = f.statusOverride?.[method as ZooidMethod];
    if (override === undefined) return null;
    const o = typeof override === 'number' ? { status: override } : override;
    return {
      fault: 'override',
      reply:
        o.body === undefined
          ? errorReply(o.status, 'injected')
          : { status: o.status, body: o.body, contentType: o.contentType ?? 'text/plain; charset=utf-8' },
    };
  }
}

/** Waits on the emulator's clock that `cancelAll` ends at once (on close). */
export class Delays {
  private readonly pending = new Set<{ handle: TimerHandle; resolve: () => void }>();

  constructor(private readonly clock: Clock) {}

  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry = {
        handle: this.clock.setTimeout(() => {
          this.pending.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.pending.add(entry);
    });
  }

  cancelAll(): void {
    for (const t of this.pending) {
      this.clock.clearTimeout(t.handle);
      t.resolve();
    }
    this.pending.clear();
  }
}
