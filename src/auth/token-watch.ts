import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../domain/clock.js';
import { type Credential, credentialKey } from './tokens.js';

interface Watched {
  credential: Credential;
  ends: Set<() => void>;
}

/**
 * Ends what a credential opened (long-lived streams) once it no longer signs its caller in: a
 * revoked or expired token, a deregistered NIP-98 tenant. One timer for everything watched, and
 * each credential is looked up once a round however many streams it holds.
 */
export class TokenWatch {
  private readonly watched = new Map<string, Watched>();
  private timer: TimerHandle | undefined;
  private checking = false;
  private closed = false;

  constructor(
    private readonly options: {
      isLive: (credential: Credential) => Promise<boolean>;
      clock: Clock;
      logger: Logger;
      /** How often credentials are looked up: the longest a revoked one keeps its streams. */
      intervalMs: number;
    },
  ) {}

  /** Calls `end` once the credential is no longer live (maybe more than once); returns the unwatch. */
  watch(credential: Credential, end: () => void): () => void {
    const key = credentialKey(credential);
    let entry = this.watched.get(key);
    if (!entry) {
      entry = { credential, ends: new Set() };
      this.watched.set(key, entry);
    }
    entry.ends.add(end);
    this.arm();
    return () => {
      const current = this.watched.get(key);
      if (!current?.ends.delete(end)) return;
      if (current.ends.size === 0) this.watched.delete(key);
    };
  }

  /** Stops the timer (shutdown); nothing is ended by it. */
  close(): void {
    this.closed = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer || this.closed || this.watched.size === 0) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      void this.check().finally(() => this.arm());
    }, this.options.intervalMs);
  }

  private async check(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    try {
      let n = 0;
      for (const entry of [...this.watched.values()]) {
        // Thousands of credentials: let other work run between small batches of lookups.
        if (++n % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
        if (entry.ends.size === 0 || (await this.options.isLive(entry.credential))) continue;
        for (const end of [...entry.ends]) end();
      }
    } catch (err) {
      this.options.logger.warn({ err }, 'checking credentials of open streams failed; trying again');
    } finally {
      this.checking = false;
    }
  }
}
