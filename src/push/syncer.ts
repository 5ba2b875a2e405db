import type { Logger } from 'pino';
import type { Command } from '../command.js';
import { type Clock, sleep } from '../domain/clock.js';
import { secretDigest } from '../domain/credentials.js';
import type { Principal } from '../domain/principal.js';
import type { Random } from '../domain/random.js';
import { parkingHost, type Relay } from '../domain/relay.js';
import { DEFAULT_TARGET } from '../domain/target.js';
import type { Store } from '../store/port.js';
import { type RetryPolicy, retryDelay } from './retry-policy.js';
import { type BlossomS3, patchBody, zooidBody } from './zooid/body.js';
import type { ZooidClient, ZooidFailure, ZooidResult } from './zooid/client.js';

export type SyncOutcome =
  | {
      kind: 'skipped';
      /**
       * `pull_only`: the fleet's agents configure zooid; `waiting`: its target's slots are all
       * taken; `other_target`: another target's push work (per-target leases), not this observer's;
       * `busy`: another target's request for the relay may still land in zooid (its sync holds the
       * relay's lock, or its answer was lost): tried again at `retryAt`, or put back on the queue.
       */
      reason:
        | 'missing'
        | 'up_to_date'
        | 'failed'
        | 'not_due'
        | 'pull_only'
        | 'waiting'
        | 'other_target'
        | 'busy';
      retryAt?: number;
    }
  | { kind: 'synced'; version: number }
  | { kind: 'retry'; at: number; error: string }
  | { kind: 'failed'; error: string };

/**
 * The other target a relay must leave during this sync (see Router): the one it lives on, when its
 * fleet now pushes elsewhere. `remove` deletes it there (a 404 is success: already gone).
 */
export interface Elsewhere {
  name: string;
  remove: (relayId: string, signal?: AbortSignal) => Promise<ZooidResult>;
}

export interface InfraOptions {
  store: Store;
  /** The name of the target this syncer pushes to (recorded as where a relay lives). Default: `default`. */
  target?: string;
  command: Command;
  client: ZooidClient;
  blossomS3: BlossomS3 | null;
  clock: Clock;
  random: Random;
  retry: RetryPolicy;
  /**
   * After a request zooid may still be working on (it timed out or was aborted), the retry waits at
   * least this long, so it cannot overlap the abandoned one and land before it. Default: 0.
   */
  inDoubtHoldMs?: number;
  logger: Logger;
  onSync?: (e: { relayId: string; outcome: SyncOutcome['kind']; durationMs: number; method: string }) => void;
  /** zooid's answer to every sync that sent a request (target health reads them). */
  onResult?: (result: ZooidResult) => void;
}

const SYSTEM_INFRA: Principal = { role: 'admin', actor: 'system:infra' };

/**
 * Errors that retrying the same request soon cannot fix: the relay is `failed` at once. Only a
 * config zooid rejects (400) waits for a change or a manual resync; the rest may heal (a host freed,
 * the API URL fixed), so the resync_failed chore tries them again at a slow pace.
 */
const PERMANENT: ReadonlySet<ZooidFailure['kind']> = new Set(['invalid', 'conflict', 'not_found']);

/**
 * Push sync: makes zooid hold a relay's current state. Idempotent by construction — it
 * reads the relay's latest state and the config zooid last acknowledged, sends the request that
 * moves zooid from one to the other, falls back when zooid's state differs from what bosun believed
 * (409 id exists → PUT, 404 → POST), and records the outcome through Command.
 */
export class Infra {
  /**
   * Relays whose last request may still be running in zooid, and until when. No request for them
   * is sent before then — not a retry, and not a newer change either — so two never overlap.
   */
  private readonly inDoubt = new Map<string, number>();
  /** Relays whose timed-out request is still open: it may land in zooid until it settles. */
  private readonly abandoned = new Map<string, Promise<void>>();

  constructor(private readonly options: InfraOptions) {}

  get pubkey(): string {
    return this.options.client.pubkey;
  }

  private get target(): string {
    return this.options.target ?? DEFAULT_TARGET;
  }

