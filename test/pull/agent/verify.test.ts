/**
 * `bosun agent --verify-url` against the zooid emulator reading the agent's directory: a served
 * relay is live, a relay whose file fails to load is not_served and logged once past the grace,
 * and /healthz shows both.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Agent, AgentConfigError, verifyUrl } from '../../../src/pull/agent/agent.js';
import { defaultWorkDir, relayFile, relayToml } from '../../../src/pull/agent/agent-files.js';
import { startZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { useCleanups } from '../../support/cleanups.js';
import { FakeClock } from '../../support/clock.js';
import { captureLogger } from '../../support/env.js';
import { rep, ScriptedServer, waitFor } from '../harness.js';

const cleanups = useCleanups();

describe('bosun agent --verify-url', () => {
  it('served relay → live; failLoad relay → not_served, one warn; /healthz shows both', async () => {
    const d = join(cleanups.tempDir('bosun-agent-verify-'), 'relays');
    mkdirSync(d);
    const emu = await startZooidEmulator({ whitelist: [], configDir: d, failLoad: ['B'] });
    cleanups.defer(() => emu.close());
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    const { logger, lines } = captureLogger();
    const graceMs = 1000;
    // The grace runs on a fake clock, so a slow check on a busy machine cannot pass it by accident.
    const clock = new FakeClock();
    const agent = new Agent({
      server: server.url.replace(/\/v1\/stream$/, ''),
      token: 't',
      dir: d,
      logger,
      health: { host: '127.0.0.1', port: 0 },
      persistDelayMs: 5,
      clock,
      verify: { baseUrl: emu.url, graceMs, intervalMs: 3_600_000, timeoutMs: 2000 },
    });
    cleanups.defer(() => agent.close());
    const started = agent.start();
    (await server.next()).open().put([rep('A', 1), rep('B', 1)]);
    await started;
    await agent.verifyNow();
    // Checked before zooid loaded the files: not served yet, but within the grace, so no log.
    expect(agent.health().live?.A?.status).toBe('not_served');
    emu.reload();
    await waitFor(() => emu.served('A') !== null, 'A served');
    await clock.advance(graceMs);
    await agent.verifyNow();
    await agent.verifyNow();

    const res = await fetch(agent.healthUrl!);
    const body = (await res.json()) as Record<string, any>;
    expect(body.live.A).toEqual({ status: 'live', checked_at: expect.any(String) });
    expect(body.live.B).toMatchObject({ status: 'not_served', error: expect.stringMatching(/404/) });
    const warns = lines
      .map((l) => JSON.parse(l) as Record<string, any>)
      .filter((l) => l.msg === 'relay is not live after its file was written');
    expect(warns.map((w) => [w.id, w.status])).toEqual([['B', 'not_served']]);
    expect(lines.join('\n')).not.toContain('ab'.repeat(32));
  });

  it('relays held from the last run are checked at start, from their files', async () => {
    const d = join(cleanups.tempDir('bosun-agent-verify-'), 'relays');
    mkdirSync(d);
    writeFileSync(relayFile(d, 'A'), relayToml(rep('A', 3)), { mode: 0o600 });
    mkdirSync(defaultWorkDir(d), { recursive: true });
    writeFileSync(
      join(defaultWorkDir(d), 'state.json'),
      JSON.stringify({ format: 1, epoch: 'e1', relays: { A: 3 }, managed: ['A'], expiring: [] }),
    );
    const emu = await startZooidEmulator({ whitelist: [], configDir: d });
    cleanups.defer(() => emu.close());
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    const { logger } = captureLogger();
    const agent = new Agent({
      server: server.url.replace(/\/v1\/stream$/, ''),
      token: 't',
      dir: d,
      logger,
      persistDelayMs: 5,
      clock: new FakeClock(),
      verify: { baseUrl: emu.url, intervalMs: 3_600_000, timeoutMs: 2000 },
    });
    cleanups.defer(() => agent.close());
    const started = agent.start();
    const conn = await server.next();
    expect(conn.headers['bosun-held-versions']).toBe('A=3');
    conn.open().put({}, { delta: true, unchanged: ['A'] });
    await started;
    await agent.verifyNow();
    expect(agent.health().live?.A?.status).toBe('live');
  });

  it('refuses a --verify-url that is not http(s) or carries credentials', () => {
    expect(verifyUrl('http://127.0.0.1:3334')).toBe('http://127.0.0.1:3334/');
    expect(() => verifyUrl('ftp://x')).toThrow(AgentConfigError);
    expect(() => verifyUrl('http://u:p@127.0.0.1:3334')).toThrow(/credentials/);
    expect(() => verifyUrl('nope')).toThrow(/not a URL/);
  });
});
