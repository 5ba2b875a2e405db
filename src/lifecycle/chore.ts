import type { Clock } from '../domain/clock.js';
import type { Random } from '../domain/random.js';
import { Cycle, type CycleRunInfo } from './cycle.js';

/**
 * How a chore runs (a Storj chore's Config). Each chore defines its own; an operator overrides
 * `interval`, `timeout` and `enabled` with `BOSUN_CHORE_<NAME>_INTERVAL`, `_TIMEOUT`, `_ENABLED`.
 */
export interface ChoreConfig {
  /** Milliseconds between the end of one run and the next. */
  interval: number;
  /** A run's signal is aborted after this many milliseconds. */
  timeout: number;
  enabled: boolean;
  /** Each wait is within interval·(1 ± jitter), so replicas and restarts don't run in step. */
  jitter: number;
  /** The first run is at start (true) or one interval later. */
  runAtStart: boolean;
  /** Only the replica holding the worker lease runs it (false: every replica does). */
  needsLease: boolean;
}

/** The part of a ChoreConfig an operator sets through the environment. */
export type ChoreSettings = Pick<ChoreConfig, 'interval' | 'timeout' | 'enabled'>;

/** A chore's name (in env var names, the `chore` label of metrics, logs) and its defaults. */
export interface ChoreDefinition<Name extends string = string> {
  readonly name: Name;
  readonly config: Readonly<ChoreConfig>;
}

/** What most chores do: enabled, run by the lease holder only, first run at start, waits within ±5%. */
const USUAL: Omit<ChoreConfig, 'interval' | 'timeout'> = {
  enabled: true,
  jitter: 0.05,
  runAtStart: true,
  needsLease: true,
};

/** A chore's definition: its name, and its interval and timeout over the usual defaults. */
export function defineChore<Name extends string>(
  name: Name,
  config: Pick<ChoreConfig, 'interval' | 'timeout'> & Partial<ChoreConfig>,
): ChoreDefinition<Name> {
  return { name, config: { ...USUAL, ...config } };
}

/** What a chore's Cycle reports to and times itself with (from the Peer). */
export interface ChoreRuntime {
  clock: Clock;
  random?: Random;
  onError?: (err: unknown, name: string) => void;
  onRun?: (info: CycleRunInfo) => void;
}

/**
 * A periodic job that owns its loop, like a Storj chore: it knows its config and builds its own
 * Cycle; `once` is one pass. The Peer schedules every chore the same way, by this class alone.
 */
export abstract class Chore {
  readonly name: string;
  private settled: ChoreConfig;
  private loop: Cycle | undefined;

  protected constructor(definition: ChoreDefinition) {
    this.name = definition.name;
    this.settled = { ...definition.config };
  }

  /** One pass; `signal` aborts on timeout or stop. */
  abstract once(signal: AbortSignal): Promise<void>;

  /** The defaults, with the operator's settings over them once scheduled. */
  get config(): Readonly<ChoreConfig> {
    return this.settled;
  }

  /**
   * Applies the operator's settings over the defaults and builds this chore's Cycle, or returns
   * null when the chore is disabled.
   */
  schedule(settings: ChoreSettings | undefined, runtime: ChoreRuntime): Cycle | null {
    if (this.loop) throw new Error(`chore "${this.name}" is already scheduled`);
    this.settled = { ...this.settled, ...settings };
    if (!this.settled.enabled) return null;
    this.loop = new Cycle({
      name: this.name,
      interval: this.settled.interval,
      timeout: this.settled.timeout,
      jitter: this.settled.jitter,
      runAtStart: this.settled.runAtStart,
      clock: runtime.clock,
      ...(runtime.random ? { random: runtime.random } : {}),
      ...(runtime.onError ? { onError: runtime.onError } : {}),
      ...(runtime.onRun ? { onRun: runtime.onRun } : {}),
    });
    return this.loop;
  }

  /** The Cycle built by schedule(). */
  get cycle(): Cycle {
    if (!this.loop) throw new Error(`chore "${this.name}" is not scheduled`);
    return this.loop;
  }

  /** Asks for a pass now (coalescing with others); a no-op unless scheduled. */
  trigger(): void {
    this.loop?.trigger();
  }
}
