/** One page of a keyset-paged list. */
export interface Page<T, K> {
  items: T[];
  /** The key to pass back (`after`, `before`) for the next page; null on the last page. */
  next: K | null;
}

/**
 * Keyset paging: `read` is asked for one row more than the page holds; that row only tells that
 * there is a next page, which starts after the key of the page's last item.
 */
export async function readPage<T, K>(
  limit: number,
  read: (limit: number) => Promise<T[]>,
  keyOf: (item: T) => K,
): Promise<Page<T, K>> {
  const rows = await read(limit + 1);
  if (rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next: last === undefined ? null : keyOf(last) };
}
