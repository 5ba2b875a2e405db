import { join } from 'node:path';
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
  return { store, clock, notifier, command };
}
