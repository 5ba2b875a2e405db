import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { Command } from '../../src/command.js';
import { Notifier } from '../../src/notifier.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from './clock.js';
import { tempDir } from './env.js';

/**
 * A real SQLite store in a temporary directory with a Command over it, on a FakeClock: what an
 * observer test runs against. The store and the directory go into `open`, closed after the test.
 */
export function commandRig(open: { close: () => Promise<void> | void }[]) {
  const dir = tempDir();
  const store = new SqliteStore(join(dir.path, 'bosun.db'));
  open.push({ close: () => dir.cleanup() }, store);
  const clock = new FakeClock();
  const notifier = new Notifier();
  const command = new Command(store, notifier, clock);
  return { store, clock, notifier, command, dir: dir.path };
}

export type CommandRig = ReturnType<typeof commandRig>;

/**
 * A fresh commandRig for every test of the enclosing describe, closed after it. The fields of the
 * returned object are replaced before each test, so read them inside the test, not at describe time.
 */
export function useCommandRig(): CommandRig {
  const rig = {} as CommandRig;
  const open: { close: () => Promise<void> | void }[] = [];
  beforeEach(() => {
    Object.assign(rig, commandRig(open));
  });
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });
  return rig;
}
