import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, apiCall, keypair, tempDir } from '../support/env.js';
import { freshSchema, postgresUrl } from '../support/postgres.js';
import { type Spawned, spawnBosun, startServe } from '../support/spawn.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

async function run(args: string[], env: Record<string, string>, cwd?: string) {
  const p = spawnBosun(args, env, cwd);
  const { code } = await p.exited;
  return { code, out: p.output() };
}

async function stop(server: Spawned) {
  server.child.kill('SIGTERM');
  return server.exited;
}

/** `bosun serve` on a random port in `cwd`, with no bootstrap token: a fresh installation. */
const install = (cwd: string, env: Record<string, string> = {}) =>
  startServe({ BOSUN_ADMIN_TOKEN: '', BOSUN_DATABASE_URL: '', ...env }, cwd);

describe('version', { timeout: 120_000 }, () => {
  it('bosun --version, -V and version print the package version', async () => {
    for (const args of [['--version'], ['-V'], ['version']]) {
      const r = await run(args, {});
      expect({ args, ...r }).toEqual({ args, code: 0, out: `${VERSION}\n` });
    }
  });

  it('/healthz and /metrics carry the version', async () => {
    const dir = tempDir();
    const server = await startServe({ BOSUN_ADMIN_TOKEN: ADMIN_TOKEN }, dir.path);
    try {
      expect((await apiCall(server.url, 'GET', '/healthz', undefined, '')).body).toEqual({
        status: 'ok',
        version: VERSION,
      });
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain(`bosun_build_info{version="${VERSION}"} 1`);
    } finally {
      await stop(server);
      dir.cleanup();
    }
  });
});

describe('admin token files, one per database', { timeout: 180_000 }, () => {
  it('a second installation in the same directory leaves the first one its token', async () => {
    const dir = tempDir();
    const first = await install(dir.path);
    const tokenFile = join(dir.path, 'data/admin-token');
    const firstToken = readFileSync(tokenFile, 'utf8');
    await stop(first);

    const second = await install(dir.path, { BOSUN_DATABASE_URL: 'sqlite:./data/staging.db' });
    expect(second.output()).not.toContain('"adminTokenFile":"data/admin-token"');
    await stop(second);
    expect(readFileSync(tokenFile, 'utf8')).toBe(firstToken);
    const secondFile = join(dir.path, 'data/staging.admin-token');
    expect(statSync(secondFile).mode & 0o777).toBe(0o600);

    // The tour's case: the CLI in that directory finds the default database's token by itself.
    const again = await install(dir.path);
    const list = await run(
      ['relay', 'list', '--json'],
      { BOSUN_SERVER: again.url, BOSUN_TOKEN: '' },
      dir.path,
    );
    expect(list).toEqual({ code: 0, out: `${JSON.stringify({ relays: [], next: null }, null, 2)}\n` });
    await stop(again);
    dir.cleanup();
  });

  it.skipIf(!postgresUrl)('PostgreSQL installations get their own file, one per schema', async () => {
    const dir = tempDir();
    const a = freshSchema();
    const b = freshSchema();
    try {
      for (const db of [a, b]) await stop(await install(dir.path, { BOSUN_DATABASE_URL: db.url }));
      expect(existsSync(join(dir.path, 'data/admin-token'))).toBe(false);
      for (const db of [a, b]) {
        const file = join(dir.path, `data/postgres-127.0.0.1-5432-test-${db.schema}.admin-token`);
        expect(readFileSync(file, 'utf8')).toMatch(/^bosun_/);
      }
    } finally {
      await a.drop();
      await b.drop();
      dir.cleanup();
    }
  });

  it('refuses to overwrite a token file it did not write for this database, naming the way out', async () => {
    const dir = tempDir();
    await stop(await install(dir.path));
    const tokenFile = join(dir.path, 'data/admin-token');
    const old = readFileSync(tokenFile, 'utf8');
    rmSync(join(dir.path, 'data/bosun.db'));
    const r = await run(
      ['serve', '--port', '0'],
      { BOSUN_ADMIN_TOKEN: '', BOSUN_DATABASE_URL: '' },
      dir.path,
    );
    expect(r.code).toBe(1);
    expect(r.out).toBe(
      'bosun: the database sqlite:./data/bosun.db has no admin token, and data/admin-token already exists ' +
        '(it may belong to another database): move it away, or create an admin token with ' +
        '`bosun token create --role admin --database-url sqlite:./data/bosun.db`\n',
    );
    expect(readFileSync(tokenFile, 'utf8')).toBe(old);
    dir.cleanup();
  });

  it('a locked-out operator creates an admin token straight in the database', async () => {
    const dir = tempDir();
    const server = await install(dir.path);
    rmSync(join(dir.path, 'data/admin-token'));
    const created = await run(
      [
        'token',
        'create',
        '--role',
        'admin',
        '--name',
        'recovery',
        '--database-url',
        'sqlite:./data/bosun.db',
      ],
      {},
      dir.path,
    );
    expect(created.code).toBe(0);
    const [token, note] = created.out.split('\n');
    expect(token).toMatch(/^bosun_[A-Za-z0-9_-]{32}$/);
    expect(note).toMatch(/^token tok_[0-9a-f]{12} \(admin\) created in sqlite:\.\/data\/bosun\.db;/);
    const list = await run(['relay', 'list'], { BOSUN_SERVER: server.url, BOSUN_TOKEN: token! }, dir.path);
    expect(list.code).toBe(0);
    await stop(server);
    dir.cleanup();
  });
});

