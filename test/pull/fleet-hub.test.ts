import { describe, expect, it } from 'vitest';
import type { Relay } from '../../src/domain/relay.js';
import { FleetHub, type HubConn, type HubDeps } from '../../src/pull/server/fleet-hub.js';
import { FakeClock } from '../support/clock.js';
import { relayRecord } from '../support/relays.js';

const PUBKEY = '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798';
const turn = () => new Promise((r) => setImmediate(r));
async function settled() {
  for (let i = 0; i < 5; i++) await turn();
}

interface Frame {
  event: string;
  data: {
    path: string;
    version?: number;
    data?: { relays?: Record<string, unknown>; unchanged?: string[]; version?: number };
  };
}

/** A connection that records the frames it is sent. */
class Conn implements HubConn {
  frames: Frame[] = [];
  closed = false;
  ended = false;
  joinedAt: number | undefined;
  constructor(public held: Map<string, number> | undefined = undefined) {}
  write(frame: Buffer): boolean {
    const text = frame.toString('utf8');
    const event = /^event: (\w+)$/m.exec(text)?.[1] ?? '';
    const data = JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? 'null');
    this.frames.push({ event, data });
    return !this.closed;
  }
  joined(putBytes: number): void {
    this.joinedAt = putBytes;
  }
  end(): void {
    this.ended = true;
  }
}

function setup(relays: Relay[], over: Partial<HubDeps> = {}) {
  const clock = new FakeClock();
  const db = new Map(relays.map((r) => [r.id, r]));
  const reads = { fleet: 0, relays: 0 };
  const errors: unknown[] = [];
  let empty = 0;
  const deps: HubDeps = {
    clock,
    epoch: async () => 'e-1',
    readFleet: async (fleet) => {
      reads.fleet++;
      return [...db.values()].filter((r) => r.fleet === fleet && r.deletedAt === null);
    },
    readRelays: async (ids) => {
      reads.relays++;
      return ids.flatMap((id) => (db.has(id) ? [db.get(id)!] : []));
    },
    repJson: (r) => JSON.stringify({ id: r.id, version: r.version }),
    resyncMs: 0,
    retryMs: 1000,
    reuseReadMs: 500,
    onError: (err) => errors.push(err),
    onEmpty: () => empty++,
    ...over,
  };
  const hub = new FleetHub('edge', deps);
  const offer = (r: Relay) => {
    db.set(r.id, r);
    hub.offer(r, () => deps.repJson(r));
  };
  return { clock, db, reads, errors, hub, offer, empty: () => empty };
}

const relay = (id: string, version: number, over: Partial<Relay> = {}) =>
  relayRecord(id, PUBKEY, { fleet: 'edge', version, ...over });

/** Two connections that joined the hub and were served their put. */
async function twoJoined(t: ReturnType<typeof setup>): Promise<[Conn, Conn]> {
  const [x, y] = [new Conn(), new Conn()];
  t.hub.join(x);
  t.hub.join(y);
  await settled();
  return [x, y];
}

