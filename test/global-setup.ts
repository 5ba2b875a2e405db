import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Tests spawn the real `bin/bosun.js`, so compile src/ to dist/ once before they run. */
export default function setup() {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
}
