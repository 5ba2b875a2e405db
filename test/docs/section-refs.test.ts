import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Code and prose cite the documents in docs/ by section: "docs/stream-protocol.md §4", or a bare "§4"
 * in a file that names exactly one document (a document's own bare citations are to itself); a file
 * naming two documents names one at each citation. "§9.2"
 * is heading 9.2 or, as in these documents, item 2 of the numbered list of section 9. Every citation
 * must resolve, and every document named must exist under docs/, so a fresh clone can follow it.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `docs/${f}`);
const PROSE = ['README.md', 'ARCHITECTURE.md', 'bench/RESULTS.md', ...DOCS];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|js|mjs)$/.test(e) ? [p] : [];
  });
}

/** The citable places of a document: "N" for each `## N.` heading, "N.M" for `### N.M` or list item M. */
function sectionsOf(doc: string): Set<string> {
  const found = new Set<string>();
  let current: string | undefined;
  for (const line of readFileSync(join(ROOT, doc), 'utf8').split('\n')) {
    const top = /^## (\d+)\. /.exec(line);
    if (top) {
      current = top[1]!;
      found.add(current);
      continue;
    }
    if (/^## /.test(line)) current = undefined;
    const sub = /^### (\d+)\.(\d+) /.exec(line);
    if (sub) found.add(`${sub[1]}.${sub[2]}`);
    const item = /^(\d+)\. /.exec(line);
    if (item && current) found.add(`${current}.${item[1]}`);
  }
  return found;
}

const sections = new Map(DOCS.map((doc) => [doc, sectionsOf(doc)]));
const self = fileURLToPath(import.meta.url);
const files = [
  ...['src', 'test', 'bench'].flatMap((d) => walk(join(ROOT, d))).filter((f) => f !== self),
  ...PROSE.map((p) => join(ROOT, p)),
].map((f) => relative(ROOT, f).split('\\').join('/'));

interface Ref {
  file: string;
  line: number;
  doc: string;
  section: string;
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

const refs: Ref[] = [];
const misnamed: string[] = [];
for (const file of files) {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const isDoc = DOCS.includes(file);
  // Outside docs/ a document is named by its repository path, so a reader can open it.
  if (!isDoc) {
    for (const m of text.matchAll(/(docs\/)?([a-z][a-z-]*-(?:protocol|contract))\.md/g)) {
      if (!m[1] || !existsSync(join(ROOT, `docs/${m[2]}.md`))) {
        misnamed.push(`${file}:${lineOf(text, m.index)} ${m[0]}`);
      }
    }
  }
  if (!text.includes('§')) continue;
  const named = DOCS.filter((d) => text.includes(d));
  const fallback = isDoc ? file : named.length === 1 ? named[0] : undefined;
  // A run such as "docs/stream-protocol.md §1–§3, §8" cites one document throughout.
  const run = /(?:(?:docs\/)?([a-z][a-z-]*)\.md\]? )?§\d+(?:\.\d+)?(?:(?:, |–| and )§\d+(?:\.\d+)?)*/g;
  for (const m of text.matchAll(run)) {
    const doc = m[1] ? `docs/${m[1]}.md` : fallback;
    for (const s of m[0].matchAll(/§(\d+(?:\.\d+)?)/g)) {
      refs.push({
        file,
        line: lineOf(text, m.index),
        doc: doc ?? `(one of ${named.length} documents named in this file)`,
        section: s[1]!,
      });
    }
  }
}

describe('section references', () => {
  it('finds references to check, subsections included', () => {
    expect(refs.length).toBeGreaterThan(40);
    expect(refs.some((r) => r.section.includes('.'))).toBe(true);
    expect(sections.get('docs/stream-protocol.md')?.has('9.2')).toBe(true);
    expect(sections.get('docs/stream-protocol.md')?.has('9.6')).toBe(false);
  });

  it('every one names a section of a document in docs/', () => {
    const broken = refs.filter((r) => !sections.get(r.doc)?.has(r.section));
    expect(broken).toEqual([]);
  });

  it('documents are named by their path in the repository', () => {
    expect(misnamed).toEqual([]);
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

describe('links and paths in the prose', () => {
  const links: { file: string; target: string }[] = [];
  const paths: { file: string; path: string }[] = [];
  for (const file of PROSE) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/.test(m[1]!)) links.push({ file, target: m[1]! });
    }
    // `src/push/observer.ts`-like mentions: the file or folder must be in the repository.
    for (const m of text.matchAll(/`((?:src|test|bench|docs|examples)\/[\w./-]*)`/g)) {
      paths.push({ file, path: m[1]! });
    }
  }

  it('finds links and paths to check', () => {
    expect(links.length).toBeGreaterThan(10);
    expect(paths.length).toBeGreaterThan(20);
  });

  it('every relative link reaches a file, and its anchor a heading', () => {
    const broken = links.filter(({ file, target }) => {
      const [path, anchor] = target.split('#');
      const to = path ? relative(ROOT, join(ROOT, dirname(file), path)) : file;
      if (!existsSync(join(ROOT, to))) return true;
      return anchor !== undefined && (!to.endsWith('.md') || !anchorsOf(to).has(anchor));
    });
    expect(broken).toEqual([]);
  });

  it('every repository path named in the prose exists', () => {
    expect(paths.filter(({ path }) => !existsSync(join(ROOT, path)))).toEqual([]);
  });
});

describe('names in ARCHITECTURE.md', () => {
  // `Command.updateRelay` or `Observer`: the class (or interface) exists in src/, with that method.
  const text = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');
  const names = [
    ...new Set([...text.matchAll(/`([A-Z][A-Za-z]+)(?:\.([a-z][A-Za-z]+))?[`(]/g)].map((m) => m[0])),
  ];
  const sources = ['src'].flatMap((d) => walk(join(ROOT, d))).map((f) => readFileSync(f, 'utf8'));

  it('finds names to check', () => {
    expect(names.length).toBeGreaterThan(10);
  });

  it('every class and method named exists in src/', () => {
    const missing = names.filter((name) => {
      const [, type, method] = /`([A-Z][A-Za-z]+)(?:\.([a-z][A-Za-z]+))?/.exec(name)!;
      const declared = new RegExp(`export (?:abstract )?(?:class|interface|type) ${type}\\b`);
      const owner = sources.find((s) => declared.test(s));
      return !owner || (method !== undefined && !new RegExp(`\\b${method}\\(`).test(owner));
    });
    expect(missing).toEqual([]);
  });
});
