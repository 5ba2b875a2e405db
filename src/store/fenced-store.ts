import type { Activity } from '../domain/activity.js';
import type { Token } from '../domain/principal.js';
import type { Relay, SyncStatus } from '../domain/relay.js';
import type { FleetRecord, Target } from '../domain/target.js';
import {
  type ActivityFilter,
  type Fence,
  FencedError,
  type FleetStateFilter,
  type FleetStateRecord,
  type LiveCount,
  type RelayCount,
  type RelayFilter,
  type RelayHead,
  type Store,
  type WriteBatch,
} from './port.js';

/**
 * The store as the workers see it: every batch commit and cursor write carries the lease's
 * current fence, so the database refuses them once another replica started a newer term. Before
 * the first term there is no fence to show, and a worker write fails without reaching the
 * database. Every other method is delegated by hand: a method added to or renamed in the port
 * breaks the build here, so no write can bypass the fence unnoticed.
 */
export class FencedStore implements Store {
  constructor(
    private readonly store: Store,
    private readonly fence: () => Fence | null,
  ) {}

  get serialCommits(): boolean {
    return this.store.serialCommits;
  }

  commit(batch: WriteBatch): Promise<Activity[]> {
    return this.fenced((fence) => this.store.commit({ ...batch, fence }));
  }

  setCursor(name: string, position: number): Promise<void> {
    return this.fenced((fence) => this.store.setCursor(name, position, fence));
  }

  private async fenced<T>(write: (fence: Fence) => Promise<T>): Promise<T> {
    const fence = this.fence();
    if (!fence) throw new FencedError('worker', 0);
    return write(fence);
  }

  getRelay(id: string): Promise<Relay | undefined> {
    return this.store.getRelay(id);
  }

  getRelays(ids: readonly string[]): Promise<Relay[]> {
    return this.store.getRelays(ids);
  }

  relayHeads(fleet: string): Promise<RelayHead[]> {
    return this.store.relayHeads(fleet);
  }

  listRelays(filter: RelayFilter): Promise<Relay[]> {
    return this.store.listRelays(filter);
  }

  relaysNeedingSync(limit: number): Promise<Relay[]> {
    return this.store.relaysNeedingSync(limit);
  }

  countRelaysByStatus(): Promise<Record<SyncStatus, number>> {
    return this.store.countRelaysByStatus();
  }

  relayCounts(): Promise<RelayCount[]> {
    return this.store.relayCounts();
  }

  relaysToVerify(filter: { deletedSince: number; after?: string; limit: number }): Promise<Relay[]> {
    return this.store.relaysToVerify(filter);
  }

  liveCounts(): Promise<LiveCount[]> {
    return this.store.liveCounts();
  }

  relaysDueForRetry(now: number, limit: number): Promise<Relay[]> {
    return this.store.relaysDueForRetry(now, limit);
  }

  relaysWithExpiredCredentials(now: number, limit: number): Promise<Relay[]> {
    return this.store.relaysWithExpiredCredentials(now, limit);
  }

  relaysUsing(values: { host?: string; schema?: string }): Promise<Relay[]> {
    return this.store.relaysUsing(values);
  }

  activitiesAfter(filter: ActivityFilter): Promise<Activity[]> {
    return this.store.activitiesAfter(filter);
  }

  lastActivityId(): Promise<number> {
    return this.store.lastActivityId();
  }

  insertToken(token: Token, hash: string): Promise<void> {
    return this.store.insertToken(token, hash);
  }

  findTokenByHash(hash: string): Promise<Token | undefined> {
    return this.store.findTokenByHash(hash);
  }

  findTokenById(id: string): Promise<Token | undefined> {
    return this.store.findTokenById(id);
  }

  listTokens(): Promise<Token[]> {
    return this.store.listTokens();
  }

  revokeToken(id: string, at: number): Promise<boolean> {
    return this.store.revokeToken(id, at);
  }

  hasTenant(owner: string, now: number): Promise<boolean> {
    return this.store.hasTenant(owner, now);
  }

  expireTokens(now: number): Promise<number> {
    return this.store.expireTokens(now);
  }

  pruneActivities(opts: { before: number; maxId: number; limit: number }): Promise<number> {
    return this.store.pruneActivities(opts);
  }

  getCursor(name: string): Promise<number> {
    return this.store.getCursor(name);
  }

  newLeaseEpoch(lease: string): Promise<number> {
    return this.store.newLeaseEpoch(lease);
  }

  sharedSecret(name: string): Promise<string> {
    return this.store.sharedSecret(name);
  }

  spendNonce(nonce: string, expiresAt: number, now: number): Promise<boolean> {
    return this.store.spendNonce(nonce, expiresAt, now);
  }

  latestFleetState(fleet: string): Promise<FleetStateRecord | undefined> {
    return this.store.latestFleetState(fleet);
  }

  listFleetStates(filter: FleetStateFilter): Promise<FleetStateRecord[]> {
    return this.store.listFleetStates(filter);
  }

  ping(): Promise<void> {
    return this.store.ping();
  }

  close(): Promise<void> {
    return this.store.close();
  }

  // Targets and fleets are the API's (any replica's) writes, like tokens: not the worker's, not fenced.
  insertTarget(target: Target): Promise<boolean> {
    return this.store.insertTarget(target);
  }

  updateTarget(target: Target, previous: Target): Promise<boolean> {
    return this.store.updateTarget(target, previous);
  }

  deleteTarget(name: string): Promise<{ deleted: boolean; usedBy: string[] }> {
    return this.store.deleteTarget(name);
  }

  getTarget(name: string): Promise<Target | undefined> {
    return this.store.getTarget(name);
  }

  listTargets(): Promise<Target[]> {
    return this.store.listTargets();
  }

  getFleet(name: string): Promise<FleetRecord | undefined> {
    return this.store.getFleet(name);
  }

  listFleets(): Promise<FleetRecord[]> {
    return this.store.listFleets();
  }
}
