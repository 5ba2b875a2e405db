import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { ADMIN_TOKEN, tempDir } from '../support/env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Whether something still answers at `url`: a bosun left behind would. */
const answers = (url: string) =>
  fetch(`${url}/healthz`).then(
    () => true,
    () => false,
  );

it('SIGTERM to `npm start` (a supervisor stopping it) stops bosun too', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const npm = spawn('npm', ['start', '--silent', '--', '--port', '0'], {
    cwd: ROOT,
    env: {
      ...process.env,
      BOSUN_DATABASE_URL: `sqlite:${join(dir.path, 'b.db')}`,
      BOSUN_ADMIN_TOKEN: ADMIN_TOKEN,
      BOSUN_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => npm.on('exit', (code) => resolve(code)));
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    npm.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"bosun listening"'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    npm.on('exit', () => reject(new Error(`npm start exited: ${out}`)));
  }).catch(async (err) => {
    npm.kill('SIGKILL');
    throw err;
  });
  expect(await answers(url)).toBe(true);
  npm.kill('SIGTERM');
  await exited;
  // bosun closes in order (grace for in-flight syncs, none here): allow it a few seconds.
  const deadline = Date.now() + 20_000;
  while ((await answers(url)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  expect(await answers(url)).toBe(false);
  dir.cleanup();
});
