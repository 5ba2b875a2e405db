import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keypair, tempDir } from '../support/env.js';
import { startServe } from '../support/spawn.js';
import { run, useServe } from './helpers.js';

describe('bosun CLI against a running server', () => {
  const { dir, env } = useServe();
  const { pubkey } = keypair();

  it('creates, lists, shows, updates and deletes relays', async () => {
    const created = await run(
      ['relay', 'create', 'cli-1', '--host', 'cli-1.example.com', '--pubkey', pubkey, '--groups'],
      env,
    );
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/cli-1\s+cli-1\.example\.com\s+default\s+active\s+1\s+pending/);

    const list = await run(['relay', 'list', '--json'], env);
    const page = JSON.parse(list.out);
    expect(page.relays.map((r: { id: string }) => r.id)).toEqual(['cli-1']);
    expect(page.relays[0].config.groups.enabled).toBe(true);

    const upd = await run(
      ['relay', 'update', 'cli-1', '--set', 'roles.admin.can_manage=true', '--name', 'CLI one', '--json'],
      env,
    );
    expect(JSON.parse(upd.out)).toMatchObject({
      version: 2,
      config: { info: { name: 'CLI one' }, roles: { admin: { can_manage: true, pubkeys: [] } } },
    });
    expect((await run(['relay', 'deactivate', 'cli-1'], env)).out).toMatch(/inactive\s+3/);
    expect((await run(['relay', 'activate', 'cli-1'], env)).out).toMatch(/active\s+4/);
    expect((await run(['relay', 'resync', 'cli-1'], env)).code).toBe(0);
    const show = JSON.parse((await run(['relay', 'show', 'cli-1'], env)).out);
    expect(show).not.toHaveProperty('secret');
    const acts = await run(['relay', 'activities', 'cli-1'], env);
    expect(acts.out.match(/create_relay|update_relay|deactivate_relay|activate_relay|resync_relay/g)).toEqual(
      ['create_relay', 'update_relay', 'deactivate_relay', 'activate_relay', 'resync_relay'],
    );
    expect((await run(['relay', 'delete', 'cli-1'], env)).code).toBe(0);
    const gone = await run(['relay', 'show', 'cli-1'], env);
    expect(gone.code).toBe(1);
    expect(gone.out.trim()).toBe('bosun: relay "cli-1" not found [relay_not_found]');
  });

  it('creates tokens that print once and work', async () => {
    const t = await run(['token', 'create', '--role', 'tenant', '--owner', 'dora'], env);
    expect(t.code).toBe(0);
    const token = t.out.split('\n')[0]!;
    expect(token).toMatch(/^bosun_[A-Za-z0-9_-]{32}$/);
    const mine = await run(['relay', 'list', '--json'], { ...env, BOSUN_TOKEN: token });
    expect(JSON.parse(mine.out).relays).toEqual([]);
    const listed = await run(['token', 'list'], env);
    expect(listed.out).toContain('dora');
    expect(listed.out).not.toContain(token);
  });

  it('explains failures in one line without a stack trace', async () => {
    const bad = await run(['relay', 'create', 'x1', '--host', 'x1.example:0', '--pubkey', 'nope'], env);
    expect(bad.code).toBe(1);
    expect(bad.out.trim().split('\n')).toHaveLength(1);
    expect(bad.out).toMatch(/^bosun: --host: .*--pubkey: .*\[invalid_request\]/);
    const down = await run(['relay', 'list'], { BOSUN_SERVER: 'http://127.0.0.1:1', BOSUN_TOKEN: 't' });
    expect(down.code).toBe(1);
    expect(down.out).toMatch(
      /^bosun: cannot reach bosun at http:\/\/127\.0\.0\.1:1 .*is `bosun serve` running\?/,
    );
    expect(down.out).not.toMatch(/\n\s+at /);
    const unauth = await run(['relay', 'list'], { ...env, BOSUN_TOKEN: 'wrong' });
    expect(unauth.out.trim()).toBe('bosun: unknown, revoked or expired token [unauthorized]');
    // A document nested deeper than bosun reads is refused before it is sent.
    const deep = join(dir.path, 'deep.json');
    writeFileSync(deep, `{"info":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    const nested = await run(['relay', 'create', 'x2', '--host', 'x2.example', '--file', deep], env);
    expect(nested).toEqual({
      code: 1,
      out: `bosun: ${deep}: JSON nested over 64 levels of objects and arrays (the limit)\n`,
    });
  });
});

describe('bosun serve start-up', () => {
  it('refuses bad configuration with a message naming the variable', async () => {
    const dir = tempDir();
    const port = await run(['serve'], { PORT: 'eighty' }, dir.path);
    expect(port.code).toBe(1);
    expect(port.out.trim()).toBe('bosun: invalid configuration: PORT: must be a TCP port number (0-65535)');
    const key = await run(
      ['serve'],
      { ZOOID_API_URL: 'http://127.0.0.1:3334', BOSUN_SECRET_KEY: '' },
      dir.path,
    );
    expect(key.out.trim()).toBe(
      'bosun: invalid configuration: BOSUN_SECRET_KEY: is required when ZOOID_API_URL is set (it signs requests to zooid)',
    );
    const db = await run(['serve'], { BOSUN_DATABASE_URL: 'mysql://x' }, dir.path);
    expect(db.out).toMatch(/BOSUN_DATABASE_URL: must be sqlite:<file> or postgres:/);
    dir.cleanup();
  });

  it('generates an admin token file on a fresh install, usable by the CLI from that directory', async () => {
    const dir = tempDir();
    const server = await startServe({ BOSUN_ADMIN_TOKEN: '' }, dir.path);
    expect(server.output()).toContain('"file":"data/admin-token"');
    const list = await run(
      ['relay', 'list', '--json'],
      { BOSUN_SERVER: server.url, BOSUN_TOKEN: '' },
      dir.path,
    );
    expect(list.out).not.toContain('bosun:');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.out)).toEqual({ relays: [], next: null });
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    dir.cleanup();
  });
});