describe('FleetHub', () => {
  it('gives a joiner one full put of the fleet, and joiners of the same turn share one read', async () => {
    const t = setup([relay('a', 1), relay('b', 2), relay('c', 1, { fleet: 'other' })]);
    const [x, y] = await twoJoined(t);
    expect(t.reads.fleet).toBe(1);
    for (const c of [x, y]) {
      expect(c.frames.map((f) => f.event)).toEqual(['put']);
      expect(Object.keys(c.frames[0]?.data.data?.relays ?? {}).sort()).toEqual(['a', 'b']);
      expect(c.joinedAt).toBeGreaterThan(0);
    }
    expect(t.hub.connections).toBe(2);
    expect(t.hub.relays).toBe(2);
  });

  it('serves a joiner within reuseReadMs from what it holds; later it reads the fleet again', async () => {
    const t = setup([relay('a', 1)]);
    t.hub.join(new Conn());
    await settled();
    await t.clock.advance(100);
    t.hub.join(new Conn());
    await settled();
    expect(t.reads.fleet).toBe(1);
    await t.clock.advance(1000);
    t.hub.join(new Conn());
    await settled();
    expect(t.reads.fleet).toBe(2);
  });

  it('sends a newer version as one patch to every connection, never a version already sent', async () => {
    const t = setup([relay('a', 3)]);
    const [x, y] = await twoJoined(t);
    t.offer(relay('a', 3));
    t.offer(relay('a', 2));
    await settled();
    expect(x.frames.map((f) => f.event)).toEqual(['put']);
    t.offer(relay('a', 4));
    await settled();
    for (const c of [x, y]) {
      expect(c.frames.map((f) => f.event)).toEqual(['put', 'patch']);
      expect(c.frames[1]?.data).toMatchObject({ path: 'relays/a', data: { version: 4 } });
    }
  });

  it('a relay leaving the fleet or deleted becomes a delete at its version, only if it was sent live', async () => {
    const t = setup([relay('a', 1), relay('b', 1)]);
    const x = new Conn();
    t.hub.join(x);
    await settled();
    t.offer(relay('a', 2, { fleet: 'other' }));
    t.offer(relay('b', 5, { deletedAt: 1 }));
    t.offer(relay('z', 7, { deletedAt: 1 })); // never sent: nothing to delete
    await settled();
    expect(x.frames.slice(1)).toEqual([
      { event: 'delete', data: { path: 'relays/a', version: 2 } },
      { event: 'delete', data: { path: 'relays/b', version: 5 } },
    ]);
    expect(t.hub.relays).toBe(0);
  });

  it('a joiner holding versions of this epoch gets a delta put', async () => {
    const t = setup([relay('a', 1), relay('b', 2)]);
    const x = new Conn(
      new Map([
        ['a', 1],
        ['b', 1],
      ]),
    );
    t.hub.join(x);
    await settled();
    const put = x.frames[0]?.data.data;
    expect(Object.keys(put?.relays ?? {})).toEqual(['b']);
    expect(put?.unchanged).toEqual(['a']);
  });

  it('a full resync finds relays that left while no notification came, deletes first', async () => {
    const t = setup([relay('a', 1), relay('b', 1)]);
    const x = new Conn();
    t.hub.join(x);
    await settled();
    t.db.set('a', relay('a', 2, { deletedAt: 1 })); // committed, notification lost
    t.db.set('b', relay('b', 2));
    t.hub.resync();
    await settled();
    expect(x.frames.slice(1).map((f) => [f.event, f.data.path])).toEqual([
      ['delete', 'relays/a'],
      ['patch', 'relays/b'],
    ]);
  });

  it('a failed read ends the joiners (they retry), reports the error and reads again after retryMs', async () => {
    let fail = true;
    let reads = 0;
    const t = setup([relay('a', 1)]);
    const hub = new FleetHub('edge', {
      clock: t.clock,
      epoch: async () => 'e-1',
      readFleet: async () => {
        reads++;
        if (fail) throw new Error('database unavailable');
        return [relay('a', 1)];
      },
      readRelays: async () => [],
      repJson: (r) => JSON.stringify({ id: r.id, version: r.version }),
      resyncMs: 0,
      retryMs: 1000,
      reuseReadMs: 0,
      onError: (err) => t.errors.push(err),
      onEmpty: () => {},
    });
    const x = new Conn();
    hub.join(x);
    await settled();
    expect(x.ended).toBe(true);
    expect(x.frames).toEqual([]);
    expect(t.errors).toHaveLength(1);
    fail = false;
    await t.clock.advance(999);
    expect(reads).toBe(1);
    await t.clock.advance(1);
    await settled();
    expect(reads).toBe(2);
    const y = new Conn();
    hub.join(y);
    await settled();
    expect(y.frames.map((f) => f.event)).toEqual(['put']);
    hub.dispose();
  });

  it('tells its owner when its last connection leaves', async () => {
    const t = setup([relay('a', 1)]);
    const [x, y] = await twoJoined(t);
    t.hub.leave(x);
    expect(t.empty()).toBe(0);
    t.hub.leave(y);
    expect(t.empty()).toBe(1);
  });
});
