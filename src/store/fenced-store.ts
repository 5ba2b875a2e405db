import type { Activity } from '../domain/activity.js';
import { DelegatingStore } from './delegating-store.js';
import type { Fence, Store, WriteBatch } from './port.js';
import { FencedError } from './write-errors.js';

/**
 * The store as the workers see it: every batch commit, cursor write and live-check touch carries the lease's
 * current fence, so the database refuses them once another replica started a newer term. Before
 * the first term there is no fence to show, and a worker write fails without reaching the
 * database. Every other method is delegated by DelegatingStore, where a method added to or renamed
 * in the port breaks the build, so no write can bypass the fence unnoticed. Targets and fleets are
 * the API's (any replica's) writes, like tokens: not the worker's, not fenced.
 */
export class FencedStore extends DelegatingStore {
  constructor(
    store: Store,
    private readonly fence: () => Fence | null,
  ) {
    super(store);
  }

  override commit(batch: WriteBatch): Promise<Activity[]> {
    return this.fenced((fence) => super.commit({ ...batch, fence }));
  }

  override setCursor(name: string, position: number): Promise<void> {
    return this.fenced((fence) => super.setCursor(name, position, fence));
  }

  override touchLiveChecks(ids: readonly string[], checkedAt: number): Promise<number> {
    return this.fenced((fence) => super.touchLiveChecks(ids, checkedAt, fence));
  }

  private async fenced<T>(write: (fence: Fence) => Promise<T>): Promise<T> {
    const fence = this.fence();
    if (!fence) throw new FencedError('worker', 0);
    return write(fence);
  }
}
