import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Tests spawn the real `bin/bosun.js`, so compile src/ to dist/ once before they run.
 * BOSUN_TEST_SKIP_BUILD=1 skips it: for a second vitest run in the same checkout while another is
 * running, which would otherwise rewrite dist/ under the first run's child processes.
 */
export default function setup() {
  if (process.env.BOSUN_TEST_SKIP_BUILD === '1') return;
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
