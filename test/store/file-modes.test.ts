/**
 * Files that hold secrets are the owner's only: the SQLite database with its -wal and -shm (every
 * relay's secret key), the directory bosun creates for it, and the admin token — 0700/0600 even
 * under umask 000; an existing file others can read is named in a warning at start.
 */
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { useCleanups } from '../support/cleanups.js';
import { startServer } from '../support/env.js';
import { spawnBosun } from '../support/spawn.js';

const cleanups = useCleanups();
const dir = () => cleanups.tempDir('bosun-modes-');
const mode = (file: string) => statSync(file).mode & 0o777;

describe('file modes of secrets', () => {
  it('bosun serve under umask 000: data/ is 0700; bosun.db, -wal, -shm and admin-token are 0600', async () => {
    const root = dir();
    const data = join(root, 'data');
    const serve = spawnBosun(
      ['serve', '--port', '0', '--database-url', `sqlite:${join(data, 'bosun.db')}`],
      { BOSUN_ADMIN_TOKEN: '' },
      root,
      { umask: 0o000 },
    );
    cleanups.defer(async () => {
      serve.child.kill('SIGKILL');
      await serve.exited;
    });
    await serve.waitFor(/"msg":"bosun listening"/);
    expect({
      data: mode(data),
      db: mode(join(data, 'bosun.db')),
      wal: mode(join(data, 'bosun.db-wal')),
      shm: mode(join(data, 'bosun.db-shm')),
      token: mode(join(data, 'admin-token')),
    }).toEqual({ data: 0o700, db: 0o600, wal: 0o600, shm: 0o600, token: 0o600 });
  });

  it('warns at start, naming each file others can read, and how to fix it', async () => {
    const d = dir();
    const file = join(d, 'bosun.db');
    const store = new SqliteStore(file);
    await store.setCursor('x', 1);
    chmodSync(file, 0o644);
    chmodSync(`${file}-wal`, 0o640);
    await store.close();
    const s = await startServer({ dir: d });
    cleanups.defer(() => s.close());
    const warnings = s.logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'a file holding secrets is readable by others');
    expect(warnings.map((w) => [w.file, w.mode, w.fix])).toEqual([[file, '644', `chmod 600 ${file}`]]);
  });
});
