/** What the emulator keeps for tests: every API request, the changes it accepted, per-relay concurrency. */
import type { ServerResponse } from 'node:http';
import { clone } from './state.js';
import type { ZooidAcceptedChange, ZooidRequestRecord } from './types.js';

export class RequestLog {
  /** Every API request in arrival order; a live array the emulator hands out as is. */
  readonly requests: ZooidRequestRecord[] = [];
  private readonly acceptedById = new Map<string, ZooidAcceptedChange[]>();
  private readonly inFlight = new Map<string, number>();
  private readonly maxInFlight = new Map<string, number>();

  /** `recording` off keeps neither requests nor accepted changes (long benchmarks). */
  constructor(private readonly recording: boolean) {}

  arrived(rec: ZooidRequestRecord): void {
    if (this.recording) this.requests.push(rec);
  }

  /** Counts a request for relay `id` as in flight until its response closes. */
  track(id: string, res: ServerResponse): void {
    const n = (this.inFlight.get(id) ?? 0) + 1;
    this.inFlight.set(id, n);
    if (n > (this.maxInFlight.get(id) ?? 0)) this.maxInFlight.set(id, n);
    res.once('close', () => this.inFlight.set(id, (this.inFlight.get(id) ?? 1) - 1));
  }

  accepted(change: ZooidAcceptedChange & { id: string }): void {
    if (!this.recording) return;
    const { id, ...rest } = change;
    const list = this.acceptedById.get(id) ?? [];
    list.push({ ...rest, config: rest.config ? clone(rest.config) : null });
    this.acceptedById.set(id, list);
  }

  acceptedFor(id: string): ZooidAcceptedChange[] {
    return clone(this.acceptedById.get(id) ?? []);
  }

  maxConcurrent(id?: string): number {
    return id === undefined ? Math.max(0, ...this.maxInFlight.values()) : (this.maxInFlight.get(id) ?? 0);
  }
}
