import { describe, expect, it } from 'vitest';
import { Chore, type ChoreConfig } from '../../src/lifecycle/chore.js';
import type { CycleRunInfo } from '../../src/lifecycle/cycle.js';
import { FakeClock } from '../support/clock.js';

const base: ChoreConfig = {
  interval: 1000,
  timeout: 500,
  enabled: true,
  jitter: 0,
  runAtStart: true,
  needsLease: true,
};

/** A chore that records when it ran. */
class Probe extends Chore {
  readonly starts: number[] = [];
  constructor(
    private readonly clock: FakeClock,
    config: Partial<ChoreConfig> = {},
  ) {
    super({ name: 'probe', config: { ...base, ...config } });
  }
  async once(_signal: AbortSignal): Promise<void> {
    this.starts.push(this.clock.now());
  }
}

async function runFor(chore: Probe, clock: FakeClock, ms: number, settings?: Partial<ChoreConfig>) {
  const runs: CycleRunInfo[] = [];
  const cycle = chore.schedule(settings ? { ...pick(base), ...settings } : undefined, {
    clock,
    onRun: (info) => runs.push(info),
  });
  if (!cycle) return { cycle, runs };
  const done = cycle.run((signal) => chore.once(signal));
  await clock.advance(ms);
  await cycle.stop();
  await done;
  return { cycle, runs };
}

function pick({ interval, timeout, enabled }: ChoreConfig) {
  return { interval, timeout, enabled };
}

describe('Chore', () => {
  it('runs at start when its config says runAtStart', async () => {
    const clock = new FakeClock(0);
    const chore = new Probe(clock, { runAtStart: true });
    await runFor(chore, clock, 2500);
    expect(chore.starts).toEqual([0, 1000, 2000]);
  });

  it('does not run at start without runAtStart: its first run is one interval later', async () => {
    const clock = new FakeClock(0);
    const chore = new Probe(clock, { runAtStart: false });
    await runFor(chore, clock, 999);
    expect(chore.starts).toEqual([]);

    const later = new Probe(clock, { runAtStart: false });
    const { runs } = await runFor(later, clock, 2500);
    expect(later.starts).toEqual([1999, 2999]);
    expect(runs.map((r) => r.name)).toEqual(['probe', 'probe']);
  });

  it("takes the operator's interval and switch over its defaults, keeping its own jitter and runAtStart", async () => {
    const clock = new FakeClock(0);
    const chore = new Probe(clock, { runAtStart: false, needsLease: false });
    await runFor(chore, clock, 1000, { interval: 400 });
    expect(chore.starts).toEqual([400, 800]);
    expect(chore.config).toMatchObject({ interval: 400, runAtStart: false, needsLease: false });

    const off = new Probe(clock);
    const { cycle } = await runFor(off, clock, 1000, { enabled: false });
    expect(cycle).toBeNull();
    expect(() => off.cycle).toThrow(/not scheduled/);
    off.trigger(); // a no-op, not a throw
  });
});
