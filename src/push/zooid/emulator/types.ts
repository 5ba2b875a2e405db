/** The emulator's public types: its options, its stored relay configs, what it records. */
import type { Clock } from '../../../domain/clock.js';
import type { Random } from '../../../domain/random.js';

export type ZooidVariant = 'v1' | 'v1p' | 'v2';

export interface ZooidStoredConfig {
  host: string;
  schema: string;
  secret: string;
  inactive: boolean;
  info: { name: string; icon: string; description: string; pubkey: string };
  policy: { public_join: boolean; strip_signatures: boolean };
  groups: { enabled: boolean };
  management: { enabled: boolean };
  /** V1 has `enabled` only; V2 adds the rest (adapter defaults to `local`). */
  blossom: {
    enabled: boolean;
    authenticated_read?: boolean;
    adapter?: string;
    s3?: {
      region: string;
      bucket: string;
      access_key: string;
      secret_key: string;
      endpoint: string;
      key_prefix: string;
    };
  };
  livekit: { server_url: string; api_key: string; api_secret: string };
  push: { enabled: boolean };
  roles: Record<string, { pubkeys: string[]; can_invite: boolean; can_manage: boolean }>;
}

/** A relay's NIP-11 document as zooid builds it (docs/zooid-contract.md §5); empty strings left out. */
export interface ZooidNip11Document {
  name?: string;
  description?: string;
  /** The owner, `info.pubkey`. */
  pubkey?: string;
  /** The public key of the relay's `secret`. */
  self?: string;
  supported_nips: Array<number | string>;
  software: string;
  version: string;
  icon?: string;
}

/** What a relay host serves, besides the configs: knobs to test live verification. */
export interface ZooidServingOptions {
  /**
   * Relays whose file "fails to load": the API accepts them and writes the file, but zooid never
   * serves them (404 on their host), as when zooid only logs a load error. Ids or a predicate.
   */
  failLoad?: readonly string[] | ((id: string) => boolean);
  /** After a relay's file changes, its old document is served this long (emulator's clock). Default 0. */
  reloadDelayMs?: number;
  /** Per relay id, a secret to serve it under instead of its own: `self` is that key's pubkey. */
  servedSecret?: Readonly<Record<string, string>>;
}

export type ZooidMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'GET';

export interface ZooidFaults {
  /** Delay (on the emulator's clock) before each API request is answered. */
  latencyMs?: number;
  /** Probability in [0, 1] that an API request is answered `failStatus` (uses the `rng` option). */
  errorRate?: number;
  /** Status for `errorRate` and `failAll` faults. Default 500. */
  failStatus?: number;
  /** Destroy the socket without answering: `true` for every request, a number for the next n. */
  dropConnections?: boolean | number;
  /** Answer every API request `failStatus`. */
  failAll?: boolean;
  /** Answer every request of a method with this status (and body: default `{"error":"injected"}`). */
  statusOverride?: Partial<
    Record<ZooidMethod, number | { status: number; body?: string; contentType?: string }>
  >;
}

export interface ZooidEmulatorOptions extends ZooidServingOptions {
  /** 0 (default): a random free port. */
  port?: number;
  /** Listen address. Default 127.0.0.1. */
  host?: string;
  /**
   * API_WHITELIST: hex pubkeys (or one comma-separated string); matched exactly after trimming.
   * Default empty, as zooid with no API_WHITELIST: every management request is refused (403) and the
   * instance only serves the relays of its CONFIG dir (a second instance a verifier reads from).
   */
  whitelist?: readonly string[] | string;
  /** CONFIG dir: existing `*.toml` files are loaded at start and each change writes `<id>.toml`. */
  configDir?: string;
  /** API_HOST: the Host header that reaches the API. Default `<listen host>:<port>`. */
  apiHost?: string;
  clock?: Clock;
  variant?: ZooidVariant;
  /** Randomness for `errorRate`. */
  rng?: Random;
  faults?: ZooidFaults;
  /**
   * The contract's inferred V2 behaviour ([I]): the stored secret is cleared before a PATCH is
   * merged, so a PATCH without `secret` fails with `invalid secret key`. Off by default (V1 keeps it).
   */
  patchClearsSecret?: boolean;
  /** Keep `requests` and `accepted` (default true); turn off for long benchmarks. */
  record?: boolean;
}

export interface ZooidRequestRecord {
  method: string;
  path: string;
  /** The relay id in the path, when the path names one. */
  id: string | null;
  /** The JSON body (parsed; the raw text when it is not JSON; null when empty). */
  body: unknown;
  /** Emulator clock time when the request arrived (ms). */
  at: number;
  /** Status sent, 0 when the connection was dropped. */
  status: number;
  /** The NIP-98 signer, once the signature checked out. */
  pubkey: string | null;
  fault: 'drop' | 'error' | 'override' | null;
}

export interface ZooidAcceptedChange {
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The request body as sent (null for DELETE). */
  body: unknown;
  /** The stored config after the change (null after DELETE). */
  config: ZooidStoredConfig | null;
  at: number;
}

export interface ZooidEmulator {
  /** Base URL of the API, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  readonly apiHost: string;
  readonly variant: ZooidVariant;
  readonly pubkeysAllowed: string[];
  /** The CONFIG dir, or null when relays are kept in memory only. */
  readonly dir: string | null;
  /** Every API request in arrival order (live array; clear it with `requests.length = 0`). */
  readonly requests: ZooidRequestRecord[];
  /** A copy of the stored configs, by id. */
  relays(): Map<string, ZooidStoredConfig>;
  /** The changes zooid accepted for one relay, in order. */
  accepted(id: string): ZooidAcceptedChange[];
  /** Highest number of requests for one relay in flight at once (for `id`, or over all relays). */
  maxConcurrentPerRelay(id?: string): number;
  /** Replaces the active faults. */
  setFaults(faults: ZooidFaults): void;
  /** The NIP-11 document relay `id` serves now, or null when it is not served. */
  served(id: string): ZooidNip11Document | null;
  /** Replaces the serving knobs given (the others stay); each applies from a relay's next load. */
  setServing(next: ZooidServingOptions): void;
  /**
   * Changes a stored relay as if someone edited its file behind bosun's back: the file (or the
   * in-memory copy) changes and the relay reloads, with no API request. Throws for an unknown id.
   */
  editRelay(id: string, edit: (config: ZooidStoredConfig) => void): void;
  /** `editRelay` that sets `info.name`. */
  editRelayName(id: string, name: string): void;
  /**
   * Reads the CONFIG dir again (SIGHUP to `bosun zooid-emulator`) and reloads every relay, so
   * changed files and knobs apply. Without a CONFIG dir, only reloads.
   */
  reload(): void;
  /** Replaces API_WHITELIST (an operator editing zooid's environment and restarting it). */
  setWhitelist(whitelist: readonly string[] | string): void;
  close(): Promise<void>;
}
