import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The README's shell lines, with `\` continuations joined and comments dropped. */
function shellLines(): string[] {
  const blocks = [...README.matchAll(/^```(?:sh|bash)\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((l) => l.replace(/(^|\s)#(?![^'"]*['"]\s*$).*$/, '').trim())
    .filter(Boolean);
}

/** Words of a shell command, quotes removed; stops at the first `|`, `;` or `&&`. */
function words(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)) {
    const word = m[1] ?? m[2] ?? m[3]!;
    if (m[3] && ['|', ';', '&&', '||', '>'].includes(word)) break;
    out.push(word);
  }
  return out;
}

/** Follows `args` through the CLI's commands; returns a problem, or null when commander would accept them. */
function check(program: Command, args: string[]): string | null {
  let cmd = program;
  const findOption = (flag: string) => {
    for (let c: Command | null = cmd; c; c = c.parent) {
      const option = c.options.find((o) => o.long === flag || o.short === flag);
      if (option) return option;
    }
    return undefined;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.startsWith('-')) {
      const [flag, inline] = arg.split('=', 2);
      const option = findOption(flag!);
      if (!option) return `${cmd.name()} has no option ${flag}`;
      if ((option.required || option.optional) && inline === undefined) i++;
      continue;
    }
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub) cmd = sub;
    else if (cmd.commands.length > 0 && cmd.registeredArguments.length === 0)
      return `${cmd.name()} has no command ${arg}`;
  }
  return null;
}

describe('README', () => {
  it('every relative link resolves to a file in the repository', () => {
    const links = [...README.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
    const relative = links.filter((l) => !/^(https?:|mailto:|#)/.test(l));
    expect(relative.length).toBeGreaterThan(0);
    expect(relative.filter((l) => !existsSync(join(ROOT, l.split('#')[0]!)))).toEqual([]);
    // Mentions of documents outside the repository (as the session's own notes were) are not links either.
    expect(README).not.toMatch(/\.\.\/shared\//);
  });

  it('every bosun command in a shell block is one the CLI has, with options it knows', () => {
    const program = buildProgram();
    const commands = shellLines().flatMap((line) => {
      const at = line.search(/(^|\s)(npx )?bosun /);
      return at < 0 ? [] : [line.slice(at).trim()];
    });
    expect(commands.length).toBeGreaterThan(20);
    const problems = commands.flatMap((c) => {
      const [first, ...rest] = words(c);
      // A bare `bosun` needs a global install; the README runs the checkout's with npx.
      if (first === 'bosun') return [`bare bosun: ${c}`];
      const problem = check(program, rest.slice(1));
      return problem ? [`${problem}: ${c}`] : [];
    });
    expect(problems).toEqual([]);
  });

  it('creates a directory before putting a file in it', () => {
    const lines = shellLines();
    const created = new Set<string>();
    for (const line of lines) {
      const dir = /install -d(?: -m \d+)? (\S+)/.exec(line)?.[1];
      if (dir) created.add(dir);
      const file = /install -m \d+ \/dev\/null (\S+)/.exec(line)?.[1];
      if (file) expect(created, line).toContain(file.slice(0, file.lastIndexOf('/')));
    }
  });
});
