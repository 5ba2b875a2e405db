import { describe, expect, it } from 'vitest';
import { ConfigError, loadServeConfig } from '../../src/config.js';

describe('live verification settings', () => {
  it('default to every 5 minutes, a 30 s grace, https://<host>/', () => {
    expect(loadServeConfig({}).verify).toEqual({
      url: null,
      intervalMs: 300_000,
      graceMs: 30_000,
      timeoutMs: 5000,
      concurrency: 8,
    });
    const set = loadServeConfig({
      BOSUN_VERIFY_URL: 'http://10.0.0.5:3334',
      BOSUN_VERIFY_INTERVAL_MS: '0',
      BOSUN_VERIFY_GRACE_MS: '1000',
    }).verify;
    expect(set).toMatchObject({ url: 'http://10.0.0.5:3334', intervalMs: 0, graceMs: 1000 });
  });

  it('refuses a verify URL that is not the address of a zooid instance, in one line', () => {
    for (const url of ['10.0.0.5:3334', 'ftp://x:1', 'http://x:1/relay', 'http://u:p@x:1']) {
      let error: unknown;
      try {
        loadServeConfig({ BOSUN_VERIFY_URL: url });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/^invalid configuration: BOSUN_VERIFY_URL: .*$/);
      expect((error as Error).message).not.toContain('\n');
    }
    expect(() => loadServeConfig({ BOSUN_VERIFY_INTERVAL_MS: '-1' })).toThrow(/BOSUN_VERIFY_INTERVAL_MS/);
  });
});
