/**
 * `bosun agent` as a process: its health listener is off unless asked for (a fixed default port
 * would clash with anything else on the host, a second agent too), and a clash names --health.
 */

import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCleanups } from '../support/cleanups.js';
import { type Spawned, spawnBosun } from '../support/spawn.js';
import { rep, ScriptedServer } from './harness.js';

const cleanups = useCleanups();
const dir = () => cleanups.tempDir('bosun-agent-cli-');
function agent(args: string[]): Spawned {
  const p = spawnBosun(['agent', ...args], { BOSUN_AGENT_TOKEN: 't' });
  cleanups.defer(async () => {
    p.child.kill('SIGKILL');
    await p.exited;
  });
  return p;
}

describe('bosun agent health listener', () => {
  it('two agents with default flags run side by side on one host: no health listener unless asked', async () => {
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    const base = server.url.replace(/\/v1\/stream$/, '');
    const root = dir();
    const procs = [
      agent(['--server', base, '--dir', join(root, 'a')]),
      agent(['--server', base, '--dir', join(root, 'b')]),
    ];
    for (const p of procs) {
      await p.waitFor(/"msg":"agent starting"/);
      (await server.next()).open().put([rep('A', 1)]);
    }
    for (const p of procs) {
      await p.waitFor(/"msg":"agent in sync"/);
      expect(p.output()).not.toContain('agent health listening');
    }
  });

  it('--health on a port in use: one line naming --health and the address, exit 1', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanups.defer(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const port = (holder.address() as AddressInfo).port;
    const p = agent([
      '--server',
      'http://127.0.0.1:9',
      '--dir',
      join(dir(), 'relays'),
      '--health',
      `127.0.0.1:${port}`,
      '--log-level',
      'silent',
    ]);
    expect((await p.exited).code).toBe(1);
    expect(p.output()).toBe(
      `bosun: --health 127.0.0.1:${port}: the address is already in use (EADDRINUSE); choose another host:port, or leave --health out\n`,
    );
  });
});
