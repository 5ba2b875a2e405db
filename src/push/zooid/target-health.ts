import type { Clock } from '../../domain/clock.js';
import { Chore, defineChore } from '../../lifecycle/chore.js';
import type { ZooidErrorKind, ZooidResult } from './client.js';

export const TARGET_HEALTH = defineChore('target_health', {
  interval: 30_000,
  timeout: 10_000,
  // Every replica probes its zooid targets, for /metrics and /v1/targets.
  needsLease: false,
});

export interface TargetStatus {
  url: string;
  /** The probe answered and the recent syncs did not all fail; null before the first probe. */
  up: boolean | null;
  latencyMs: number | null;
  checkedAt: string | null;
  /** Why the target is not up: the probe's error, or the last of the syncs that failed in a row. */
  error: string | null;
  /** Syncs in a row that zooid refused (401, 403) or could not serve (5xx, network, timeout). */
  syncFailures: number;
}

/** A zooid instance to probe: `default` (ZOOID_API_URL) or a registered target. */
export interface ProbedTarget {
  name: string;
  url: string;
}

/** Sync failures that speak about zooid itself, not about one relay's config. */
const UNHEALTHY: ReadonlySet<ZooidErrorKind> = new Set(['auth', 'forbidden', 'transient']);
/** Syncs that must fail in a row before the target is taken as not up (one may be a fluke). */
const FAILING_AFTER = 3;

export interface TargetHealthHooks {
  /** After every probe of a target and every change of its `up`. */
  onStatus?: (target: string, status: TargetStatus) => void;
  /** A target's probe got an answer again after it got none: failed relays are worth a try now. */
  onRecovered?: (target: string) => void;
  /** After every probe that a target answered: push sync need not wait out its backoff for it. */
  onProbe?: (target: string) => void;
  /** A target is gone (removed, or ZOOID_API_URL unset): its series must not stay behind. */
  onRemoved?: (target: string) => void;
}

/** One target's health: its last probe and its syncs that failed in a row. */
class Health {
  probe: Omit<TargetStatus, 'syncFailures'>;
  failures = 0;
  lastFailure = '';
  lastUp: boolean | null = null;

  constructor(readonly url: string) {
    this.probe = { url, up: null, latencyMs: null, checkedAt: null, error: null };
  }

  status(): TargetStatus {
    const failing = this.failures >= FAILING_AFTER;
    const why = `the last ${this.failures} syncs failed: ${this.lastFailure}`;
    return {
      ...this.probe,
      up: failing ? false : this.probe.up,
      error: this.probe.error ?? (failing ? why : null),
      syncFailures: this.failures,
    };
  }
}

/**
 * The health of every zooid target: the probe AND the outcomes of recent syncs. The probe is an
 * unsigned request (zooid answers 401), so an answer only shows zooid is reachable; a zooid that
 * refuses bosun's key (403), its signatures (401), or every write (5xx) answers the probe too. So
 * a target is not up while its last syncs all failed that way — until one succeeds, or zooid
 * answers in a way that speaks about the relay (400, 404, 409). Each target keeps its own count:
 * one refusing zooid takes down only itself.
 */
export class TargetHealth extends Chore {
  private readonly health = new Map<string, Health>();

  constructor(
    /** The targets to probe now: `default` when ZOOID_API_URL is set, then the registered ones. */
    private readonly targets: () => Promise<ProbedTarget[]>,
    private readonly clock: Clock,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly hooks: TargetHealthHooks = {},
  ) {
    super(TARGET_HEALTH);
  }

  /** A target's health; null for a target not probed and not synced to yet. */
  status(target: string): TargetStatus | null {
    return this.health.get(target)?.status() ?? null;
  }

  /** The outcome of one sync request to a target (from push sync). */
  recordSync(target: ProbedTarget, result: ZooidResult): void {
    const h = this.healthOf(target);
    if (!result.ok && UNHEALTHY.has(result.kind)) {
      h.failures++;
      h.lastFailure = result.message;
    } else {
      h.failures = 0;
      h.lastFailure = '';
      // zooid answered a signed request: it is up, whatever an earlier probe found.
      if (result.ok && h.probe.up !== true) h.probe = { ...h.probe, up: true, error: null };
    }
    const status = h.status();
    if (status.up !== h.lastUp) this.publish(target.name, h, status);
  }

  async once(signal: AbortSignal): Promise<void> {
    const targets = await this.targets();
    const names = new Set(targets.map((t) => t.name));
    for (const name of [...this.health.keys()]) {
      if (names.has(name)) continue;
      this.health.delete(name);
      this.hooks.onRemoved?.(name);
    }
    // Probed side by side: one target that does not answer holds up no other's probe.
    await Promise.all(targets.map((t) => this.probeOne(t, signal)));
  }

  /** A target's state; a changed URL is another zooid, whose health starts afresh. */
  private healthOf(target: ProbedTarget): Health {
    let h = this.health.get(target.name);
    if (!h || h.url !== target.url) {
      h = new Health(target.url);
      this.health.set(target.name, h);
    }
    return h;
  }

  private async probeOne(target: ProbedTarget, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    let up = false;
    let error: string | null = null;
    try {
      const res = await this.fetchImpl(`${target.url.replace(/\/+$/, '')}/relay/`, {
        method: 'GET',
        signal,
      });
      // Any answer shows zooid is reachable; its body says nothing more, and is not read: whatever
      // answers at the URL cannot hold the probe or make bosun buffer it.
      await res.body?.cancel();
      up = true;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      error = cause ?? (err instanceof Error ? err.message : String(err));
    }
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    const h = this.healthOf(target);
    const recovered = up && h.probe.up === false;
    h.probe = {
      url: target.url,
      up,
      latencyMs: up ? latencyMs : null,
      checkedAt: new Date(this.clock.now()).toISOString(),
      error,
    };
    this.publish(target.name, h, h.status());
    if (up) this.hooks.onProbe?.(target.name);
    if (recovered) this.hooks.onRecovered?.(target.name);
  }

  private publish(target: string, h: Health, status: TargetStatus): void {
    h.lastUp = status.up;
    this.hooks.onStatus?.(target, status);
  }
}
