import { generateSecretKey } from '../../src/domain/keys.js';
import { UNKNOWN_LIVE } from '../../src/domain/live.js';
import { createRelaySchema, type Relay, type RelayConfig } from '../../src/domain/relay.js';
import { apiFetch } from './env.js';

/** A full zooid config as Command would store it: `input` goes through the create schema's defaults. */
export function relayConfig(input: Record<string, unknown> & { host: string }, schema: string): RelayConfig {
  const {
    id: _i,
    owner: _o,
    fleet: _f,
    secret: _s,
    schema: _sc,
    inactive: _in,
    host,
    ...sections
  } = createRelaySchema.parse(input);
  return { host, schema, inactive: false, ...sections };
}

/** A stored relay row for store-level tests: version 1, pending, never synced. */
export function relayRecord(id: string, pubkey: string, over: Partial<Relay> = {}): Relay {
  return {
    id,
    owner: 'alice',
    fleet: 'default',
    version: 1,
    createdVersion: 1,
    rev: 1,
    config: relayConfig({ host: `${id}.example.com`, info: { pubkey } }, id.replace(/-/g, '_')),
    secret: generateSecretKey(),
    createdAt: 1000,
    updatedAt: 1000,
    deletedAt: null,
    sync: {
      status: 'pending',
      error: '',
      attempts: 0,
      nextAttemptAt: null,
      syncedVersion: 0,
      lastSyncedAt: null,
      ackedConfig: null,
      ackedDeleted: true,
      ackedSecret: null,
      pushedTarget: null,
    },
    expiring: [],
    live: UNKNOWN_LIVE,
    ...over,
  };
}

/** What a workload keeps of a relay the API acknowledged, to hold the database to it after a failure. */
export interface AckedRelay {
  version: number;
  deleted: boolean;
  name: string;
  inactive: boolean;
}

/** The acknowledged state in a 200/201 relay answer (the API's relay view). */
export function ackedRelay(view: {
  version: number;
  deleted?: boolean;
  config: { inactive: boolean; info: { name: string } };
}): AckedRelay {
  return {
    version: view.version,
    deleted: !!view.deleted,
    name: view.config.info.name,
    inactive: view.config.inactive,
  };
}

/** Every relay the admin sees, read page after page from `GET /v1/relays` of the server at `url`. */
export async function listAllRelays<T>(url: string): Promise<T[]> {
  const relays: T[] = [];
  let after = '';
  for (;;) {
    const res = await apiFetch(url, 'GET', `/v1/relays?limit=1000${after}`);
    const page = (await res.json()) as { relays: T[]; next: string | null };
    relays.push(...page.relays);
    if (!page.next) return relays;
    after = `&after=${page.next}`;
  }
}
