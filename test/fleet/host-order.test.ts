import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parkingHost, type Relay } from '../../src/domain/relay.js';
import { hostOrder } from '../../src/fleet/host-order.js';
import type { RelayWrite } from '../../src/store/port.js';
import { relayRecord } from '../support/relays.js';

type Update = Extract<RelayWrite, { kind: 'update' }>;

const row = (id: string, host: string, rev = 1): Relay => {
  const r = relayRecord(id, 'a'.repeat(64));
  return { ...r, rev, config: { ...r.config, host } };
};

/** Moves relay `id` from `from` to `to`, as computeFleetChanges writes it. */
const move = (id: string, from: string, to: string): Update => {
  const previous = row(id, from);
  return {
    kind: 'update',
    previous,
    relay: { ...previous, rev: 2, config: { ...previous.config, host: to } },
  };
};

/**
 * Writes `writes` one by one into a table holding `before`, as the store does: each update is
 * checked against the row's rev (optimistic), and the host index is unique after every write.
 */
function replay(before: Relay[], writes: RelayWrite[]): Map<string, Relay> {
  const table = new Map(before.map((r) => [r.id, r]));
  for (const w of writes) {
    if (w.kind === 'update') {
      const current = table.get(w.relay.id);
      expect(current?.rev, `${w.relay.id} written from a stale row`).toBe(w.previous.rev);
      expect(current?.config.host).toBe(w.previous.config.host);
    }
    table.set(w.relay.id, w.relay);
    const hosts = [...table.values()].filter((r) => r.deletedAt === null).map((r) => r.config.host);
    expect(new Set(hosts).size, `two relays on one host after writing ${w.relay.id}`).toBe(hosts.length);
  }
  return table;
}

const hostsOf = (table: Map<string, Relay>) =>
  Object.fromEntries([...table].map(([id, r]) => [id, r.config.host]));

describe('hostOrder', () => {
  it('leaves the updates alone when fewer than two relays change host', () => {
    const writes: RelayWrite[] = [
      move('a', 'a.test', 'b.test'),
      { kind: 'insert', relay: row('c', 'c.test') },
    ];
    expect(hostOrder(writes)).toBe(writes);
  });

  it('writes a chain from its free end: the relay leaving a host goes before the one taking it', () => {
    // a takes b's host, b takes c's, c goes to a fresh one.
    const writes = [
      move('a', 'a.test', 'b.test'),
      move('b', 'b.test', 'c.test'),
      move('c', 'c.test', 'd.test'),
    ];
    const ordered = hostOrder(writes);
    expect(ordered.map((w) => w.relay.id)).toEqual(['c', 'b', 'a']);
    const table = replay(
      writes.map((w) => w.previous),
      ordered,
    );
    expect(hostsOf(table)).toEqual({ a: 'b.test', b: 'c.test', c: 'd.test' });
  });

  it('keeps relays that do not move in front, in their order', () => {
    const stay = (id: string): Update => {
      const previous = row(id, `${id}.test`);
      return { kind: 'update', previous, relay: { ...previous, rev: 2 } };
    };
    const ordered = hostOrder([
      move('a', 'a.test', 'b.test'),
      stay('x'),
      move('b', 'b.test', 'z.test'),
      stay('y'),
    ]);
    expect(ordered.map((w) => w.relay.id)).toEqual(['x', 'y', 'b', 'a']);
  });

  it('unwinds a swap by parking one relay on its placeholder host, then writing it again last', () => {
    const writes = [move('a', 'a.test', 'b.test'), move('b', 'b.test', 'a.test')];
    const ordered = hostOrder(writes);
    expect(ordered.map((w) => [w.relay.id, w.relay.config.host])).toEqual([
      ['a', parkingHost('a')],
      ['b', 'a.test'],
      ['a', 'b.test'],
    ]);
    // The second write of `a` follows from its parked row, one rev on.
    expect(ordered[2]).toMatchObject({ previous: { rev: 2 }, relay: { rev: 3 } });
    const table = replay(
      writes.map((w) => w.previous),
      ordered,
    );
    expect(hostsOf(table)).toEqual({ a: 'b.test', b: 'a.test' });
  });

  it('does not count a revived relay (deleted before) as leaving its old host', () => {
    const revived = move('a', 'a.test', 'b.test');
    revived.previous = { ...revived.previous, deletedAt: 500 };
    const writes = [revived, move('b', 'b.test', 'c.test')];
    // One real move only: nothing to order.
    expect(hostOrder(writes)).toBe(writes);
  });

  it('any permutation of hosts, with some moving to fresh ones, is written without two relays on a host', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }).chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.shuffledSubarray(
              Array.from({ length: n * 2 }, (_, i) => `h${i}.test`),
              { minLength: n, maxLength: n },
            ),
          ),
        ),
        ([n, targets]) => {
          const ids = Array.from({ length: n }, (_, i) => `r${i}`);
          // Relay r<i> stands on h<i>; its target is one of the 2n hosts, all targets distinct.
          const writes = ids.map((id, i) => move(id, `h${i}.test`, targets[i]!));
          const moving = writes.filter((w) => w.previous.config.host !== w.relay.config.host);
          const ordered = hostOrder(writes);
          const table = replay(
            writes.map((w) => w.previous),
            ordered,
          );
          expect(hostsOf(table)).toEqual(Object.fromEntries(ids.map((id, i) => [id, targets[i]])));
          // Every relay is written once, plus once more for each ring it was parked to unwind.
          expect(ordered.length).toBeGreaterThanOrEqual(writes.length);
          if (moving.length >= 2) {
            const parked = ordered.filter((w) => w.relay.config.host.endsWith(parkingHost('')));
            expect(ordered.length).toBe(writes.length + parked.length);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