  /**
   * Until when a request for the relay may still land here, as this target's own next request
   * waits for it: the timed-out one settled and the in-doubt hold over. Undefined: none may.
   */
  pending(relayId: string): Promise<void> | undefined {
    const open = this.abandoned.get(relayId);
    const holdMs = (this.inDoubt.get(relayId) ?? 0) - this.options.clock.now();
    if (!open && holdMs <= 0) return undefined;
    return Promise.all([open, holdMs > 0 ? sleep(this.options.clock, holdMs) : undefined]).then(() => {});
  }

  /**
   * Deletes the relay from this target, where it lives no more once its move is done (Router). A
   * 404 is success. zooid keeps a deleted relay's data (its `<schema>__*` tables and media).
   */
  async removeCopy(relayId: string, signal?: AbortSignal): Promise<ZooidResult> {
    const result = await this.options.client.remove(relayId, signal ? { signal } : undefined);
    // A DELETE that may still land here is as much in doubt as a sync's request (see pending).
    this.holdInDoubt(relayId, result);
    this.options.onResult?.(result);
    return !result.ok && result.kind === 'not_found' ? ok() : result;
  }

  /** A request whose answer was lost holds the relay's next one here back (and pending() says so). */
  private holdInDoubt(relayId: string, result: ZooidResult): void {
    if (result.ok || !this.options.inDoubtHoldMs) return;
    if (result.inDoubt) this.inDoubt.set(relayId, this.options.clock.now() + this.options.inDoubtHoldMs);
    const settled = result.settled;
    if (!settled) return;
    this.abandoned.set(relayId, settled);
    void settled.then(() => {
      if (this.abandoned.get(relayId) === settled) this.abandoned.delete(relayId);
    });
  }

  /**
   * Syncs one relay, as the router just read it (a change committed since queues it again).
   * `force` re-asserts a relay bosun believes is up to date (drift repair); `due`
   * sends a retrying relay before its stored retry time (the target it waited for answers again).
   * `elsewhere`: the relay lives on another target, which it leaves once this one acknowledged it
   * (a move; or, for a deleted relay, a delete on both).
   */
  async syncRelay(
    relay: Relay,
    opts: { force?: boolean; due?: boolean; signal?: AbortSignal; elsewhere?: Elsewhere } = {},
  ): Promise<SyncOutcome> {
    const relayId = relay.id;
    const { status, nextAttemptAt, syncedVersion } = relay.sync;
    if (!opts.force) {
      if (status === 'failed') return { kind: 'skipped', reason: 'failed' };
      // A relay still living elsewhere is not done, whatever version this target acknowledged.
      if (status === 'synced' && syncedVersion === relay.version && !opts.elsewhere)
        return { kind: 'skipped', reason: 'up_to_date' };
      if (
        !opts.due &&
        status === 'retrying' &&
        nextAttemptAt !== null &&
        nextAttemptAt > this.options.clock.now()
      ) {
        return { kind: 'skipped', reason: 'not_due', retryAt: nextAttemptAt };
      }
    }
    if (this.abandoned.has(relayId)) {
      return {
        kind: 'skipped',
        reason: 'not_due',
        retryAt: this.options.clock.now() + (this.options.inDoubtHoldMs ?? 0),
      };
    }
    const held = this.inDoubt.get(relayId);
    if (held !== undefined) {
      if (held > this.options.clock.now()) return { kind: 'skipped', reason: 'not_due', retryAt: held };
      this.inDoubt.delete(relayId);
    }
    const started = this.options.clock.now();
    const { method, result, acked, own } = opts.elsewhere
      ? await this.move(relay, opts.elsewhere, opts)
      : { ...(await this.push(relay, opts)), own: undefined };
    this.holdInDoubt(relayId, result);
    const durationMs = this.options.clock.now() - started;
    // This target's health reads its own answer: not a failure of the target the relay left.
    if (method !== 'none') this.options.onResult?.(own ?? result);
    // A create whose answer was lost may still land here: until some target acknowledges the relay,
    // the record names this one, so a move deletes it here (a 404 if it never landed) rather than
    // leave a copy no record knows of. A relay moving has a target recorded, which it leaves last.
    const inDoubtHere =
      !result.ok && result.inDoubt === true && relay.deletedAt === null && relay.sync.pushedTarget === null;
    let outcome = await this.report(relay, result, acked, {
      ...(opts.elsewhere ? { movedFrom: opts.elsewhere.name } : {}),
      ...(inDoubtHere ? { mayLiveOn: this.target } : {}),
    });
    // Parking mid-move would record the stand-in here while the relay still lives elsewhere.
    if (!result.ok && result.kind === 'conflict' && !opts.elsewhere)
      outcome = (await this.parkOutOfRing(relay, opts)) ?? outcome;
    this.options.onSync?.({ relayId, outcome: outcome.kind, durationMs, method });
    this.options.logger.debug(
      { relayId, version: relay.version, method, outcome: outcome.kind, durationMs },
      'relay sync',
    );
    return outcome;
  }

