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
 * The shape and bind values of a read's optional filters: bit `firstBit + i` is set, and the value
 * bound, for each `values[i]` that is defined; an undefined one leaves its clause out.
 */
export function filterShape(values: readonly unknown[], firstBit = 0): { mask: number; args: unknown[] } {
  let mask = 0;
  const args: unknown[] = [];
  values.forEach((value, i) => {
    if (value === undefined) return;
    mask |= 1 << (firstBit + i);
    args.push(value);
  });
  return { mask, args };
}

/**
 * listRelays' shape and arguments. Bits, in order: not deleted, owner, fleet, sync status, pull-only,
 * inactive, live status, after (each store lists its clauses in this order); `bool` is the store's
 * boolean.
 */
export function relayFilter(
  filter: RelayFilter,
  bool: (b: boolean) => unknown,
): { mask: number; args: unknown[] } {
  const { mask, args } = filterShape(
    [
      filter.owner,
      filter.fleet,
      filter.status,
      filter.pullOnly === undefined ? undefined : bool(filter.pullOnly),
      filter.inactive === undefined ? undefined : bool(filter.inactive),
      filter.live,
      filter.after,
    ],
    1,
  );
  return { mask: mask | (filter.includeDeleted ? 0 : 1), args };
}
