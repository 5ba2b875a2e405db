import { type Fence, FencedError, type Store, type WriteBatch } from './port.js';

/**
 * The store as the workers see it: every batch commit and cursor write carries the lease's
 * current fence, so the database refuses them once another replica started a newer term. Before
 * the first term there is no fence to show, and a worker write fails without reaching the
 * database. Everything else is the underlying store (a Proxy, so methods added to the port later
 * pass through unchanged).
 */
export function fencedStore(store: Store, fence: () => Fence | null): Store {
  const required = (): Fence => {
    const f = fence();
    if (!f) throw new FencedError('worker', 0);
    return f;
  };
  const commit = async (batch: WriteBatch) => store.commit({ ...batch, fence: required() });
  const setCursor = async (name: string, position: number) => store.setCursor(name, position, required());
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'commit') return commit;
      if (prop === 'setCursor') return setCursor;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
