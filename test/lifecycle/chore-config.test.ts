import { describe, expect, it } from 'vitest';
import { ConfigError, loadServeConfig } from '../../src/config.js';

describe('chore configuration', () => {
  it('keeps every chore’s defaults, set beside the chore', () => {
    const minute = 60_000;
    const hour = 60 * minute;
    expect(loadServeConfig({}).chores).toEqual({
      retry_sweeper: { interval: 5_000, timeout: 30_000, enabled: true },
      drift_repair: { interval: minute, timeout: minute, enabled: true },
      resync: { interval: 10 * hour, timeout: hour, enabled: true },
      resync_failed: { interval: 10 * minute, timeout: 5 * minute, enabled: true },
      credential_expiry: { interval: minute, timeout: 30_000, enabled: true },
      activity_retention: { interval: hour, timeout: 5 * minute, enabled: true },
      target_health: { interval: 30_000, timeout: 10_000, enabled: true },
    });
  });

  it('reads BOSUN_CHORE_<NAME>_INTERVAL, _TIMEOUT and _ENABLED, and names a bad one', () => {
    const config = loadServeConfig({
      BOSUN_CHORE_RESYNC_INTERVAL: '2h',
      BOSUN_CHORE_RESYNC_TIMEOUT: '90s',
      BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
    });
    expect(config.chores.resync).toEqual({ interval: 2 * 3_600_000, timeout: 90_000, enabled: true });
    expect(config.chores.target_health.enabled).toBe(false);
    expect(() => loadServeConfig({ BOSUN_CHORE_DRIFT_REPAIR_INTERVAL: 'soon' })).toThrow(ConfigError);
    expect(() => loadServeConfig({ BOSUN_CHORE_DRIFT_REPAIR_INTERVAL: 'soon' })).toThrow(
      /BOSUN_CHORE_DRIFT_REPAIR_INTERVAL/,
    );
  });
});
