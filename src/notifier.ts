import type { Activity } from './domain/activity.js';
import type { Relay } from './domain/relay.js';

/**
 * `relays`, when given, are the rows the same commit wrote, exactly as committed: a listener in this
 * process may use them instead of reading back what was just written. Absent (another process's
 * change, read from the log by the change feed): read the store.
 */
export type Listener = (activities: readonly Activity[], relays?: readonly Relay[]) => void;

/**
 * In-process change notification. A notification is only a wake-up: the activity log is the truth,
 * so listeners that miss one (slow, restarted, another process) catch up by reading the log.
 * Listeners are called after the writer's transaction has committed, each in its own microtask, so a
 * listener that throws cannot fail the writer and no writer waits on a listener's work.
 */
export class Notifier {
  private readonly listeners = new Set<Listener>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  publish(activities: readonly Activity[], relays?: readonly Relay[]): void {
    if (activities.length === 0) return;
    for (const listener of this.listeners) {
      queueMicrotask(() => {
        try {
          listener(activities, relays);
        } catch (err) {
          this.onListenerError(err);
        }
      });
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
