import { describe, expect, it } from 'vitest';
import { readPage } from '../../src/domain/page.js';

describe('readPage (keyset paging)', () => {
  const rows = ['a', 'b', 'c', 'd', 'e'];
  const read = (asked: number[]) => async (limit: number) => {
    asked.push(limit);
    return rows.slice(0, limit);
  };

  it('asks for one row more than the page; a full page with more behind it names the next key', async () => {
    const asked: number[] = [];
    const page = await readPage(2, read(asked), (r) => r.toUpperCase());
    expect(asked).toEqual([3]);
    expect(page).toEqual({ items: ['a', 'b'], next: 'B' });
  });

  it('has no next key on the last page, full or not', async () => {
    expect(await readPage(5, read([]), (r) => r)).toEqual({ items: rows, next: null });
    expect(await readPage(9, read([]), (r) => r)).toEqual({ items: rows, next: null });
  });
});
