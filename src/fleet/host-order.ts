import { parkingHost, type Relay } from '../domain/relay.js';
import type { RelayWrite } from '../store/port.js';

/**
 * The updates, ordered so that a relay moving to a host another relay of the apply moves away from
 * is written after it: the unique host index is checked row by row, and zooid checks each pushed
 * relay on its own too. Hosts going round a ring (a swap) cannot be ordered: one relay of the ring
 * is first written with its placeholder host (never seen outside the transaction), which frees its
 * old host for the rest of the ring, and is written again, last, with its real host. In zooid,
 * push sync unwinds the same ring by parking one relay (Infra).
 */
export function hostOrder(updates: RelayWrite[]): RelayWrite[] {
  type Update = Extract<RelayWrite, { kind: 'update' }>;
  const moving = new Set(
    updates.filter(
      (w): w is Update =>
        w.kind === 'update' &&
        w.previous.deletedAt === null &&
        w.relay.config.host !== w.previous.config.host,
    ),
  );
  if (moving.size < 2) return updates;
  const leaving = new Map([...moving].map((w) => [w.previous.config.host, w]));
  const ordered = updates.filter((w) => !moving.has(w as Update));
  const placed = new Set<RelayWrite>();
  for (const start of moving) {
    // Follow who must go first (the relay leaving the host this one takes) to the chain's end.
    // Hosts are unique, so a chain that comes back on itself comes back to `start`: a ring.
    const chain = new Set<Update>();
    let ring = false;
    for (let w: Update | undefined = start; w && !placed.has(w); w = leaving.get(w.relay.config.host)) {
      if (chain.has(w)) {
        ring = w === start;
        if (!ring) throw new Error(`host moves: ${w.relay.id} is taken twice`); // unique hosts: a bug
        break;
      }
      chain.add(w);
    }
    let last: Update = start;
    if (ring) {
      const parked: Relay = {
        ...start.previous,
        rev: start.previous.rev + 1,
        config: { ...start.previous.config, host: parkingHost(start.relay.id) },
      };
      ordered.push({ kind: 'update', relay: parked, previous: start.previous });
      last = { kind: 'update', relay: { ...start.relay, rev: parked.rev + 1 }, previous: parked };
    }
    for (const w of [...chain].reverse()) {
      placed.add(w);
      ordered.push(w === start ? last : w);
    }
  }
  return ordered;
}
