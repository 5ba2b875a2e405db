/**
 * Relay hosts: what zooid serves on each relay's own host (docs/zooid-contract.md §5).
 *
 * zooid builds a relay's NIP-11 document when it loads the relay's file, and its file watcher
 * reloads a relay some time after the file changed. The emulator keeps that split: `RelayConfigs`
 * is what the files say, `ServedRelays` what is loaded and answered. Every change to a file (API,
 * `editRelay`, `reload`) loads the relay again after `reloadDelayMs` on the emulator's clock; until
 * then the old document is served. The serving knobs (`failLoad`, `servedSecret`) are read when a
 * relay loads, as zooid reads its file then.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock, TimerHandle } from '../../../domain/clock.js';
import { publicKeyOf } from '../../../domain/keys.js';
import { send } from './io.js';
import { goJson, textReply } from './reply.js';
import { clone } from './state.js';
import type { ZooidNip11Document, ZooidServingOptions, ZooidStoredConfig } from './types.js';
import { secretKeyError } from './validate.js';

/** khatru's own list (fiatjaf.com/nostr/khatru NewRelay). */
const KHATRU_NIPS: ReadonlyArray<number | string> = [1, 11, 42, 70, 86];
/** What zooid's blossom store appends when blossom is enabled. */
const BLOSSOM_BUDS = ['BUD-00', 'BUD-01', 'BUD-02', 'BUD-11'];
/** khatru adds these while answering: zooid sets DeleteEvent and turns negentropy on. */
const KHATRU_ANSWER_NIPS = [9, 77];

export const ZOOID_SOFTWARE = 'https://github.com/coracle-social/zooid';
export const ZOOID_VERSION = 'v0.1.0';

/** The hex public key of a stored secret (zooid reads up to 64 hex digits), or null when invalid. */
function selfOf(secret: string): string | null {
  const padded = secret.padStart(64, '0');
  return secretKeyError(padded) ? null : publicKeyOf(padded.toLowerCase());
}

/** The document zooid builds from a config; empty strings are left out (Go's `omitempty`). */
export function buildNip11(config: ZooidStoredConfig, servedSecret?: string): ZooidNip11Document {
  const self = selfOf(servedSecret ?? config.secret);
  return {
    ...(config.info.name ? { name: config.info.name } : {}),
    ...(config.info.description ? { description: config.info.description } : {}),
    ...(config.info.pubkey ? { pubkey: config.info.pubkey.toLowerCase() } : {}),
    ...(self ? { self } : {}),
    supported_nips: [
      ...KHATRU_NIPS,
      '43',
      ...(config.blossom.enabled ? BLOSSOM_BUDS : []),
      ...(config.groups.enabled ? ['29'] : []),
      ...KHATRU_ANSWER_NIPS,
    ],
    software: ZOOID_SOFTWARE,
    version: ZOOID_VERSION,
    ...(config.info.icon ? { icon: config.info.icon } : {}),
  };
}

interface Served {
  host: string;
  doc: ZooidNip11Document;
  /** The encoded answer, built once per load. */
  body: string;
}

export class ServedRelays {
  private readonly byId = new Map<string, Served>();
  private readonly idByHost = new Map<string, string>();
  /** Per relay, the newest change seen and the newest loaded, so a late timer never loads old state. */
  private readonly seen = new Map<string, number>();
  private readonly loaded = new Map<string, number>();
  private readonly timers = new Set<TimerHandle>();
  private knobs: ZooidServingOptions;

  constructor(
    private readonly clock: Clock,
    knobs: ZooidServingOptions,
  ) {
    this.knobs = { ...knobs };
  }

  /** Replaces the knobs given; they apply from each relay's next load. */
  setKnobs(next: ZooidServingOptions): void {
    this.knobs = { ...this.knobs, ...next };
  }

  /**
   * zooid's file watcher saw relay `id` change to `config` (null: file removed). `immediate` loads
   * it now, as zooid does with every file at start.
   */
  changed(id: string, config: ZooidStoredConfig | null, immediate = false): void {
    const generation = (this.seen.get(id) ?? 0) + 1;
    this.seen.set(id, generation);
    const snapshot = config ? clone(config) : null;
    const delay = immediate ? 0 : (this.knobs.reloadDelayMs ?? 0);
    if (delay <= 0) {
      this.load(id, snapshot, generation);
      return;
    }
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(handle);
      this.load(id, snapshot, generation);
    }, delay);
    this.timers.add(handle);
  }

  /** The document served for relay `id`, or null when it is not served. */
  document(id: string): ZooidNip11Document | null {
    const served = this.byId.get(id);
    return served ? clone(served.doc) : null;
  }

  /** The encoded document served on `host`, or undefined. */
  bodyFor(host: string): string | undefined {
    const id = this.idByHost.get(host);
    return id === undefined ? undefined : this.byId.get(id)?.body;
  }

  close(): void {
    for (const handle of this.timers) this.clock.clearTimeout(handle);
    this.timers.clear();
  }

  private failsToLoad(id: string): boolean {
    const rule = this.knobs.failLoad;
    if (!rule) return false;
    return typeof rule === 'function' ? rule(id) : rule.includes(id);
  }

  private load(id: string, config: ZooidStoredConfig | null, generation: number): void {
    if (generation <= (this.loaded.get(id) ?? 0)) return;
    this.loaded.set(id, generation);
    const before = this.byId.get(id);
    if (before) {
      this.byId.delete(id);
      if (this.idByHost.get(before.host) === id) this.idByHost.delete(before.host);
    }
    // An inactive relay and one whose file fails to load are not served at all.
    if (!config || config.inactive || this.failsToLoad(id)) return;
    const doc = buildNip11(config, this.knobs.servedSecret?.[id]);
    this.byId.set(id, { host: config.host, doc, body: goJson(doc) });
    this.idByHost.set(config.host, id);
  }
}

const NIP11_ACCEPT = 'application/nostr+json';

/**
 * One request on a relay host. khatru answers NIP-11 when `Accept` is exactly
 * `application/nostr+json` (on any path); otherwise `/` is zooid's HTML page and the rest Go's 404.
 */
export function serveRelayHost(req: IncomingMessage, res: ServerResponse, served: ServedRelays): void {
  req.resume();
  const head = req.method === 'HEAD';
  const body = served.bodyFor(req.headers.host ?? '');
  if (body === undefined) {
    send(res, textReply(404, 'Not Found'), head);
    return;
  }
  if (req.headers.accept === NIP11_ACCEPT) {
    send(
      res,
      { status: 200, contentType: NIP11_ACCEPT, body, headers: { 'access-control-allow-origin': '*' } },
      head,
    );
    return;
  }
  const path = (req.url ?? '/').replace(/[?#].*$/, '');
  if (path === '/') {
    send(res, { status: 200, contentType: 'text/html; charset=utf-8', body: RELAY_PAGE }, head);
    return;
  }
  send(res, textReply(404, '404 page not found'), head);
}

const RELAY_PAGE = '<!doctype html>\n<title>zooid relay</title>\n<p>This is a Nostr relay.</p>\n';