describe('start-up failures: one line, exit 1, nothing written', () => {
  let busy: Server;
  let busyPort: number;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    busyPort = (busy.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

  const cases: [string, Record<string, string>, string[], RegExp][] = [
    [
      'a port in use',
      {},
      ['--port', 'BUSY'],
      /^bosun: cannot listen on 127\.0\.0\.1:\d+: the address is in use .*--port/,
    ],
    [
      'a database directory under /proc',
      {},
      ['--database-url', 'sqlite:/proc/nope/b.db'],
      /^bosun: cannot open the database sqlite:\/proc\/nope\/b\.db: ENOENT/,
    ],
    [
      'a database path through a file',
      {},
      ['--database-url', 'sqlite:/etc/passwd/b.db'],
      /^bosun: cannot open the database sqlite:\/etc\/passwd\/b\.db: /,
    ],
    [
      'a database that is a directory',
      {},
      ['--database-url', 'sqlite:/tmp'],
      /^bosun: cannot open the database sqlite:\/tmp: /,
    ],
    [
      'a malformed PostgreSQL URL',
      {},
      ['--database-url', 'postgres://u@[zz/db'],
      /^bosun: invalid configuration: --database-url: not a valid postgres:\/\/ URL$/,
    ],
    [
      'an unreachable PostgreSQL',
      {},
      ['--database-url', 'postgres://bosun:hunter2@127.0.0.1:1/db'],
      /^bosun: cannot open the database postgres:\/\/bosun:\*\*\*@127\.0\.0\.1:1\/db: connect ECONNREFUSED/,
    ],
  ];
  for (const [name, env, flags, message] of cases) {
    it(name, async () => {
      const dir = tempDir();
      const args = ['serve', ...flags.map((f) => (f === 'BUSY' ? String(busyPort) : f))];
      const started = Date.now();
      const r = await run(args, { BOSUN_ADMIN_TOKEN: '', BOSUN_DATABASE_URL: '', ...env }, dir.path);
      // Bounded (a hang is the bug); generous, as a loaded machine starts node slowly.
      expect(Date.now() - started).toBeLessThan(45_000);
      expect(r.code).toBe(1);
      expect(r.out.split('\n')).toEqual([expect.stringMatching(message), '']);
      expect(r.out).not.toContain('hunter2');
      expect(existsSync(join(dir.path, 'data'))).toBe(false);
      dir.cleanup();
    }, 60_000);
  }
});

/** A `bosun serve` on a fresh SQLite file for the tests of one describe, and the CLI env reaching it. */
function useServe(): { readonly server: Spawned & { url: string }; readonly env: Record<string, string> } {
  const dir = tempDir();
  let server: Spawned & { url: string };
  let env: Record<string, string>;
  beforeAll(async () => {
    server = await startServe({
      BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'b.db')}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    env = { BOSUN_SERVER: server.url, BOSUN_TOKEN: ADMIN_TOKEN };
  }, 60_000);
  afterAll(async () => {
    await stop(server);
    dir.cleanup();
  });
  return {
    get server() {
      return server;
    },
    get env() {
      return env;
    },
  };
}

describe('CLI errors name the flag', { timeout: 120_000 }, () => {
  const serve = useServe();

  it('a missing or invalid field is shown as the flag that sets it', async () => {
    const missing = await run(['relay', 'create', 'r1', '--host', 'r1.example.com'], serve.env);
    expect(missing).toEqual({ code: 1, out: 'bosun: --pubkey: is required [invalid_request]\n' });
    const bad = await run(['relay', 'create', 'r1', '--host', 'x1.example:0', '--pubkey', 'nope'], serve.env);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^bosun: --host: .*; --pubkey: .*\[invalid_request\]\n$/);
    // Fields only a document or --set can give keep their API path.
    const set = await run(
      [
        'relay',
        'create',
        'r1',
        '--host',
        'r1.example.com',
        '--pubkey',
        keypair().pubkey,
        '--set',
        'policy.public_join=7',
      ],
      serve.env,
    );
    expect(set.out).toMatch(/^bosun: policy\.public_join: /);
  });

  it('relay create --help marks the required flags', async () => {
    const help = await run(['relay', 'create', '--help'], {});
    expect(help.out).toMatch(/--host <host>\s+\(required\) /);
    expect(help.out).toMatch(/--pubkey <hex>\s+\(required\) /);
    expect(help.out).not.toMatch(/--name <name>\s+\(required\)/);
  });

  it('a bad serve flag is named as the flag, a bad variable as the variable', async () => {
    const flag = await run(['serve', '--log-level', 'loud'], {});
    expect(flag.out).toMatch(/^bosun: invalid configuration: --log-level: /);
    const variable = await run(['serve'], { BOSUN_LOG_LEVEL: 'loud' });
    expect(variable.out).toMatch(/^bosun: invalid configuration: BOSUN_LOG_LEVEL: /);
    const port = await run(['serve', '--port', 'x'], {});
    expect(port.out).toBe('bosun: invalid configuration: --port: must be a TCP port number (0-65535)\n');
  });
});