  /**
   * A move: the relay is made to exist here first — created with its secret (POST, or PUT when a
   * move cut short already created it) — and only once this target acknowledged it is it deleted
   * from the one it lived on. Never the other way round: a failure at either step leaves it live
   * on at least one target, and the database still names the old one, so the retry (or the sync
   * after a restart) does both steps again; each is idempotent. A deleted relay is deleted here
   * (a move cut short may have created it) and there.
   */
  private async move(
    relay: Relay,
    elsewhere: Elsewhere,
    opts: { force?: boolean; signal?: AbortSignal },
  ): Promise<{
    method: string;
    result: ZooidResult;
    acked: Record<string, unknown> | null;
    /** This target's answer, when `result` is the other target's failure. */
    own?: ZooidResult;
  }> {
    const fresh: Relay =
      relay.deletedAt === null
        ? { ...relay, sync: { ...relay.sync, ackedConfig: null, ackedDeleted: true } }
        : relay;
    const here = await this.push(fresh, { ...opts, force: false });
    // The step first: a stored error keeps only its first 120 characters.
    const step = relay.deletedAt === null ? 'creating it' : 'deleting it';
    const moving = `moving from ${elsewhere.name} to ${this.target}`;
    if (!here.result.ok) {
      return {
        ...here,
        result: { ...here.result, message: `${moving}: ${step} on ${this.target}: ${here.result.message}` },
      };
    }
    const there = await elsewhere.remove(relay.id, opts.signal);
    if (there.ok) return here;
    // Whatever zooid said, the copy there is still to delete: retried like a transient failure.
    const { settled: _settled, inDoubt: _inDoubt, ...failure } = there;
    return {
      ...here,
      own: here.result,
      result: {
        ...failure,
        kind: 'transient',
        message: `${moving}: deleting it on ${elsewhere.name} (${relay.deletedAt === null ? 'created' : 'deleted'} on ${this.target}): ${there.message}`,
      },
    };
  }

  private async push(
    relay: Relay,
    opts: { force?: boolean; signal?: AbortSignal },
  ): Promise<{ method: string; result: ZooidResult; acked: Record<string, unknown> | null }> {
    const client = this.options.client;
    const req = opts.signal ? { signal: opts.signal } : undefined;
    if (relay.deletedAt !== null) {
      // Done only if zooid acknowledged this very version's delete. Any later version may have been
      // live and pushed — a create in doubt (zooid took the POST, and its answer was lost to a
      // timeout or a kill -9 before bosun recorded it), e.g. of a deleted id created again — so it
      // is deleted again: a DELETE of a relay zooid does not have is a 404, which is done.
      const known = relay.sync.ackedDeleted && relay.sync.syncedVersion === relay.version;
      if (known && !opts.force) return { method: 'none', result: ok(), acked: null };
      const result = await client.remove(relay.id, req);
      // zooid no longer has it: that is what a delete wants.
      return {
        method: 'DELETE',
        result: !result.ok && result.kind === 'not_found' ? ok() : result,
        acked: null,
      };
    }
    const full = zooidBody(relay, { withSecret: true, blossomS3: this.options.blossomS3 });
    const { secret: _secret, ...acked } = full;
    if (relay.sync.ackedDeleted || relay.sync.ackedConfig === null) {
      const created = await client.create(relay.id, full, req);
      // zooid has the id already (e.g. bosun crashed after POST): replace it with the same secret.
      if (!created.ok && created.kind === 'id_exists') {
        const replaced = await client.replace(relay.id, full, req);
        // No such relay after all: the 409 (in words bosun did not know) was a host or schema conflict.
        if (!replaced.ok && replaced.kind === 'not_found') {
          return { method: 'POST', result: { ...created, kind: 'conflict' }, acked };
        }
        return { method: 'PUT', result: replaced, acked };
      }
      return { method: 'POST', result: created, acked };
    }
    // After a rotation zooid still holds the old secret, and PATCH never carries one: replace it.
    const rotated = relay.sync.ackedSecret !== null && relay.sync.ackedSecret !== secretDigest(relay.secret);
    if (opts.force || rotated) {
      const replaced = await client.replace(relay.id, full, req);
      if (!replaced.ok && replaced.kind === 'not_found') {
        return { method: 'POST', result: await client.create(relay.id, full, req), acked };
      }
      return { method: 'PUT', result: replaced, acked };
    }
    const patched = await client.patch(relay.id, patchBody(relay.sync.ackedConfig, acked), req);
    // zooid lost the relay (file deleted behind bosun's back): create it again with its secret.
    if (!patched.ok && patched.kind === 'not_found') {
      return { method: 'POST', result: await client.create(relay.id, full, req), acked };
    }
    return { method: 'PATCH', result: patched, acked };
  }

