import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keypair } from '../support/env.js';
import { run, useServe } from './helpers.js';

describe('bosun target', () => {
  const bosunKey = keypair();
  const euKey = keypair();
  const { dir, env } = useServe({
    ZOOID_API_URL: 'http://127.0.0.1:9',
    BOSUN_SECRET_KEY: bosunKey.secret,
    BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'false',
  });

  it('adds (key from a 0600 file), lists, shows, updates and removes targets; never prints a key', async () => {
    const keyFile = join(dir.path, 'eu-1.key');
    writeFileSync(keyFile, `${euKey.secret}\n`, { mode: 0o644 });
    const exposed = await run(
      ['target', 'add', 'eu-1', '--url', 'http://127.0.0.1:3334', '--secret-key-file', keyFile],
      env,
    );
    expect(exposed.code).toBe(1);
    expect(exposed.out.trim()).toBe(
      `bosun: --secret-key-file ${keyFile} is readable by others (mode 644); run: chmod 600 ${keyFile}`,
    );
    chmodSync(keyFile, 0o600);

    const added = await run(
      ['target', 'add', 'eu-1', '--url', 'http://127.0.0.1:3334', '--secret-key-file', keyFile],
      env,
    );
    expect(added.code).toBe(0);
    expect(added.out).toContain(euKey.pubkey);
    expect(added.out).toMatch(/API_WHITELIST/);

    const list = await run(['target', 'list'], env);
    expect(list.out).toMatch(/NAME\s+URL\s+PUBKEY\s+KEY\s+HEALTH/);
    expect(list.out).toMatch(/default\s+http:\/\/127\.0\.0\.1:9\s+[0-9a-f]{64}\s+default/);
    expect(list.out).toMatch(new RegExp(`eu-1\\s+http://127\\.0\\.0\\.1:3334\\s+${euKey.pubkey}\\s+own`));
    const listed = JSON.parse((await run(['target', 'list', '--json'], env)).out);
    expect(listed.map((t: { name: string }) => t.name)).toEqual(['default', 'eu-1']);

    const show = await run(['target', 'show', 'eu-1'], env);
    expect(show.out).toMatch(/^name:\s+eu-1$/m);
    expect(show.out).toMatch(/^fleets:\s+\(none\)$/m);
    expect(show.out).toMatch(/^relays:\s+0 synced, 0 pending, 0 retrying, 0 failed$/m);

    const updated = await run(
      ['target', 'update', 'eu-1', '--default-key', '--url', 'http://127.0.0.1:3335', '--json'],
      env,
    );
    expect(JSON.parse(updated.out)).toMatchObject({
      url: 'http://127.0.0.1:3335',
      key: 'default',
      pubkey: bosunKey.pubkey,
    });

    const dup = await run(['target', 'add', 'eu-1', '--url', 'http://127.0.0.1:3334'], env);
    expect(dup.code).toBe(1);
    expect(dup.out.trim().split('\n')).toHaveLength(1);
    expect(dup.out).toMatch(/eu-1 already exists/);

    const bad = await run(['target', 'add', 'us-1', '--url', 'http://user:pw@127.0.0.1:3334'], env);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/url: must not hold credentials/);

    expect((await run(['target', 'remove', 'eu-1'], env)).out.trim()).toBe('removed eu-1');
    const gone = await run(['target', 'show', 'eu-1'], env);
    expect(gone.code).toBe(1);
    expect(gone.out).toMatch(/target "eu-1" not found/);

    const everything = [exposed, added, list, show, updated, dup, bad].map((r) => r.out).join('\n');
    expect(everything).not.toContain(euKey.secret);
    expect(everything).not.toContain(bosunKey.secret);
    // Eleven CLI processes on a loaded machine.
  }, 180_000);
});
