import { describe, expect, it } from 'vitest';
import { KeyedMutex } from '../../src/domain/keyed-mutex.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('KeyedMutex', () => {
  it('runs tasks of one key one at a time, in arrival order', async () => {
    const m = new KeyedMutex();
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const runs = gates.map((g, i) =>
      m.run('k', async () => {
        log.push(`start ${i}`);
        await g.promise;
        log.push(`end ${i}`);
        return i;
      }),
    );
    await turn();
    expect(log).toEqual(['start 0']);
    gates[2]?.resolve(); // finishing a later task's gate early changes nothing
    gates[1]?.resolve();
    await turn();
    expect(log).toEqual(['start 0']);
    gates[0]?.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(log).toEqual(['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('runs different keys in parallel', async () => {
    const m = new KeyedMutex();
    const gate = deferred();
    const started: string[] = [];
    const a = m.run('a', async () => {
      started.push('a');
      await gate.promise;
    });
    const b = m.run('b', async () => {
      started.push('b');
    });
    await b;
    expect(started).toEqual(['a', 'b']);
    gate.resolve();
    await a;
  });

  it('a failing task releases the key for the next one and rejects only its own caller', async () => {
    const m = new KeyedMutex();
    const first = m.run('k', async () => {
      throw new Error('boom');
    });
    const second = m.run('k', async () => 'ok');
    await expect(first).rejects.toThrow('boom');
    await expect(second).resolves.toBe('ok');
  });

  it('forgets a key once its queue drains, so memory follows the keys in use', async () => {
    const m = new KeyedMutex();
    const gate = deferred();
    const runs = [m.run('a', () => gate.promise), m.run('a', async () => {}), m.run('b', async () => {})];
    await turn();
    expect(m.size).toBe(1); // b finished, a still busy
    gate.resolve();
    await Promise.all(runs);
    expect(m.size).toBe(0);
    for (let i = 0; i < 1000; i++) await m.run(`key-${i}`, async () => {});
    expect(m.size).toBe(0);
  });
});