  /**
   * A relay that moved off a host or schema (or was deleted) frees it in zooid. Relays that failed
   * with a conflict on exactly that value are asked to sync again — a targeted retry, not a blind one.
   */
  private async wakeConflicted(relay: Relay, acked: Record<string, unknown> | null): Promise<void> {
    const before = relay.sync.ackedDeleted ? null : relay.sync.ackedConfig;
    if (!before) return;
    const freed: { host?: string; schema?: string } = {};
    if (typeof before.host === 'string' && before.host !== acked?.host) freed.host = before.host;
    if (typeof before.schema === 'string' && before.schema !== acked?.schema) freed.schema = before.schema;
    if (freed.host === undefined && freed.schema === undefined) return;
    for (const waiter of await this.options.store.relaysUsing(freed)) {
      if (waiter.id !== relay.id && stuckOnConflict(waiter)) {
        await this.options.command.resyncRelay(SYSTEM_INFRA, waiter.id);
      }
    }
  }

  /**
   * Hosts passed round a ring (x→y and y→x, or longer) that reach zooid in one go deadlock there:
   * zooid checks each relay's new host on its own, so each relay of the ring fails on a conflict
   * with the next and waits for it to move first. (Moves made one at a time never do this; a swap
   * collapses into one when the observer catches up on several changes at once, e.g. after zooid
   * was down.) The last relay of the ring to fail finds the ring here and parks on a placeholder
   * host of its own. That frees its old host, and the ring unwinds through wakeConflicted: the
   * relay waiting for that host takes it and frees its own, and so on, until this relay's host is
   * free and it is woken to take it. Null when the relay is in no such ring or zooid refused the
   * placeholder too (the relay stays failed, as reported).
   */
  private async parkOutOfRing(
    relay: Relay,
    opts: { force?: boolean; signal?: AbortSignal },
  ): Promise<SyncOutcome | null> {
    if (relay.deletedAt !== null || !(await this.inHostRing(relay))) return null;
    const parking = parkingHost(relay.id);
    const parkedRelay: Relay = { ...relay, config: { ...relay.config, host: parking } };
    const { result, acked } = await this.push(parkedRelay, opts);
    if (!result.ok || acked === null) return null;
    const error = `${CONFLICT_PREFIX}: host swap; parked on ${parking} until ${relay.config.host} is free`;
    await this.options.command.failRelaySync(relay.id, {
      version: relay.version,
      error,
      attempts: relay.sync.attempts + 1,
      nextAttemptAt: null,
      parked: { config: acked, secretDigest: secretDigest(relay.secret), target: this.target },
    });
    this.options.logger.warn(
      { relayId: relay.id, version: relay.version, host: relay.config.host, parkedOn: parking },
      'host swap: relay parked on a placeholder host to free its old one',
    );
    await this.wakeConflicted(relay, acked);
    return { kind: 'failed', error };
  }

