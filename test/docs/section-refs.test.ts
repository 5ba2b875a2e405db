import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Code comments cite the protocol documents in docs/ by section ("docs/stream-protocol.md §4", or a
 * bare "§4" in a file that names its document): every one must resolve to a heading there.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCS = ['docs/stream-protocol.md', 'docs/zooid-contract.md'];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|js)$/.test(e) ? [p] : [];
  });
}

const headings = new Map(
  DOCS.map((doc) => {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    return [doc, new Set([...text.matchAll(/^## (\d+)\. /gm)].map((m) => m[1]))];
  }),
);

describe('section references in code', () => {
  const self = fileURLToPath(import.meta.url);
  const files = ['src', 'test', 'bench'].flatMap((d) => walk(join(ROOT, d))).filter((f) => f !== self);
  const refs: { file: string; doc: string; section: string }[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (!text.includes('§')) continue;
    const cited = DOCS.filter((d) => text.includes(d));
    for (const m of text.matchAll(/(docs\/[a-z-]+\.md )?§(\d+)/g)) {
      const doc = m[1]?.trim() ?? (cited.length === 1 ? cited[0] : undefined);
      refs.push({
        file: relative(ROOT, file),
        doc: doc ?? '(no document named in this file)',
        section: m[2]!,
      });
    }
  }

  it('finds references to check', () => {
    expect(refs.length).toBeGreaterThan(20);
  });

  it('every one names a heading of a document in docs/', () => {
    const broken = refs.filter((r) => !headings.get(r.doc)?.has(r.section));
    expect(broken).toEqual([]);
  });
});
