/**
 * Timers for expiring credentials (docs/stream-protocol.md §6): one per (relay, name, value), on the
 * injected clock, re-armed in steps of at most 2^31−1 ms and never fired early. The first
 * `expiresAt` seen for a credential wins for as long as the relay's reps keep listing it.
 */
import type { Clock, TimerHandle } from '../../domain/clock.js';
import type { ExpiringCredential } from '../protocol.js';

export const MAX_TIMER_STEP_MS = 2 ** 31 - 1;

interface Tracked {
  name: string;
  value: string;
  expiresAt: number;
  /** Armed until it fires or is cancelled. */
  timer: TimerHandle | undefined;
}

export type ExpireListener = (relayId: string, cred: { name: string; value: string }) => void;

const credKey = (c: { name: string; value: string }) => `${c.name}\u0000${c.value}`;

function dedupe(creds: readonly ExpiringCredential[]): ExpiringCredential[] {
  const seen = new Set<string>();
  return creds.filter((c) => {
    const key = credKey(c);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export class ExpiryTimers {
  private readonly relays = new Map<string, Map<string, Tracked>>();

  constructor(
    private readonly clock: Clock,
    private readonly onExpire: ExpireListener,
    private readonly onConflict: (relayId: string, name: string) => void = () => {},
  ) {}

  /**
   * The credentials to hand to the handler for a rep received now: repeats take the first
   * `expiresAt` seen, and anything already expired is stripped.
   */
  effective(relayId: string, creds: readonly ExpiringCredential[]): ExpiringCredential[] {
    const tracked = this.relays.get(relayId);
    const now = this.clock.now();
    const out: ExpiringCredential[] = [];
    for (const cred of dedupe(creds)) {
      const known = tracked?.get(credKey(cred));
      if (known && known.expiresAt !== cred.expiresAt) this.onConflict(relayId, cred.name);
      const expiresAt = known ? known.expiresAt : cred.expiresAt;
      if (expiresAt > now) out.push({ name: cred.name, value: cred.value, expiresAt });
    }
    return out;
  }

  /**
   * Records the credentials of a rep the handler has accepted: arms a timer for each new one not
   * yet expired, forgets (and disarms) those the rep no longer lists.
   */
  commit(relayId: string, creds: readonly ExpiringCredential[]): void {
    const previous = this.relays.get(relayId) ?? new Map<string, Tracked>();
    const next = new Map<string, Tracked>();
    for (const cred of dedupe(creds)) {
      const key = credKey(cred);
      const known = previous.get(key);
      if (known) {
        next.set(key, known);
        previous.delete(key);
        continue;
      }
      const tracked: Tracked = {
        name: cred.name,
        value: cred.value,
        expiresAt: cred.expiresAt,
        timer: undefined,
      };
      if (cred.expiresAt > this.clock.now()) this.arm(relayId, tracked);
      next.set(key, tracked);
    }
    for (const gone of previous.values()) this.disarm(gone);
    if (next.size > 0) this.relays.set(relayId, next);
    else this.relays.delete(relayId);
  }

  /** The relay was deleted: all its timers go. */
  forget(relayId: string): void {
    const tracked = this.relays.get(relayId);
    if (!tracked) return;
    for (const t of tracked.values()) this.disarm(t);
    this.relays.delete(relayId);
  }

  cancelAll(): void {
    for (const id of [...this.relays.keys()]) this.forget(id);
  }

  /** Number of armed timers. */
  armed(): number {
    let n = 0;
    for (const tracked of this.relays.values()) for (const t of tracked.values()) if (t.timer) n++;
    return n;
  }

  private arm(relayId: string, tracked: Tracked): void {
    const left = tracked.expiresAt - this.clock.now();
    if (left > MAX_TIMER_STEP_MS) {
      tracked.timer = this.clock.setTimeout(() => this.arm(relayId, tracked), MAX_TIMER_STEP_MS);
      return;
    }
    tracked.timer = this.clock.setTimeout(
      () => {
        // A clock that jumped back must not make us fire early.
        if (this.clock.now() < tracked.expiresAt) {
          this.arm(relayId, tracked);
          return;
        }
        tracked.timer = undefined;
        this.onExpire(relayId, { name: tracked.name, value: tracked.value });
      },
      Math.max(0, left),
    );
  }

  private disarm(tracked: Tracked): void {
    if (tracked.timer) this.clock.clearTimeout(tracked.timer);
    tracked.timer = undefined;
  }
}
