/** What every chore is configured by (a Storj chore's Config: interval and timeout, plus a switch). */
export interface ChoreConfig {
  interval: number;
  timeout: number;
  enabled: boolean;
}

/** One pass of a periodic job; a Cycle runs it every interval. */
export interface Chore {
  readonly name: ChoreName;
  once(signal: AbortSignal): Promise<void>;
}

export const CHORE_NAMES = [
  'retry_sweeper',
  'drift_repair',
  'resync',
  'resync_failed',
  'credential_expiry',
  'activity_retention',
  'target_health',
] as const;
export type ChoreName = (typeof CHORE_NAMES)[number];

export const CHORE_DEFAULTS: Record<ChoreName, ChoreConfig> = {
  retry_sweeper: { interval: 5_000, timeout: 30_000, enabled: true },
  drift_repair: { interval: 60_000, timeout: 60_000, enabled: true },
  resync: { interval: 10 * 3_600_000, timeout: 3_600_000, enabled: true },
  resync_failed: { interval: 10 * 60_000, timeout: 300_000, enabled: true },
  credential_expiry: { interval: 60_000, timeout: 30_000, enabled: true },
  activity_retention: { interval: 3_600_000, timeout: 300_000, enabled: true },
  target_health: { interval: 30_000, timeout: 10_000, enabled: true },
};
