import { afterEach } from 'vitest';
import { tempDir } from './env.js';

export type Cleanup = () => Promise<void> | void;

/**
 * Undo steps that a test registers as it goes (servers, agents, temporary directories), run last
 * first after each test of the file. Call once, at the top of a test file.
 */
export function useCleanups(): { defer(cleanup: Cleanup): void; tempDir(prefix: string): string } {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    defer: (cleanup) => {
      cleanups.push(cleanup);
    },
    tempDir: (prefix) => {
      const t = tempDir(prefix);
      cleanups.push(t.cleanup);
      return t.path;
    },
  };
}
