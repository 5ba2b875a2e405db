import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from '../../src/command.js';
import { systemClock } from '../../src/domain/clock.js';
import type { Principal } from '../../src/domain/principal.js';
import { Notifier } from '../../src/notifier.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/env.js';

/** The example pubkey (the generator point's x): valid, and fixed so files are readable. */
export const PUBKEY = '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798';
export const ADMIN: Principal = { role: 'admin', actor: 'admin' };

/** Writes a fleet directory: fleet.toml from `manifest` (TOML text) and one file per relay. */
export function writeFleet(dir: string, manifest: string, relays: Record<string, string>): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'fleet.toml'), manifest);
  for (const [name, text] of Object.entries(relays)) writeFileSync(join(dir, name), text);
  return dir;
}

export const manifest = (name: string, defaults = `[defaults.info]\npubkey = "${PUBKEY}"\n`) =>
  `name = "${name}"\n\n${defaults}`;

/** A relay file: its host, then any extra TOML. */
export const relayFile = (host: string, extra = '') => `host = "${host}"\n${extra}`;

/** A real SQLite file with a Command over it: what the DB syncer uses. */
export function dbRig() {
  const dir = tempDir('bosun-fleet-');
  const store = new SqliteStore(join(dir.path, 'bosun.db'));
  const command = new Command(store, new Notifier(), systemClock);
  return {
    dir: dir.path,
    store,
    command,
    close: async () => {
      await store.close();
      dir.cleanup();
    },
  };
}
