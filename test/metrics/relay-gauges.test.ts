import { describe, expect, it } from 'vitest';
import { createMetrics, MAX_FLEET_LABELS, OTHER_FLEETS, setRelayGauges } from '../../src/metrics.js';
import type { RelayCount } from '../../src/store/port.js';

const row = (over: Partial<RelayCount>): RelayCount => ({
  fleet: 'default',
  status: 'synced',
  inactive: false,
  deleted: false,
  n: 1,
  oldestChangeAt: 0,
  ...over,
});

describe('relay gauges', () => {
  it(`labels the ${MAX_FLEET_LABELS} largest fleets and sums the rest as fleet="${OTHER_FLEETS}"`, async () => {
    const m = createMetrics();
    const counts = Array.from({ length: MAX_FLEET_LABELS + 5 }, (_, i) =>
      row({ fleet: `f${String(i).padStart(3, '0')}`, n: i === 0 ? 50 : 2 }),
    );
    counts.push(row({ fleet: 'f000', status: 'failed', n: 3 }));
    setRelayGauges(m, counts, 10_000);
    const series = (await m.relaysByFleet.get()).values;
    const fleets = new Set(series.map((v) => v.labels.fleet));
    expect(fleets.size).toBe(MAX_FLEET_LABELS + 1);
    expect(fleets.has('f000')).toBe(true);
    // 105 fleets: the 100 kept are f000 (largest) and f001…f099 (ties by name); f100…f104 are summed.
    expect(fleets.has('f100')).toBe(false);
    const at = (fleet: string, status: string) =>
      series.find((v) => v.labels.fleet === fleet && v.labels.status === status)?.value;
    expect(at(OTHER_FLEETS, 'synced')).toBe(10);
    expect(at('f000', 'failed')).toBe(3);

    // A later scrape without those fleets drops their series.
    setRelayGauges(m, [row({ fleet: 'only' })], 10_000);
    expect(new Set((await m.relaysByFleet.get()).values.map((v) => v.labels.fleet))).toEqual(
      new Set(['only']),
    );
  });

  it('ages the oldest pending or retrying change (deletes included), not synced, failed or pull ones', async () => {
    const m = createMetrics();
    setRelayGauges(
      m,
      [
        row({ status: 'synced', oldestChangeAt: 1_000 }),
        row({ status: 'failed', oldestChangeAt: 2_000 }),
        row({ status: 'retrying', oldestChangeAt: 7_000 }),
        row({ status: 'pending', deleted: true, oldestChangeAt: 6_000 }),
        row({ status: 'pending', inactive: true, n: 4, oldestChangeAt: 9_000 }),
        // A pull-only fleet's relays wait for no push: counted, never aged.
        row({ status: 'pull', n: 2, oldestChangeAt: 500 }),
      ],
      10_000,
    );
    expect((await m.oldestUnsyncedAge.get()).values[0]?.value).toBe(4);
    expect((await m.relaysInactive.get()).values[0]?.value).toBe(4);
    // The deleted relay is not a live one.
    const byStatus = Object.fromEntries(
      (await m.relaysByStatus.get()).values.map((v) => [v.labels.status, v.value]),
    );
    expect(byStatus).toEqual({ pending: 4, synced: 1, retrying: 1, failed: 1, pull: 2 });

    setRelayGauges(m, [row({})], 10_000);
    expect((await m.oldestUnsyncedAge.get()).values[0]?.value).toBe(0);
  });

  it('counts relays by target: pull-only fleets as target="none", a target with no relay left drops', async () => {
    const m = createMetrics();
    const targets: Record<string, string | null> = { eu: 'eu-1', edge: null };
    const targetOf = (fleet: string) => (fleet in targets ? targets[fleet]! : 'default');
    setRelayGauges(
      m,
      [
        row({ fleet: 'default', n: 2 }),
        row({ fleet: 'shop', status: 'failed' }),
        row({ fleet: 'eu', status: 'retrying', n: 3 }),
        row({ fleet: 'eu', status: 'failed', deleted: true }),
        row({ fleet: 'edge', status: 'pull', n: 4 }),
      ],
      10_000,
      targetOf,
    );
    const byTarget = async () =>
      Object.fromEntries(
        (await m.relaysByTarget.get()).values
          .filter((v) => v.value > 0 || v.labels.target !== 'default')
          .map((v) => [`${v.labels.target}/${v.labels.status}`, v.value]),
      );
    expect(await byTarget()).toMatchObject({
      'default/synced': 2,
      'default/failed': 1,
      'eu-1/retrying': 3,
      'eu-1/failed': 0,
      'none/pull': 4,
    });
    // bosun_relays is unchanged: one series per status, every target summed.
    const byStatus = Object.fromEntries(
      (await m.relaysByStatus.get()).values.map((v) => [v.labels.status, v.value]),
    );
    expect(byStatus).toMatchObject({ synced: 2, failed: 1, retrying: 3, pull: 4 });
    expect(
      (await m.relaysByStatus.get()).values.every((v) => Object.keys(v.labels).join() === 'status'),
    ).toBe(true);

    // eu-1 lost its relays: its series go; default keeps its zeros.
    setRelayGauges(m, [], 10_000, targetOf);
    const left = (await m.relaysByTarget.get()).values;
    expect(new Set(left.map((v) => v.labels.target))).toEqual(new Set(['default']));
    expect(left.every((v) => v.value === 0)).toBe(true);
  });
});
