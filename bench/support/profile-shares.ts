/**
 * Inclusive and self shares of a V8 `.cpuprofile` (node --cpu-prof), by function, as a share of
 * the busy (non-idle) samples of a time window.
 *
 *   node --import tsx bench/support/profile-shares.ts <file.cpuprofile> [--during updateRelay]
 *        [--top 40] [--match pg,query]
 *
 * `--during <function>`: only the samples between the first and the last one whose stack holds a
 * function of that name (e.g. `updateRelay`: bench/load's load phase, not its seed or shutdown).
 * `--match a,b`: also prints the inclusive share of every stack holding any function or file whose
 * name contains one of these (e.g. what all of pg's client costs).
 * A function counts once per sample however often it recurs in the stack, so inclusive shares of
 * nested functions do not add up to 100 %.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { arg } from './child.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const IDLE = new Set(['(idle)']);

/** A package's file as `pkg/lib/x.js`, bosun's as `dist/src/…` minus the prefix, node's as is. */
function shortPath(path: string): string {
  const at = path.lastIndexOf('node_modules/');
  if (at >= 0) return path.slice(at + 'node_modules/'.length);
  const dist = path.lastIndexOf('/dist/');
  if (dist >= 0) return path.slice(dist + '/dist/'.length);
  return basename(path);
}

function keyOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url ? shortPath(url.replace(/^file:\/\//, '')) : '';
  return file ? `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}` : functionName;
}

function main(): void {
  const file = process.argv[2];
  if (!file || file.startsWith('--')) {
    console.error('usage: profile-shares.ts <file.cpuprofile> [--during fn] [--top n] [--match a,b]');
    process.exit(2);
  }
  const during = arg('--during');
  const top = Number(arg('--top') ?? 40);
  const match = (arg('--match') ?? '').split(',').filter(Boolean);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = (id: number): ProfileNode[] => {
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!);
    return stack;
  };

  // Sample i lasts until sample i+1 (timeDeltas[i+1]); the last one is given the median.
  let t = 0;
  const times = profile.timeDeltas.map((d) => (t += d));
  const spans = times.map((at, i) => (i + 1 < times.length ? times[i + 1]! - at : 0));

  let from = 0;
  let to = profile.samples.length - 1;
  if (during) {
    const hits = profile.samples
      .map((id, i) => (stackOf(id).some((n) => n.callFrame.functionName === during) ? i : -1))
      .filter((i) => i >= 0);
    if (hits.length === 0) throw new Error(`no sample holds ${during}`);
    from = hits[0]!;
    to = hits[hits.length - 1]!;
  }

  const inclusive = new Map<string, number>();
  const self = new Map<string, number>();
  let busy = 0;
  let matched = 0;
  let idle = 0;
  for (let i = from; i <= to; i++) {
    const stack = stackOf(profile.samples[i]!);
    const span = spans[i]!;
    if (IDLE.has(stack[0]!.callFrame.functionName)) {
      idle += span;
      continue;
    }
    busy += span;
    self.set(keyOf(stack[0]!), (self.get(keyOf(stack[0]!)) ?? 0) + span);
    const keys = new Set(stack.map(keyOf));
    keys.delete('(root)');
    for (const k of keys) inclusive.set(k, (inclusive.get(k) ?? 0) + span);
    if (match.length > 0 && [...keys].some((k) => match.some((m) => k.includes(m)))) matched += span;
  }

  const wall = (times[to]! - times[from]!) / 1e6;
  console.log(
    `${basename(file)}: window ${wall.toFixed(2)} s${during ? ` (during ${during})` : ''}, busy ${(busy / 1e6).toFixed(2)} s (${((100 * busy) / (busy + idle)).toFixed(1)} % of samples' time), idle ${(idle / 1e6).toFixed(2)} s`,
  );
  if (match.length > 0) console.log(`  stacks holding ${match.join(' | ')}: ${pct(matched, busy)} of busy`);
  const table = (title: string, m: Map<string, number>) => {
    console.log(`  ${title} (share of busy):`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`    ${pct(v, busy).padStart(6)}  ${k}`);
    }
  };
  table('inclusive', inclusive);
  table('self', self);
}

const pct = (v: number, of: number): string => `${((100 * v) / of).toFixed(1)} %`;

main();
