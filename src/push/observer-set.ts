import type { Observer, PushQueue } from './observer.js';

/**
 * Push sync as the chores, the verifier and the peer see it when the push work is leased per
 * target (several replicas on PostgreSQL): one Observer per target this replica has held, each
 * following the log from its own cursor and syncing only its target's relays. A relay asked for
 * is handed to every running one; all but its target's skip it.
 */
export class ObserverSet implements PushQueue {
  private readonly observers = new Map<string, Observer>();

  add(target: string, observer: Observer): void {
    this.observers.set(target, observer);
  }

  get(target: string): Observer | undefined {
    return this.observers.get(target);
  }

  private running(): Observer[] {
    return [...this.observers.values()].filter((o) => o.running);
  }

  enqueue(relayId: string, opts: { force?: boolean } = {}): void {
    for (const o of this.running()) o.enqueue(relayId, opts);
  }

  retryFailedNow(): void {
    for (const o of this.running()) o.retryFailedNow();
  }

  async idle(): Promise<void> {
    await Promise.all(this.running().map((o) => o.idle()));
  }
}
