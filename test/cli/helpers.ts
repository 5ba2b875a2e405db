import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ADMIN_TOKEN, tempDir } from '../support/env.js';
import { type Spawned, spawnBosun, startServe } from '../support/spawn.js';

/** Runs the CLI to its end: its exit code and everything it printed. */
export async function run(args: string[], env: Record<string, string>, cwd?: string) {
  const p = spawnBosun(args, env, cwd);
  const { code } = await p.exited;
  return { code, out: p.output() };
}

/**
 * A `bosun serve` on its own SQLite file, started before the describe block's tests and stopped
 * after them. `env` is filled in once it listens: what the CLI needs to reach it as the admin.
 */
export function useServe(serveEnv: Record<string, string> = {}): {
  dir: { path: string };
  env: Record<string, string>;
} {
  const dir = tempDir();
  const env: Record<string, string> = {};
  let server: Spawned & { url: string };
  beforeAll(async () => {
    server = await startServe({
      BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'bosun.db')}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      ...serveEnv,
    });
    Object.assign(env, { BOSUN_SERVER: server.url, BOSUN_TOKEN: ADMIN_TOKEN });
  });
  afterAll(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
    dir.cleanup();
  });
  return { dir, env };
}
