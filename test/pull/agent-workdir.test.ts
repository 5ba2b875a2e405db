/**
 * zooid loads every file in its config directory, so the agent keeps its temp files and its state
 * outside it: in a work directory next to it (`<parent>/.<name>.bosun`, or --work-dir), on the same
 * file system so a rename into place stays atomic. Directories the agent creates are 0700.
 */
import {
  existsSync,
  type FSWatcher,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Agent, AgentConfigError } from '../../src/pull/agent/agent.js';
import { defaultWorkDir, readState, relayFile, relayToml } from '../../src/pull/agent/agent-files.js';
import { useCleanups } from '../support/cleanups.js';
import { captureLogger } from '../support/env.js';
import { spawnBosun } from '../support/spawn.js';
import { rep, ScriptedServer, waitFor } from './harness.js';

const cleanups = useCleanups();
const dir = () => cleanups.tempDir('bosun-agent-work-');
async function scripted() {
  const server = await ScriptedServer.start();
  cleanups.defer(() => server.close());
  return { server, base: server.url.replace(/\/v1\/stream$/, '') };
}
function startAgent(
  base: string,
  configDir: string,
  extra: Partial<ConstructorParameters<typeof Agent>[0]> = {},
) {
  const { logger, lines } = captureLogger();
  const agent = new Agent({ server: base, token: 't', dir: configDir, logger, persistDelayMs: 5, ...extra });
  cleanups.defer(() => agent.close());
  return { agent, lines, started: agent.start() };
}
const mode = (p: string) => statSync(p).mode & 0o777;
const msgs = (lines: string[], msg: string) =>
  lines.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.msg === msg);

describe('agent work directory', () => {
  it("zooid's directory only ever sees <id>.toml names: temp files and the state live in <parent>/.<name>.bosun", async () => {
    const { server, base } = await scripted();
    const root = dir();
    const d = join(root, 'relays');
    mkdirSync(d);
    const seen = new Set<string>();
    const watcher: FSWatcher = watch(d, (_event, name) => {
      if (name) seen.add(String(name));
    });
    cleanups.defer(() => watcher.close());
    const { agent, started } = startAgent(base, d);
    const reps = Array.from({ length: 20 }, (_, i) => rep(`r${i}`, 1));
    (await server.next()).open().put(reps);
    await started;
    await agent.close();
    await new Promise((r) => setTimeout(r, 50)); // the last inotify events
    expect([...seen].filter((n) => !/^r\d+\.toml$/.test(n))).toEqual([]);
    expect(readdirSync(d).sort()).toEqual(reps.map((r) => `${r.id}.toml`).sort());

    const work = join(root, '.relays.bosun');
    expect(defaultWorkDir(d)).toBe(work);
    expect(readdirSync(work)).toEqual(['state.json']);
    expect(mode(work)).toBe(0o700);
    expect(mode(join(work, 'state.json'))).toBe(0o600);
    expect(Object.keys((await readState(join(work, 'state.json')))!.relays)).toHaveLength(20);
  });

  it('moves the state file of an older agent out of the directory and removes its stale temp files', async () => {
    const { server, base } = await scripted();
    const root = dir();
    const d = join(root, 'relays');
    mkdirSync(d);
    writeFileSync(relayFile(d, 'A'), relayToml(rep('A', 3)), { mode: 0o600 });
    // A full-size copy of a relay that a kill -9 left behind, and the state where older agents kept it.
    writeFileSync(join(d, '.bosun-tmp-A.toml-0a1b2c3d'), relayToml(rep('A', 4)), { mode: 0o600 });
    writeFileSync(
      join(d, '.bosun-agent.json'),
      JSON.stringify({ format: 1, epoch: 'e1', relays: { A: 3 }, managed: ['A'], expiring: [] }),
    );
    const { lines, started } = startAgent(base, d);
    const conn = await server.next();
    expect(conn.headers['bosun-held-versions']).toBe('A=3'); // the moved state resumes
    conn.open().put([rep('B', 1)], { epoch: 'e1', delta: true, unchanged: ['A'] });
    await started;
    expect(readdirSync(d).sort()).toEqual(['A.toml', 'B.toml']);
    expect(msgs(lines, 'moved the state file out of the config directory')).toHaveLength(1);
    expect(msgs(lines, 'removed temp files left by an interrupted write')[0]).toMatchObject({ count: 1 });
    expect((await readState(join(root, '.relays.bosun', 'state.json')))?.managed).toEqual(['A']);
  });

  it('--work-dir: used for temp files and state; refused inside the config directory', async () => {
    const { server, base } = await scripted();
    const root = dir();
    const d = join(root, 'relays');
    const work = join(root, 'elsewhere', 'agent');
    const { started } = startAgent(base, d, { workDir: work });
    (await server.next()).open().put([rep('A', 1)]);
    await started;
    expect(readdirSync(d)).toEqual(['A.toml']);
    await waitFor(() => readdirSync(work).includes('state.json'), 'state saved in the work dir');
    const agentWith = (paths: { workDir?: string; stateFile?: string }) => () =>
      new Agent({ server: base, token: 't', dir: d, logger: captureLogger().logger, ...paths });
    expect(agentWith({ workDir: join(d, 'w') })).toThrow(AgentConfigError);
    expect(agentWith({ stateFile: join(d, 's.json') })).toThrow(/inside --dir/);
  });

  const shmDev = existsSync('/dev/shm') ? statSync('/dev/shm').dev : undefined;
  it.skipIf(shmDev === undefined || shmDev === statSync(tmpdir()).dev)(
    'a --work-dir on another file system than --dir is refused at start (rename would not be atomic)',
    async () => {
      const { base } = await scripted();
      const shm = mkdtempSync('/dev/shm/bosun-agent-work-');
      cleanups.defer(() => rmSync(shm, { recursive: true, force: true }));
      const { started } = startAgent(base, join(dir(), 'relays'), { workDir: shm });
      await expect(started).rejects.toThrow(/--work-dir .* is on another file system than --dir/);
    },
  );

  it('bosun agent under umask 000: every directory it creates is 0700, every file 0600', async () => {
    const { server, base } = await scripted();
    const root = dir();
    const d = join(root, 'new', 'relays');
    const agent = spawnBosun(
      ['--server', base, 'agent', '--dir', d, '--health', 'off'],
      { BOSUN_AGENT_TOKEN: 't' },
      root,
      {
        umask: 0o000,
      },
    );
    cleanups.defer(async () => {
      agent.child.kill('SIGKILL');
      await agent.exited;
    });
    await agent.waitFor(/"msg":"agent starting"/);
    (await server.next()).open().put([rep('A', 1)]);
    await agent.waitFor(/"msg":"agent in sync"/);
    expect({ parent: mode(join(root, 'new')), dir: mode(d), file: mode(join(d, 'A.toml')) }).toEqual({
      parent: 0o700,
      dir: 0o700,
      file: 0o600,
    });
    const work = join(root, 'new', '.relays.bosun');
    await waitFor(() => readdirSync(work).includes('state.json'), 'state saved');
    expect({ work: mode(work), state: mode(join(work, 'state.json')) }).toEqual({
      work: 0o700,
      state: 0o600,
    });
    expect(readFileSync(join(d, 'A.toml'), 'utf8')).toBe(relayToml(rep('A', 1)));
  });
});
