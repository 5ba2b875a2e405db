import { describe, expect, it } from 'vitest';
import { ConfigError, loadServeConfig } from '../../src/config.js';
import { checkDatabaseUrl, redactUrl } from '../../src/store/url.js';

describe('database URLs outside the store', () => {
  it('checks a postgres:// URL without connecting, and leaves sqlite: to the opening', () => {
    expect(() => checkDatabaseUrl('postgres://u@127.0.0.1:1/db?schema=ok_1')).not.toThrow();
    expect(() => checkDatabaseUrl('sqlite:./x.db')).not.toThrow();
    expect(() => checkDatabaseUrl('postgres://u@127.0.0.1:1/db?schema=Bad-Name')).toThrow(
      /schema must match/,
    );
    expect(() => loadServeConfig({ BOSUN_DATABASE_URL: 'postgres://u@h/db?schema=Bad-Name' })).toThrow(
      ConfigError,
    );
    expect(() => loadServeConfig({ BOSUN_DATABASE_URL: 'postgres://u@h/db?schema=Bad-Name' })).toThrow(
      /BOSUN_DATABASE_URL: schema must match/,
    );
  });

  it('masks a password', () => {
    expect(redactUrl('postgres://u:hunter2@h/db')).toBe('postgres://u:***@h/db');
  });
});
