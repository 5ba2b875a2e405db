import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Guards the dependency rules of ARCHITECTURE.md: domain ← store ← command/query ← services ← http/cli,
// composed in peer.ts. Every import form counts: static, `import type`, `export … from`, dynamic
// `import()` and `import('…')` type references.

const root = resolve(import.meta.dirname, '..');
const srcDir = join(root, 'src');

/** Project files, as paths relative to the repository root with forward slashes (`src/peer.ts`). */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(toRepoPath(path));
  }
  return out.sort();
}

function toRepoPath(path: string): string {
  return relative(root, path).split(/[\\/]/).join('/');
}

/** Every module specifier written in a file, whatever the import form. */
function specifiersOf(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteralLike(node.moduleSpecifier)
    ) {
      found.push(node.moduleSpecifier.text);
    } else if (
      ts.isImportEqualsDeclaration(node) &&
      ts.isExternalModuleReference(node.moduleReference) &&
      ts.isStringLiteralLike(node.moduleReference.expression)
    ) {
      found.push(node.moduleReference.expression.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteralLike(node.argument.literal)
    ) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Resolves a relative specifier to a project file (`./a.js` → `src/x/a.ts`); packages give undefined. */
function resolveSpecifier(from: string, specifier: string, files: Set<string>): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = posix.normalize(posix.join(posix.dirname(from), specifier));
  const candidates = [
    base.replace(/\.js$/, '.ts'),
    base.replace(/\.mjs$/, '.mts'),
    base,
    `${base}.ts`,
    `${base}/index.ts`,
  ];
  const hit = candidates.find((c) => files.has(c));
  if (hit) return hit;
  // A relative import that leaves the project files is still an edge; name it so rules can see it.
  return base;
}

type Edge = { from: string; to: string };

function projectEdges(): { files: string[]; edges: Edge[] } {
  const files = sourceFiles(srcDir);
  const known = new Set(files);
  const edges: Edge[] = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const specifier of specifiersOf(file, text)) {
      const to = resolveSpecifier(file, specifier, known);
      if (to !== undefined) edges.push({ from: file, to });
    }
  }
  return { files, edges };
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function findCycles(files: string[], edges: Edge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const strongConnect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!next.has(w)) continue;
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.get(v)!.includes(v)) cycles.push(component);
    }
  };
  for (const f of files) if (!index.has(f)) strongConnect(f);
  return cycles.map((c) => describeCycle(c, next));
}

/** One concrete loop through a component, so the failure names the imports to cut. */
function describeCycle(component: string[], next: Map<string, string[]>): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0]!;
  // Breadth-first from start back to start inside the component gives a shortest loop.
  const parent = new Map<string, string>();
  const queue = [start];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of next.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [v];
        let p = v;
        while (p !== start) {
          p = parent.get(p)!;
          path.unshift(p);
        }
        return [...path, start];
      }
      if (!seen.has(w)) {
        seen.add(w);
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

const isDomain = (f: string): boolean => f.startsWith('src/domain/');
const isAdapter = (f: string): boolean =>
  f.startsWith('src/store/sqlite/') || f.startsWith('src/store/postgres/');
const mayImportAdapters = (f: string): boolean => f.startsWith('src/store/') || f === 'src/peer.ts';

const format = (edges: Edge[]): string => edges.map((e) => `${e.from} -> ${e.to}`).join('\n');

describe('architecture', () => {
  const { files, edges } = projectEdges();

  it('reads the source tree', () => {
    // A parser that finds nothing would make every rule below pass.
    expect(files).toContain('src/peer.ts');
    expect(edges.length).toBeGreaterThan(files.length);
  });

  it('domain imports nothing outside src/domain', () => {
    const offending = edges.filter((e) => isDomain(e.from) && !isDomain(e.to));
    expect(offending, `domain imports outside itself:\n${format(offending)}`).toEqual([]);
  });

  it('only src/store and the composition root import a store adapter', () => {
    const offending = edges.filter((e) => isAdapter(e.to) && !mayImportAdapters(e.from));
    expect(offending, `adapter imported outside src/store:\n${format(offending)}`).toEqual([]);
  });

  it('src imports nothing from test/ or bench/ (fakes and helpers stay out of what ships)', () => {
    const offending = edges.filter((e) => /^(test|bench)\//.test(e.to));
    expect(offending, `src imports test or bench code:\n${format(offending)}`).toEqual([]);
  });

  it('has no import cycles, type-only imports included', () => {
    const cycles = findCycles(files, edges);
    expect(cycles, `import cycles:\n${cycles.map((c) => c.join(' -> ')).join('\n')}`).toEqual([]);
  });
});

describe('architecture checker', () => {
  it('sees every import form', () => {
    const text = [
      "import a from './a.js';",
      "import type { B } from './b.js';",
      "import { type C } from './c.js';",
      "export { d } from './d.js';",
      "export type { E } from './e.js';",
      "export * from './f.js';",
      "const g = await import('./g.js');",
      "type H = import('./h.js').H;",
      "import './i.js';",
    ].join('\n');
    expect(specifiersOf('x.ts', text)).toEqual([
      './a.js',
      './b.js',
      './c.js',
      './d.js',
      './e.js',
      './f.js',
      './g.js',
      './h.js',
      './i.js',
    ]);
  });

  it('finds cycles, type-only ones included, and names them', () => {
    const files = ['a', 'b', 'c', 'd'];
    const edges = [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
      { from: 'c', to: 'a' },
      { from: 'c', to: 'd' },
    ];
    expect(findCycles(files, edges)).toEqual([['a', 'b', 'c', 'a']]);
    expect(findCycles(files, edges.slice(1))).toEqual([]);
    expect(findCycles(['a'], [{ from: 'a', to: 'a' }])).toEqual([['a', 'a']]);
  });
});
