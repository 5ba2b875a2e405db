/**
 * The relays zooid holds: one config per id, in memory and, with a CONFIG dir, as `<id>.toml` files
 * (they hold relay secrets, so the dir is 0700 and the files 0600).
 */
import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { makePrivateDir, writePrivateFileSync } from '../../../private-files.js';
import { decodeConfig } from './go-json.js';
import type { ZooidStoredConfig, ZooidVariant } from './types.js';

export const clone = <T>(v: T): T => structuredClone(v);

export class RelayConfigs {
  private readonly configs = new Map<string, ZooidStoredConfig>();

  /** `onWrite` hears every change written through `write` (zooid's file watcher). */
  constructor(
    private readonly variant: ZooidVariant,
    readonly dir: string | null,
    private readonly onWrite: (id: string, config: ZooidStoredConfig | null) => void = () => {},
  ) {
    if (dir) makePrivateDir(dir);
  }

  /** Reads every `*.toml` file of the CONFIG dir, in name order, in place of what is held. */
  loadDir(): void {
    if (!this.dir) return;
    this.configs.clear();
    for (const name of readdirSync(this.dir).sort()) {
      if (!name.endsWith('.toml')) continue;
      try {
        const text = readFileSync(join(this.dir, name), 'utf8');
        const { config, error } = decodeConfig(parseToml(text), this.variant);
        if (!error) this.configs.set(name.slice(0, -'.toml'.length), config);
      } catch {
        // zooid only logs files it cannot decode.
      }
    }
  }

  get(id: string): ZooidStoredConfig | undefined {
    return this.configs.get(id);
  }

  has(id: string): boolean {
    return this.configs.has(id);
  }

  entries(): IterableIterator<[string, ZooidStoredConfig]> {
    return this.configs.entries();
  }

  /** Writes (or, with null, deletes) the relay's file, then the in-memory copy. */
  write(id: string, config: ZooidStoredConfig | null): void {
    if (this.dir) {
      const file = join(this.dir, `${id}.toml`);
      if (config) writePrivateFileSync(file, stringifyToml(config));
      else unlinkSync(file);
    }
    if (config) this.configs.set(id, config);
    else this.configs.delete(id);
    this.onWrite(id, config);
  }

  /** Schema first, then host, file by file in name order; inactive relays count too. */
  uniquenessError(id: string | null, c: ZooidStoredConfig): string | null {
    for (const otherId of [...this.configs.keys()].sort((a, b) => (`${a}.toml` < `${b}.toml` ? -1 : 1))) {
      if (otherId === id) continue;
      const other = this.configs.get(otherId)!;
      if (other.schema === c.schema) return `schema ${JSON.stringify(c.schema)} is already in use`;
      if (other.host === c.host) return `host ${JSON.stringify(c.host)} is already in use`;
    }
    return null;
  }

  snapshot(): Map<string, ZooidStoredConfig> {
    return new Map([...this.configs].map(([id, c]) => [id, clone(c)]));
  }
}