  /**
   * Whether the relay's conflict is part of a ring: following "the relay stuck waiting for the host
   * I hold in zooid, then the one waiting for the host it holds, …" leads to the relay holding the
   * host this one wants. Relays still pending or retrying are not stuck yet: when they fail, they
   * look for the ring themselves.
   */
  private async inHostRing(relay: Relay): Promise<boolean> {
    const wanted = relay.config.host;
    const seen = new Set([relay.id]);
    let freed = heldHost(relay);
    for (let step = 0; freed !== undefined && freed !== wanted && step < MAX_RING; step++) {
      const host: string = freed;
      const waiter = (await this.options.store.relaysUsing({ host })).find(
        (w) => !seen.has(w.id) && w.config.host === host && stuckOnConflict(w),
      );
      if (!waiter) return false;
      seen.add(waiter.id);
      freed = heldHost(waiter);
      if (freed === wanted) return true;
    }
    return false;
  }

  private async report(
    relay: Relay,
    result: ZooidResult,
    acked: Record<string, unknown> | null,
    { movedFrom, mayLiveOn }: { movedFrom?: string; mayLiveOn?: string } = {},
  ): Promise<SyncOutcome> {
    const { command, clock, random, retry } = this.options;
    if (result.ok) {
      await command.completeRelaySync(relay.id, {
        version: relay.version,
        config: acked,
        deleted: relay.deletedAt !== null,
        target: this.target,
        ...(relay.deletedAt === null ? { secretDigest: secretDigest(relay.secret) } : {}),
        ...(movedFrom !== undefined ? { movedFrom } : {}),
      });
      await this.wakeConflicted(relay, acked);
      return { kind: 'synced', version: relay.version };
    }
    const attempts = relay.sync.attempts + 1;
    const error = describe(result, relay);
    const delay = PERMANENT.has(result.kind) ? null : retryDelay(retry, attempts, random);
    const at = delay === null ? null : clock.now() + delay;
    await command.failRelaySync(relay.id, {
      version: relay.version,
      error,
      attempts,
      nextAttemptAt: at,
      ...(mayLiveOn !== undefined ? { mayLiveOn } : {}),
    });
    this.options.logger.warn(
      { relayId: relay.id, version: relay.version, kind: result.kind, attempts, retryAt: at },
      error,
    );
    return at === null ? { kind: 'failed', error } : { kind: 'retry', at, error };
  }
}

/** The first words of a stored conflict error; waiters are found by them. */
const CONFLICT_PREFIX = 'zooid conflict';
/** Longest ring of host moves looked for (each step is one indexed read). */
const MAX_RING = 64;

/** The host zooid holds for the relay, as last acknowledged; undefined if zooid holds none. */
function heldHost(relay: Relay): string | undefined {
  const host = relay.sync.ackedDeleted ? undefined : relay.sync.ackedConfig?.host;
  return typeof host === 'string' ? host : undefined;
}

const stuckOnConflict = (relay: Relay): boolean =>
  relay.sync.status === 'failed' && relay.sync.error.startsWith(CONFLICT_PREFIX);

const ok = (): ZooidResult => ({ ok: true, status: 200, attempts: 0 });

/** The first words of a stored 400: zooid refuses this config, so only a change can fix it. */
const REJECTED_PREFIX = 'zooid rejected the config';

/**
 * A failed relay whose fault may heal by itself (a conflict, a 404, retries that ran out): tried
 * again at a slow pace. A config zooid rejected (400) waits for a change or a manual resync.
 */
export const mayHeal = (relay: Relay): boolean =>
  relay.sync.status === 'failed' && !relay.sync.error.startsWith(REJECTED_PREFIX);

function describe(result: ZooidFailure, relay: Relay): string {
  const status = result.status ? ` ${result.status}` : '';
  switch (result.kind) {
    case 'invalid':
      return result.status === 400 ? `${REJECTED_PREFIX}${status}: ${result.message}` : result.message;
    case 'conflict':
      return `${CONFLICT_PREFIX}${status}: ${result.message} (host ${relay.config.host}, schema ${relay.config.schema})`;
    default:
      return result.message;
  }
}
