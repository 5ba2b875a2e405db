import type { Activity } from '../domain/activity.js';
import type { Token } from '../domain/principal.js';
import type { Relay, SyncStatus } from '../domain/relay.js';
import type { FleetRecord, Target } from '../domain/target.js';
import type {
  ActivityFilter,
  Fence,
  FleetStateFilter,
  FleetStateRecord,
  LiveCount,
  RelayCount,
  RelayFilter,
  RelayHead,
  Store,
  WriteBatch,
} from './port.js';

/**
 * A store wrapping another: every port method is delegated here, by hand, once, and classified as
 * a read or a write in code. A method added to or renamed in the port breaks the build here (not
 * silently passing a wrapper by, as a Proxy keyed on method names would), and whoever adds it
 * decides whether it writes. Wrappers (FencedStore, WatchedStore) override the `read` / `write`
 * hooks or single methods, and nothing else.
 */
export abstract class DelegatingStore implements Store {
  constructor(protected readonly store: Store) {}

  /** Runs a call that only reads. */
  protected read<T>(call: () => Promise<T>): Promise<T> {
    return call();
  }

  /**
   * Runs a call that may write. `wrote` tells from its result whether it did write a row: a call
   * that found nothing to change (a revoked token, an empty prune) wrote nothing.
   */
  protected write<T>(call: () => Promise<T>, _wrote: (result: T) => boolean): Promise<T> {
    return call();
  }

  get serialCommits(): boolean {
    return this.store.serialCommits;
  }

  // Writes. `commit` also covers everything a batch carries: relays, activities, fleet states, and
  // fleets' targets (`WriteBatch.fleets`).
  commit(batch: WriteBatch): Promise<Activity[]> {
    return this.write(() => this.store.commit(batch), always);
  }

  setCursor(name: string, position: number, fence?: Fence): Promise<void> {
    return this.write(() => this.store.setCursor(name, position, fence), always);
  }

  touchLiveChecks(ids: readonly string[], checkedAt: number, fence?: Fence): Promise<number> {
    return this.write(() => this.store.touchLiveChecks(ids, checkedAt, fence), isPositive);
  }

  newLeaseEpoch(lease: string): Promise<number> {
    return this.write(() => this.store.newLeaseEpoch(lease), always);
  }

  insertToken(token: Token, hash: string): Promise<void> {
    return this.write(() => this.store.insertToken(token, hash), always);
  }

  revokeToken(id: string, at: number): Promise<boolean> {
    return this.write(() => this.store.revokeToken(id, at), isTrue);
  }

  expireTokens(now: number): Promise<number> {
    return this.write(() => this.store.expireTokens(now), isPositive);
  }

  pruneActivities(opts: { before: number; maxId: number; limit: number }): Promise<number> {
    return this.write(() => this.store.pruneActivities(opts), isPositive);
  }

  /** Inserts the secret only the first time anyone asks: the result cannot tell whether it did. */
  sharedSecret(name: string): Promise<string> {
    return this.write(() => this.store.sharedSecret(name), never);
  }

  spendNonce(nonce: string, expiresAt: number, now: number): Promise<boolean> {
    return this.write(() => this.store.spendNonce(nonce, expiresAt, now), isTrue);
  }

  insertTarget(target: Target): Promise<boolean> {
    return this.write(() => this.store.insertTarget(target), isTrue);
  }

  updateTarget(target: Target, previous: Target): Promise<boolean> {
    return this.write(() => this.store.updateTarget(target, previous), isTrue);
  }

  deleteTarget(name: string): Promise<{ deleted: boolean; usedBy: string[]; holding: number }> {
    return this.write(
      () => this.store.deleteTarget(name),
      (r) => r.deleted,
    );
  }

  // Reads.
  getRelay(id: string): Promise<Relay | undefined> {
    return this.read(() => this.store.getRelay(id));
  }

  getRelays(ids: readonly string[]): Promise<Relay[]> {
    return this.read(() => this.store.getRelays(ids));
  }

  relayHeads(fleet: string): Promise<RelayHead[]> {
    return this.read(() => this.store.relayHeads(fleet));
  }

  listRelays(filter: RelayFilter): Promise<Relay[]> {
    return this.read(() => this.store.listRelays(filter));
  }

  relaysNeedingSync(limit: number): Promise<Relay[]> {
    return this.read(() => this.store.relaysNeedingSync(limit));
  }

  countRelaysByStatus(): Promise<Record<SyncStatus, number>> {
    return this.read(() => this.store.countRelaysByStatus());
  }

  relayCounts(): Promise<RelayCount[]> {
    return this.read(() => this.store.relayCounts());
  }

  relaysToVerify(filter: { deletedSince: number; after?: string; limit: number }): Promise<Relay[]> {
    return this.read(() => this.store.relaysToVerify(filter));
  }

  liveCounts(): Promise<LiveCount[]> {
    return this.read(() => this.store.liveCounts());
  }

  relaysDueForRetry(now: number, limit: number): Promise<Relay[]> {
    return this.read(() => this.store.relaysDueForRetry(now, limit));
  }

  relaysWithExpiredCredentials(now: number, limit: number): Promise<Relay[]> {
    return this.read(() => this.store.relaysWithExpiredCredentials(now, limit));
  }

  relaysUsing(values: { host?: string; schema?: string }): Promise<Relay[]> {
    return this.read(() => this.store.relaysUsing(values));
  }

  activitiesAfter(filter: ActivityFilter): Promise<Activity[]> {
    return this.read(() => this.store.activitiesAfter(filter));
  }

  lastActivityId(): Promise<number> {
    return this.read(() => this.store.lastActivityId());
  }

  findTokenByHash(hash: string): Promise<Token | undefined> {
    return this.read(() => this.store.findTokenByHash(hash));
  }

  findTokenById(id: string): Promise<Token | undefined> {
    return this.read(() => this.store.findTokenById(id));
  }

  listTokens(): Promise<Token[]> {
    return this.read(() => this.store.listTokens());
  }

  hasTenant(owner: string, now: number): Promise<boolean> {
    return this.read(() => this.store.hasTenant(owner, now));
  }

  getCursor(name: string): Promise<number> {
    return this.read(() => this.store.getCursor(name));
  }

  latestFleetState(fleet: string): Promise<FleetStateRecord | undefined> {
    return this.read(() => this.store.latestFleetState(fleet));
  }

  listFleetStates(filter: FleetStateFilter): Promise<FleetStateRecord[]> {
    return this.read(() => this.store.listFleetStates(filter));
  }

  getTarget(name: string): Promise<Target | undefined> {
    return this.read(() => this.store.getTarget(name));
  }

  listTargets(): Promise<Target[]> {
    return this.read(() => this.store.listTargets());
  }

  getFleet(name: string): Promise<FleetRecord | undefined> {
    return this.read(() => this.store.getFleet(name));
  }

  listFleets(): Promise<FleetRecord[]> {
    return this.read(() => this.store.listFleets());
  }

  ping(): Promise<void> {
    return this.read(() => this.store.ping());
  }

  /** Neither: closing the pool or file touches no data. */
  close(): Promise<void> {
    return this.store.close();
  }
}

const always = (): boolean => true;
const never = (): boolean => false;
const isTrue = (result: boolean): boolean => result;
const isPositive = (result: number): boolean => result > 0;