describe('logs', { timeout: 120_000 }, () => {
  it('one start-up line with the URL, the dashboard, the database and the token file; requests at debug', async () => {
    const dir = tempDir();
    const server = await install(dir.path);
    const line = JSON.parse(await server.waitFor(/"msg":"bosun listening"/));
    expect(line).toMatchObject({
      url: server.url,
      dashboard: `${server.url}/`,
      database: 'sqlite:./data/bosun.db',
      adminTokenFile: 'data/admin-token',
    });
    for (let i = 0; i < 3; i++) await apiCall(server.url, 'GET', '/healthz', undefined, '');
    await stop(server);
    expect(server.output()).not.toMatch(/healthz/);
    dir.cleanup();
  });
});

describe('logs on a terminal', { timeout: 120_000 }, () => {
  it('are human-readable lines when stdout is a TTY', async () => {
    const dir = tempDir();
    const bin = join(process.cwd(), 'bin/bosun.js');
    // script(1) gives bosun a pseudo-terminal; closing it (SIGHUP) ends bosun.
    const tty = spawn('script', ['-qfec', `${process.execPath} ${bin} serve --port 0`, '/dev/null'], {
      cwd: dir.path,
      env: {
        ...process.env,
        BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
        BOSUN_DATABASE_URL: '',
        BOSUN_LOG_LEVEL: 'info',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    try {
      await new Promise<void>((resolve, reject) => {
        tty.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (/bosun listening/.test(out)) resolve();
        });
        tty.on('exit', () => reject(new Error(out)));
      });
      expect(out).toMatch(
        /\d\d:\d\d:\d\d\.\d{3} INFO {2}bosun listening url=http:\/\/127\.0\.0\.1:\d+ dashboard=/,
      );
      expect(out).not.toContain('{"level"');
    } finally {
      tty.kill('SIGTERM');
      dir.cleanup();
    }
  });
});

describe('relay activities', { timeout: 120_000 }, () => {
  const serve = useServe();

  it('prints aligned columns', async () => {
    const { pubkey } = keypair();
    await run(['relay', 'create', 'a', '--host', 'a.example.com', '--pubkey', pubkey], serve.env);
    await run(
      ['relay', 'create', 'relay-with-a-long-id', '--host', 'b.example.com', '--pubkey', pubkey],
      serve.env,
    );
    const out = (await run(['relay', 'activities'], serve.env)).out.trimEnd().split('\n');
    expect(out).toHaveLength(3);
    const column = (line: string, text: string) => line.indexOf(text);
    expect(column(out[1]!, 'create_relay')).toBe(column(out[0]!, 'TYPE'));
    expect(column(out[2]!, 'create_relay')).toBe(column(out[0]!, 'TYPE'));
    expect(column(out[2]!, 'admin')).toBe(column(out[0]!, 'ACTOR'));
  });

  it('--follow listens on the activity stream instead of polling', async () => {
    const pageReads = async () => {
      const metrics = await (await fetch(`${serve.server.url}/metrics`)).text();
      return Number(
        /^bosun_http_requests_total\{method="GET",route="\/v1\/activities",status="200"\} (\d+)$/m.exec(
          metrics,
        )?.[1] ?? 0,
      );
    };
    const before = await pageReads();
    const follow = spawnBosun(['relay', 'activities', '--follow', '--after', '0'], serve.env);
    try {
      await follow.waitFor(/create_relay\s+relay-with-a-long-id/);
      await run(['relay', 'deactivate', 'a'], serve.env);
      await follow.waitFor(/deactivate_relay\s+a\b/, 5000);
      // Only activities are rows: the stream's `ready` event and comments print nothing.
      expect(follow.output()).not.toMatch(/undefined/);
      const metrics = await (await fetch(`${serve.server.url}/metrics`)).text();
      expect(metrics).toMatch(/^bosun_activity_streams 1$/m);
      // One read of the log's first page, then the stream: a poller would have read it again by now.
      expect((await pageReads()) - before).toBe(1);
    } finally {
      follow.child.kill('SIGINT');
      await follow.exited;
    }
  });
});
