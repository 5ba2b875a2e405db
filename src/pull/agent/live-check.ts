/**
 * `bosun agent --verify-url`: reads back, over NIP-11 (docs/zooid-contract.md §5), each relay the
 * agent wrote, from the local zooid, and keeps a per-relay live status for /healthz. The agent only
 * writes files, so nothing is repaired: a relay still not live a grace period after its file was
 * written is logged once (warn) per write, not on every check. Only `Host` and `Accept` are sent.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../domain/clock.js';
import { publicKeyOf } from '../../domain/keys.js';
import type { LiveStatus } from '../../domain/live.js';
import { compareLive, type LiveExpectation } from '../../live/compare.js';
import { fetchRelayInfo } from '../../live/fetch.js';
import type { RelayRep } from '../protocol.js';

export interface AgentLiveOptions {
  /** zooid's own address, e.g. `http://127.0.0.1:3334`; each relay is asked for with its Host. */
  baseUrl: string;
  logger: Logger;
  clock: Clock;
  /** Between rounds over every relay. Default 60 s. */
  intervalMs?: number;
  /** How long after a write a relay may still not be live before it is logged. Default 30 s. */
  graceMs?: number;
  /** One check, connect to last byte. Default 5 s. */
  timeoutMs?: number;
  /** Checks in flight at once. Default 4. */
  concurrency?: number;
}

export interface AgentRelayLive {
  status: LiveStatus;
  checked_at: string | null;
  error?: string;
}

interface Entry {
  host: string;
  want: LiveExpectation;
  writtenAt: number;
  status: LiveStatus;
  checkedAt: number | null;
  error: string;
  /** Logged for this write already. */
  warned: boolean;
  /** Bumped on each write, so a check that started before it does not overwrite newer news. */
  generation: number;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

/** What zooid should serve for a file the agent wrote (null: the config names no host). */
export function liveExpectationOf(rep: RelayRep): { host: string; want: LiveExpectation } | null {
  const host = str(rep.config.host);
  if (!host) return null;
  const info = (rep.config.info ?? {}) as Record<string, unknown>;
  return {
    host,
    want: {
      // zooid loads an inactive relay's file but does not serve it (docs/zooid-contract.md §5).
      served: rep.config.inactive !== true,
      reason: rep.config.inactive === true ? 'inactive' : '',
      info: {
        name: str(info.name),
        description: str(info.description),
        icon: str(info.icon),
        pubkey: str(info.pubkey),
      },
      self: publicKeyOf(rep.secret),
    },
  };
}

export class AgentLiveChecker {
  private readonly entries = new Map<string, Entry>();
  private readonly intervalMs: number;
  private readonly graceMs: number;
  private readonly timeoutMs: number;
  private readonly concurrency: number;
  private timer: TimerHandle | undefined;
  private round: Promise<void> | undefined;
  private closed = false;
  /** Ids waiting for a check (a set: a relay written twice before its check is checked once). */
  private readonly queue = new Set<string>();
  private inFlight = 0;
  private readonly idle: Array<() => void> = [];

  constructor(private readonly options: AgentLiveOptions) {
    this.intervalMs = options.intervalMs ?? 60_000;
    this.graceMs = options.graceMs ?? 30_000;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  start(): void {
    this.schedule();
  }

  close(): void {
    this.closed = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.queue.clear();
  }

  /** A relay's file was written: checked now, and on every round from now on. */
  written(rep: RelayRep): void {
    const expected = liveExpectationOf(rep);
    if (!expected) {
      this.entries.delete(rep.id);
      return;
    }
    const prior = this.entries.get(rep.id);
    this.entries.set(rep.id, {
      ...expected,
      writtenAt: this.options.clock.now(),
      status: prior?.status ?? 'unknown',
      checkedAt: prior?.checkedAt ?? null,
      error: prior?.error ?? '',
      warned: false,
      generation: (prior?.generation ?? 0) + 1,
    });
    this.enqueue(rep.id);
  }

  removed(id: string): void {
    this.entries.delete(id);
    this.queue.delete(id);
  }

  snapshot(): Record<string, AgentRelayLive> {
    const out: Record<string, AgentRelayLive> = {};
    for (const id of [...this.entries.keys()].sort()) {
      const e = this.entries.get(id)!;
      out[id] = {
        status: e.status,
        checked_at: e.checkedAt === null ? null : new Date(e.checkedAt).toISOString(),
        ...(e.error ? { error: e.error } : {}),
      };
    }
    return out;
  }

  /** Checks every relay now; resolves when all of them are done. */
  checkAll(): Promise<void> {
    for (const id of this.entries.keys()) this.enqueue(id);
    return this.drained();
  }

  /** Resolves when no check is queued or running. */
  drained(): Promise<void> {
    if (this.inFlight === 0 && this.queue.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.round ??= this.checkAll().finally(() => {
        this.round = undefined;
      });
      this.schedule();
    }, this.intervalMs);
  }

  private enqueue(id: string): void {
    if (this.closed) return;
    this.queue.add(id);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.concurrency && this.queue.size > 0) {
      const id = this.queue.values().next().value!;
      this.queue.delete(id);
      this.inFlight++;
      void this.check(id).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && this.queue.size === 0) for (const r of this.idle.splice(0)) r();
      });
    }
  }

  private async check(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) return;
    const { generation } = entry;
    const got = await fetchRelayInfo({
      baseUrl: this.options.baseUrl,
      host: entry.host,
      timeoutMs: this.timeoutMs,
      clock: this.options.clock,
    });
    const now = this.entries.get(id);
    if (this.closed || now !== entry || entry.generation !== generation) return;
    const seen = compareLive(entry.want, got);
    entry.status = seen.status;
    entry.error = seen.error;
    entry.checkedAt = this.options.clock.now();
    if (seen.status === 'live') {
      entry.warned = false;
      return;
    }
    if (!entry.warned && entry.checkedAt - entry.writtenAt >= this.graceMs) {
      entry.warned = true;
      this.options.logger.warn(
        { id, status: seen.status, error: seen.error || undefined, graceMs: this.graceMs },
        'relay is not live after its file was written',
      );
    }
  }
}
