/**
 * `npm run bench:report`: runs every benchmark (at the issues' acceptance sizes, each as its own child process), and
 * writes bench/RESULTS.md with the machine, each figure with its same-run baseline and ratio (the
 * lines the benchmarks print), and each benchmark's full output. `--only ingest,sync` runs a subset;
 * `--out <file>` writes elsewhere. A benchmark that fails or times out is reported as such.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, freemem, platform, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};

interface Bench {
  name: string;
  script: string;
  args: string[];
  what: string;
  timeoutMs: number;
}

const BENCHES: Bench[] = [
  {
    name: 'ingest',
    script: 'bench/ingest.ts',
    args: ['--n', '20000'],
    what: 'committed commands/s vs raw better-sqlite3 inserts',
    timeoutMs: 180_000,
  },
  {
    name: 'sync',
    script: 'bench/sync.ts',
    args: ['--n', '3000'],
    what: 'relay syncs/s and commit→sync latency vs raw signed HTTP requests',
    timeoutMs: 180_000,
  },
  {
    name: 'fleet',
    script: 'bench/fleet.ts',
    args: ['--n', '10000', '--rounds', '3'],
    what: 'plan/apply of a 10,000-relay fleet, 1 % changed, vs reading the files',
    timeoutMs: 240_000,
  },
  {
    name: 'stream',
    script: 'bench/stream.ts',
    args: ['main', '--counts', '1000,5000', '--commits', '15'],
    what: '1,000 and 5,000 agent streams: memory, commit→patch latency, reconnect storm vs bare node:http SSE',
    timeoutMs: 300_000,
  },
  {
    name: 'dashboard',
    script: 'bench/dashboard.ts',
    args: ['--relays', '5000', '--runs', '3'],
    what: 'first render of a 5,000-relay fleet in Chromium vs the same data as JSON',
    timeoutMs: 240_000,
  },
  {
    name: 'load',
    script: 'bench/load.ts',
    args: ['--relays', '10000', '--agents', '1000', '--duration', '20'],
    what: '10,000 relays × 20 s of PATCHes while 1,000 agents stream: updates/s, latency, RSS vs bare node:http',
    timeoutMs: 300_000,
  },
  {
    name: 'targets',
    script: 'bench/targets.ts',
    args: ['--n', '10000'],
    what: '10,000 relays: catch-up syncs/s over 4 no-op targets vs 1; commit→PATCH p99 with one target timing out vs all up',
    timeoutMs: 900_000,
  },
];

function run(b: Bench): Promise<{ code: number | null; out: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', b.script, ...b.args], {
      cwd: ROOT,
      env: { ...process.env, BOSUN_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const timer = setTimeout(() => {
      out += `\n(timed out after ${b.timeoutMs / 1000} s)\n`;
      child.kill('SIGKILL');
    }, b.timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: performance.now() - started });
    });
  });
}

/** The lines a benchmark prints about figures, baselines, ratios and targets (its own wording). */
function figures(out: string): string[] {
  return out
    .split('\n')
    .filter((l) => /baseline|ratio|×|\bx\b|vs |target|p50|p99|MiB|req\/s|tx\/s|\/s\b|ms\b/i.test(l))
    .filter((l) => !/^\s*at |npm warn|ExperimentalWarning/.test(l))
    .map((l) => l.trimEnd());
}

const only = arg('--only')?.split(',');
const outFile = arg('--out') ?? 'bench/RESULTS.md';
const selected = BENCHES.filter((b) => !only || only.includes(b.name));
const cpu = cpus();
const machine = [
  `- date: ${new Date().toISOString()}`,
  `- node ${process.version}, ${platform()} ${release()}`,
  `- ${cpu.length} CPU${cpu.length === 1 ? '' : 's'} (${cpu[0]?.model.trim() ?? 'unknown'})`,
  `- memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB total, ${(freemem() / 2 ** 30).toFixed(1)} GiB free at start`,
];

/** A markdown table with padded columns (as biome formats it). */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(3, ...rows.map((r) => [...r[c]!].length)));
  const line = (r: string[]) =>
    `| ${r.map((cell, c) => cell + ' '.repeat(widths[c]! - [...cell].length)).join(' | ')} |`;
  return [line(rows[0]!), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)];
}

const sections: string[] = [];
const summary: string[][] = [['bench', 'what', 'status', 'time']];
for (const b of selected) {
  console.log(`\n=== bench:${b.name} ${b.args.join(' ')}`);
  const r = await run(b);
  const skipped = /skipp/i.test(r.out) && r.code === 0 && figures(r.out).length === 0;
  const status = r.code === 0 ? (skipped ? 'skipped' : 'ok') : `failed (exit ${r.code})`;
  summary.push([`\`bench:${b.name}\``, b.what, status, `${(r.ms / 1000).toFixed(1)} s`]);
  const figs = figures(r.out);
  sections.push(
    [
      `## bench:${b.name}`,
      '',
      `\`npm run bench:${b.name} -- ${b.args.join(' ')}\`: ${b.what}. Each figure is printed beside the baseline measured in the same run, with their ratio.`,
      '',
      ...(figs.length > 0 ? ['Figures:', '', '```', ...figs, '```', ''] : []),
      '<details><summary>full output</summary>',
      '',
      '```',
      r.out.trim(),
      '```',
      '',
      '</details>',
      '',
    ].join('\n'),
  );
}

const md = [
  '# bosun benchmark results',
  '',
  'Generated by `npm run bench:report` (bench/report.ts); every benchmark measures its own baseline in',
  'the same run on the same machine, so the ratios compare like with like. Sizes are the issues',
  'acceptance sizes (see each command).',
  '',
  '## Machine',
  '',
  ...machine,
  '',
  '## Summary',
  '',
  ...table(summary),
  '',
  ...sections,
].join('\n');
writeFileSync(new URL(`../${outFile}`, import.meta.url), md);
console.log(`\nwrote ${outFile}`);
