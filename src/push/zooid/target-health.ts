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

/** Sync failures that speak about zooid itself, not about one relay's config. */
const UNHEALTHY: ReadonlySet<ZooidErrorKind> = new Set(['auth', 'forbidden', 'transient']);
/** Syncs that must fail in a row before the target is taken as not up (one may be a fluke). */
const FAILING_AFTER = 3;

export interface TargetHealthHooks {
  /** After every probe and every change of `up`. */
  onStatus?: (status: TargetStatus) => void;
  /** The probe got an answer again after it got none: failed relays are worth a try now. */
  onRecovered?: () => void;
  /** After every probe that zooid answered: push sync need not wait out its backoff for it. */
  onProbe?: () => void;
}

/**
 * The health of the zooid instance: the probe AND the outcomes of recent syncs. The probe is an
 * unsigned request (zooid answers 401), so an answer only shows zooid is reachable; a zooid that
 * refuses bosun's key (403), its signatures (401), or every write (5xx) answers the probe too. So
 * the target is not up while the last syncs all failed that way — until one succeeds, or zooid
 * answers it in a way that speaks about the relay (400, 404, 409).
 */
export class TargetHealth extends Chore {
  private probe: Omit<TargetStatus, 'syncFailures'>;
  private failures = 0;
  private lastFailure = '';
  private lastUp: boolean | null = null;

  constructor(
    private readonly apiUrl: string,
    private readonly clock: Clock,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly hooks: TargetHealthHooks = {},
  ) {
    super(TARGET_HEALTH);
    this.probe = { url: apiUrl, up: null, latencyMs: null, checkedAt: null, error: null };
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

  /** The outcome of one sync request to this target (from push sync). */
  recordSync(result: ZooidResult): void {
    if (!result.ok && UNHEALTHY.has(result.kind)) {
      this.failures++;
      this.lastFailure = result.message;
    } else {
      this.failures = 0;
      this.lastFailure = '';
    }
    const status = this.status();
    if (status.up !== this.lastUp) this.publish(status);
  }

  async once(signal: AbortSignal): Promise<void> {
    const started = performance.now();
    let up = false;
    let error: string | null = null;
    try {
      const res = await this.fetchImpl(`${this.apiUrl.replace(/\/+$/, '')}/relay/`, {
        method: 'GET',
        signal,
      });
      await res.arrayBuffer();
      up = true;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      error = cause ?? (err instanceof Error ? err.message : String(err));
    }
    const latencyMs = Math.round((performance.now() - started) * 10) / 10;
    const recovered = up && this.probe.up === false;
    this.probe = {
      url: this.apiUrl,
      up,
      latencyMs: up ? latencyMs : null,
      checkedAt: new Date(this.clock.now()).toISOString(),
      error,
    };
    this.publish(this.status());
    if (up) this.hooks.onProbe?.();
    if (recovered) this.hooks.onRecovered?.();
  }

  private publish(status: TargetStatus): void {
    this.lastUp = status.up;
    this.hooks.onStatus?.(status);
  }
}
