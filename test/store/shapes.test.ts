import { describe, expect, it } from 'vitest';
import { filterShape, numbered, relayFilter, Shapes, whereOf } from '../../src/store/shapes.js';

describe('filtered-read shapes', () => {
  it('builds each shape once, whatever the number of calls', () => {
    const built: number[] = [];
    const shapes = new Shapes((mask) => {
      built.push(mask);
      return { mask };
    });
    const a = shapes.get(5);
    expect(shapes.get(5)).toBe(a);
    shapes.get(0);
    shapes.get(5);
    expect(built).toEqual([5, 0]);
  });

  it('keeps the clauses of the set bits, in order, and numbers placeholders for PostgreSQL', () => {
    expect(whereOf(['a = ?', 'b = ?', 'c IS NULL'], 0)).toBe('');
    expect(whereOf(['a = ?', 'b = ?', 'c IS NULL'], 0b101)).toBe('WHERE a = ? AND c IS NULL');
    expect(numbered('SELECT * FROM t WHERE a = ? AND b > ? LIMIT ?')).toBe(
      'SELECT * FROM t WHERE a = $1 AND b > $2 LIMIT $3',
    );
  });

  it('sets a bit and binds a value for each defined filter, from firstBit on', () => {
    expect(filterShape([undefined, undefined])).toEqual({ mask: 0, args: [] });
    expect(filterShape(['f', undefined, 3])).toEqual({ mask: 0b101, args: ['f', 3] });
    expect(filterShape([null, false, 0], 2)).toEqual({ mask: 0b11100, args: [null, false, 0] });
  });

  it('passes listRelays arguments in the order of their bits', () => {
    expect(relayFilter({ limit: 10, includeDeleted: true }, Number)).toEqual({ mask: 0, args: [] });
    expect(
      relayFilter({ limit: 10, owner: 'o', status: 'failed', inactive: true, after: 'r1' }, Number),
    ).toEqual({ mask: 1 | 2 | 8 | 32 | 128, args: ['o', 'failed', 1, 'r1'] });
    expect(relayFilter({ limit: 10, status: 'failed', pullOnly: false, live: 'stale' }, Number)).toEqual({
      mask: 1 | 8 | 16 | 64,
      args: ['failed', 0, 'stale'],
    });
  });
});
