import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * `mkdir -p`, one level at a time. Node 20's `mkdirSync(dir, { recursive: true })` never returns
 * for a path under /proc (it retries ENOENT forever, burning CPU); this fails with the first error.
 * `mode` applies to the directories it creates (less the umask).
 */
export function makeDirs(dir: string, mode?: number): void {
  try {
    if (statSync(dir).isDirectory()) return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const parent = dirname(dir);
    if (parent !== dir) makeDirs(parent, mode);
    try {
      mkdirSync(dir, mode === undefined ? undefined : { mode });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  // It exists (or appeared meanwhile): a file there is the error mkdir would give.
  if (!statSync(dir).isDirectory()) {
    throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR' });
  }
}
