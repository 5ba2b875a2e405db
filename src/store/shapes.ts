import type { RelayFilter } from './port.js';

/**
 * A filtered read's SQL depends only on which of its optional filters are set (its shape, a bit
 * mask), so it is built — and prepared — once per shape instead of on every call: statements came
 * up in the write path's profile (issue 19). A handful of shapes are used in practice; at most
 * 2^(number of filters).
 */
export class Shapes<T> {
  private readonly byMask = new Map<number, T>();

  constructor(private readonly make: (mask: number) => T) {}

  get(mask: number): T {
    let shape = this.byMask.get(mask);
    if (shape === undefined) {
      shape = this.make(mask);
      this.byMask.set(mask, shape);
    }
    return shape;
  }
}

/** `WHERE` and the clauses whose bit is set in `mask` (bit i is clause i), or '' for none. */
export function whereOf(clauses: readonly string[], mask: number): string {
  const set = clauses.filter((_, i) => (mask & (1 << i)) !== 0);
  return set.length === 0 ? '' : `WHERE ${set.join(' AND ')}`;
}

/** Numbers `?` placeholders `$1, $2, …` for PostgreSQL (the SQL it is used on has no `?` operator). */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * listRelays' shape and arguments. Bits, in order: not deleted, owner, fleet, sync status, inactive,
 * live status, after (each store lists its clauses in this order); `bool` is the store's boolean.
 */
export function relayFilter(
  filter: RelayFilter,
  bool: (b: boolean) => unknown,
): { mask: number; args: unknown[] } {
  let mask = filter.includeDeleted ? 0 : 1;
  const args: unknown[] = [];
  const add = (bit: number, value: unknown) => {
    mask |= bit;
    args.push(value);
  };
  if (filter.owner !== undefined) add(2, filter.owner);
  if (filter.fleet !== undefined) add(4, filter.fleet);
  if (filter.status !== undefined) add(8, filter.status);
  if (filter.inactive !== undefined) add(16, bool(filter.inactive));
  if (filter.live !== undefined) add(32, filter.live);
  if (filter.after !== undefined) add(64, filter.after);
  return { mask, args };
}
