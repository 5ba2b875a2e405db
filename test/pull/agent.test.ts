/**
 * `bosun agent` in-process: against a real bosun (files converge to the fleet; case 37) and against
 * a scripted stream (case 27, hostile input, an unwritable directory, a server that never puts,
 * 10,000 relays in one put).
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { agentToken } from '../../src/cli/agent-command.js';
import { Agent, AgentConfigError, type AgentHealth, streamUrl } from '../../src/pull/agent/agent.js';
import {
  defaultWorkDir,
  MANAGED_MARKER,
  readState,
  relayFile,
  relayToml,
} from '../../src/pull/agent/agent-files.js';
import { StreamClosedError } from '../../src/pull/agent/stream-manager.js';
import { EPOCH_HEADER, HELD_VERSIONS_HEADER } from '../../src/pull/protocol.js';
import { zooidBody } from '../../src/push/zooid/body.js';
import { useCleanups } from '../support/cleanups.js';
import { captureLogger, keypair, relayBody, startServer, type TestServer } from '../support/env.js';
import { rep, ScriptedServer, SECRET, waitFor } from './harness.js';

const { pubkey } = keypair();
const cleanups = useCleanups();

/** A directory inside a temp one, so that the agent's work directory next to it is removed too. */
function dir(): string {
  const d = join(cleanups.tempDir('bosun-agent-'), 'relays');
  mkdirSync(d);
  return d;
}

function startAgent(
  server: string,
  configDir: string,
  token: string,
  extra: Partial<ConstructorParameters<typeof Agent>[0]> = {},
) {
  const { logger, lines } = captureLogger();
  const agent = new Agent({
    server,
    token,
    dir: configDir,
    logger,
    health: { host: '127.0.0.1', port: 0 },
    persistDelayMs: 5,
    ...extra,
  });
  cleanups.defer(() => agent.close());
  return { agent, lines, started: agent.start() };
}

const stateFile = (d: string) => join(defaultWorkDir(d), 'state.json');
const tomls = (d: string) =>
  readdirSync(d)
    .filter((f) => f.endsWith('.toml'))
    .sort();
const readToml = (d: string, id: string) =>
  parse(readFileSync(join(d, `${id}.toml`), 'utf8')) as Record<string, any>;
const msgs = (lines: string[], msg: string) =>
  lines.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.msg === msg);

describe('bosun agent against a real bosun', () => {
  async function server(): Promise<TestServer> {
    const s = await startServer();
    cleanups.defer(() => s.close());
    return s;
  }
  async function token(s: TestServer, fleet: string): Promise<string> {
    return (await s.api('POST', '/v1/tokens', { role: 'agent', fleet })).body.token;
  }
  /** What the file must hold: exactly push sync's zooid body with the secret. */
  async function expected(s: TestServer, id: string) {
    const relay = (await s.peer.store.getRelay(id))!;
    return JSON.parse(JSON.stringify(zooidBody(relay, { withSecret: true, blossomS3: null })));
  }

  it('keeps the directory equal to the fleet through create/update/deactivate/rotate/move/delete (case 37: 0600, no secrets in logs)', async () => {
    const s = await server();
    for (const [id, fleet] of [
      ['a', 'edge'],
      ['b', 'edge'],
      ['c', 'core'],
    ]) {
      await s.api('POST', '/v1/relays', relayBody(id!, pubkey, { fleet }));
    }
    const d = dir();
    writeFileSync(join(d, 'zz.toml'), 'host = "not ours"\n'); // the operator's file: never touched
    const tok = await token(s, 'edge');
    const { agent, lines, started } = startAgent(s.url, d, tok);
    await started;
    const converged = async (ids: string[]) =>
      waitFor(
        () => JSON.stringify(tomls(d)) === JSON.stringify([...ids, 'zz'].map((i) => `${i}.toml`).sort()),
        `files ${ids}`,
      );
    await converged(['a', 'b']);
    for (const id of ['a', 'b']) {
      expect(readToml(d, id)).toEqual(await expected(s, id));
      expect(readFileSync(join(d, `${id}.toml`), 'utf8').split('\n')[0]).toBe(MANAGED_MARKER);
    }
    const secrets = new Set<string>([tok]);
    const remember = async () => {
      for (const id of ['a', 'b', 'c', 'n']) {
        const r = await s.peer.store.getRelay(id);
        if (r) secrets.add(r.secret);
      }
    };
    await remember();

    await s.api('PATCH', '/v1/relays/a', { info: { name: 'renamed' }, policy: { public_join: true } });
    await waitFor(() => readToml(d, 'a').info.name === 'renamed', 'update');
    expect(readToml(d, 'a')).toEqual(await expected(s, 'a'));
    await s.api('POST', '/v1/relays/b/deactivate');
    await waitFor(() => readToml(d, 'b').inactive === true, 'deactivate');
    await s.api('POST', '/v1/relays', relayBody('n', pubkey, { fleet: 'edge' }));
    await converged(['a', 'b', 'n']);

    // Rotation: new secret, the old one listed until the grace ends, then dropped from disk.
    const oldB = readToml(d, 'b').secret as string;
    expect((await s.api('POST', '/v1/relays/b/rotate-secret', { grace_seconds: 1 })).status).toBe(200);
    await remember();
    await waitFor(() => readToml(d, 'b').secret !== oldB, 'rotated secret');
    expect(readToml(d, 'b').expiring).toEqual([
      { name: 'secret', value: oldB, expires_at: expect.any(Number) },
    ]);
    await waitFor(() => readToml(d, 'b').expiring === undefined, 'expired credential dropped', 4000);
    await waitFor(() => msgs(lines, 'credential expired').length === 1, 'the keyExpired log line');

    // Move out of the fleet, into it, and delete.
    await s.api('PATCH', '/v1/relays/a', { fleet: 'core' });
    await s.api('PATCH', '/v1/relays/c', { fleet: 'edge' });
    await s.api('DELETE', '/v1/relays/n');
    await converged(['b', 'c']);
    expect(readToml(d, 'c')).toEqual(await expected(s, 'c'));
    expect(readFileSync(join(d, 'zz.toml'), 'utf8')).toBe('host = "not ours"\n');

    for (const f of tomls(d).filter((f) => f !== 'zz.toml')) {
      expect(statSync(join(d, f)).mode & 0o777).toBe(0o600);
    }
    expect(statSync(stateFile(d)).mode & 0o777).toBe(0o600);
    // A delete unlinks the file before the agent's state forgets the relay: wait for both.
    await waitFor(() => agent.health().relays === 2, 'health counting 2 relays');
    const health = await (await fetch(agent.healthUrl!)).json();
    expect(health).toMatchObject({ ok: true, status: 'valid', relays: 2, file_error: null });

    // One line per change, ids and versions only; no secret anywhere in either log.
    expect(msgs(lines, 'relay written').length).toBeGreaterThanOrEqual(7);
    expect(
      msgs(lines, 'relay removed')
        .map((l) => l.id)
        .sort(),
    ).toEqual(['a', 'n']);
    const everything = [...lines, ...s.logs].join('\n');
    for (const secret of secrets) expect(everything).not.toContain(secret);
    expect(everything).not.toContain(oldB);
    await agent.close();
    const state = JSON.stringify(await readState(stateFile(d)));
    for (const secret of secrets) expect(state).not.toContain(secret);
  });

  it('resumes after a restart: a delta put, relays removed while down are deleted, unchanged ones not rewritten', async () => {
    const s = await server();
    for (const id of ['x', 'y', 'z']) await s.api('POST', '/v1/relays', relayBody(id, pubkey));
    const tok = await token(s, 'default');
    const d = dir();
    const first = startAgent(s.url, d, tok);
    await first.started;
    await first.agent.close();
    const saved = await readState(stateFile(d));
    expect(saved?.relays).toEqual({ x: 1, y: 1, z: 1 });

    await s.api('DELETE', '/v1/relays/x');
    await s.api('PATCH', '/v1/relays/y', { info: { name: 'Y2' } });
    const heard: string[] = [];
    const second = startAgent(s.url, d, tok, {
      fetch: (input, init) => {
        const h = new Headers(init?.headers);
        heard.push(`${h.get(EPOCH_HEADER) ?? '-'} ${h.get(HELD_VERSIONS_HEADER) ?? '-'}`);
        return fetch(input, init);
      },
    });
    await second.started;
    expect(heard[0]).toMatch(/^e-[0-9a-z]+ x=1,y=1,z=1$/);
    expect(tomls(d)).toEqual(['y.toml', 'z.toml']);
    expect(readToml(d, 'y').info.name).toBe('Y2');
    expect(msgs(second.lines, 'relay written').map((l) => l.id)).toEqual(['y']);
    expect(msgs(second.lines, 'relay removed').map((l) => l.id)).toEqual(['x']);
  });
});

describe('bosun agent against a scripted stream', () => {
  async function scripted() {
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    return { server, base: server.url.replace(/\/v1\/stream$/, '') };
  }

  function seed(d: string, state: { epoch: string; relays: Record<string, number> }, files: string[]) {
    for (const id of files)
      writeFileSync(relayFile(d, id), relayToml(rep(id, state.relays[id] ?? 1)), { mode: 0o600 });
    mkdirSync(defaultWorkDir(d), { recursive: true });
    writeFileSync(
      stateFile(d),
      JSON.stringify({ format: 1, ...state, managed: Object.keys(state.relays), expiring: [] }),
    );
  }

  it('case 27: restarted holding {A10} with its file, put {B1} → delete A, add B, no add A', async () => {
    const { server, base } = await scripted();
    const d = dir();
    seed(d, { epoch: 'e1', relays: { A: 10 } }, ['A']);
    const { lines, started } = startAgent(base, d, 't');
    const conn = await server.next();
    expect(conn.headers['bosun-epoch']).toBe('e1');
    expect(conn.headers['bosun-held-versions']).toBe('A=10');
    expect(conn.headers.authorization).toBe('Bearer t');
    conn.open().put([rep('B', 1)], { epoch: 'e1' });
    await started;
    expect(tomls(d)).toEqual(['B.toml']);
    expect(msgs(lines, 'relay written').map((l) => `${l.id}@${l.version}`)).toEqual(['B@1']);
    expect(msgs(lines, 'relay removed').map((l) => l.id)).toEqual(['A']);
  });

  it('case 27: a saved relay whose file is missing is added again', async () => {
    const { server, base } = await scripted();
    const d = dir();
    seed(d, { epoch: 'e1', relays: { A: 10, C: 3 } }, ['C']);
    const { lines, started } = startAgent(base, d, 't');
    const conn = await server.next();
    expect(conn.headers['bosun-held-versions']).toBe('C=3');
    conn.open().put([rep('A', 10), rep('B', 1)], { epoch: 'e1', delta: true, unchanged: ['C'] });
    await started;
    expect(tomls(d)).toEqual(['A.toml', 'B.toml', 'C.toml']);
    expect(msgs(lines, 'relay written').map((l) => l.id)).toEqual(['A', 'B']);
  });

  it('refuses ids that try path traversal and never writes outside the directory', async () => {
    const { server, base } = await scripted();
    const root = dir();
    const d = join(root, 'cfg');
    mkdirSync(d);
    const { lines, started } = startAgent(base, d, 't');
    const hostile = ['../evil', '..', '.hidden', 'a/b', 'a\\b', '', 'x'.repeat(200)];
    const relays: Record<string, unknown> = { ok: rep('ok', 1) };
    for (const id of hostile) relays[id] = { ...rep('ok', 1), id };
    (await server.next()).open().put(relays);
    await started;
    expect(tomls(d)).toEqual(['ok.toml']);
    expect(readdirSync(root).sort()).toEqual(['.cfg.bosun', 'cfg']);
    expect(msgs(lines, 'relay refused')).toHaveLength(hostile.length);
    for (const id of hostile) expect(() => relayFile(d, id)).toThrow(/safe file name/);
  });

  it('an unwritable directory: a clear error, no partial file, retried until it works', async () => {
    const { server, base } = await scripted();
    const root = dir();
    writeFileSync(join(root, 'blocker'), 'a file where a directory should be');
    const d = join(root, 'blocker', 'cfg');
    const { agent, lines, started } = startAgent(base, d, 't');
    (await server.next()).open().put([rep('A', 1)]);
    await waitFor(() => msgs(lines, 'cannot write relay file').length > 0, 'a write error');
    expect(msgs(lines, 'cannot write relay file')[0]!.error).toMatch(/cannot write .*A\.toml: ENOTDIR/);
    const health = await fetch(agent.healthUrl!);
    expect(health.status).toBe(503);
    expect(((await health.json()) as AgentHealth).file_error).toMatch(/ENOTDIR/);

    rmSync(join(root, 'blocker'));
    mkdirSync(d, { recursive: true });
    (await server.next()).open().put([rep('A', 1)]);
    await started;
    expect(tomls(d)).toEqual(['A.toml']);
    expect(readdirSync(d)).toEqual(['A.toml']);
    expect(readdirSync(defaultWorkDir(d)).filter((f) => f.startsWith('.bosun-tmp-'))).toEqual([]);
    expect(((await (await fetch(agent.healthUrl!)).json()) as AgentHealth).file_error).toBeNull();
  });

  it('a server that never sends a put: files stay, status initializing, close() ends start()', async () => {
    const { server, base } = await scripted();
    const d = dir();
    seed(d, { epoch: 'e1', relays: { A: 4 } }, ['A']);
    const before = readFileSync(join(d, 'A.toml'), 'utf8');
    const { agent, started } = startAgent(base, d, 't');
    const conn = await server.next();
    conn.open().write(': only comments\n\n');
    await new Promise((r) => setTimeout(r, 100));
    const health = await fetch(agent.healthUrl!);
    expect(health.status).toBe(503);
    expect(((await health.json()) as AgentHealth).status).toBe('initializing');
    await agent.close();
    await expect(started).rejects.toBeInstanceOf(StreamClosedError);
    expect(readFileSync(join(d, 'A.toml'), 'utf8')).toBe(before);
  });

  it('writes 10,000 relays from one put', async () => {
    const { server, base } = await scripted();
    // On tmpfs when there is one: this is about the agent, not about 10,000 fsyncs of a shared disk.
    const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/bosun-agent-') : undefined;
    if (shm) {
      cleanups.defer(() => {
        rmSync(shm, { recursive: true, force: true });
        rmSync(defaultWorkDir(shm), { recursive: true, force: true });
      });
    }
    const d = shm ?? dir();
    const { started } = startAgent(base, d, 't');
    const reps = Array.from({ length: 10_000 }, (_, i) => rep(`r${i}`, 1));
    (await server.next()).open().put(reps);
    await started;
    expect(tomls(d)).toHaveLength(10_000);
    await waitFor(
      () => Object.keys(JSON.parse(readFileSync(stateFile(d), 'utf8')).relays).length === 10_000,
      'state saved',
      10_000,
    );
  }, 60_000);
});

describe('agent configuration', () => {
  it('refuses cleartext to anything but loopback unless allowed', () => {
    expect(streamUrl('https://bosun.example.com/')).toBe('https://bosun.example.com/v1/stream');
    expect(streamUrl('https://bosun.example.com/base')).toBe('https://bosun.example.com/base/v1/stream');
    expect(streamUrl('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080/v1/stream');
    expect(streamUrl('http://localhost:8080')).toBe('http://localhost:8080/v1/stream');
    expect(streamUrl('http://[::1]:8080')).toBe('http://[::1]:8080/v1/stream');
    expect(() => streamUrl('http://bosun.example.com')).toThrow(AgentConfigError);
    expect(streamUrl('http://bosun.example.com', true)).toBe('http://bosun.example.com/v1/stream');
    expect(() => streamUrl('ftp://x')).toThrow(AgentConfigError);
    expect(() => streamUrl('https://u:p@x')).toThrow(/credentials/);
  });

  it('reads the token from the environment or a 0600 file, never from argv', () => {
    const d = dir();
    const file = join(d, 'token');
    writeFileSync(file, 'bosun_secret\n', { mode: 0o644 });
    expect(() => agentToken({ tokenFile: file }, {})).toThrow(/chmod 600/);
    writeFileSync(file, 'bosun_secret\n', { mode: 0o600 });
    rmSync(file);
    writeFileSync(file, 'bosun_secret\n', { mode: 0o600 });
    expect(agentToken({ tokenFile: file }, {})).toBe('bosun_secret');
    expect(agentToken({}, { BOSUN_AGENT_TOKEN_FILE: file })).toBe('bosun_secret');
    expect(agentToken({}, { BOSUN_AGENT_TOKEN: 'from-env' })).toBe('from-env');
    expect(() => agentToken({ globalToken: 'x' }, { BOSUN_AGENT_TOKEN: 'y' })).toThrow(
      /does not take --token/,
    );
    expect(() => agentToken({}, {})).toThrow(/no agent token/);
  });
});

describe('agent errors say why', () => {
  /** A loopback port nothing listens on. */
  async function closedPort(): Promise<number> {
    const s = createNetServer();
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    return port;
  }
  async function firstError(server: string, extra: Partial<ConstructorParameters<typeof Agent>[0]> = {}) {
    const { agent, lines, started } = startAgent(server, dir(), 't', extra);
    started.catch(() => {});
    await waitFor(() => agent.health().last_error !== null, 'a connection error', 10_000);
    return { error: agent.health().last_error!, lines, started };
  }

  it('server down: last_error and the log line carry ECONNREFUSED', async () => {
    const port = await closedPort();
    const { error, lines } = await firstError(`http://127.0.0.1:${port}`);
    expect(error).toMatchObject({ kind: 'network', cause: `connect ECONNREFUSED 127.0.0.1:${port}` });
    expect(msgs(lines, 'autoconfig: stream interrupted')[0]).toMatchObject({
      kind: 'network',
      cause: `connect ECONNREFUSED 127.0.0.1:${port}`,
    });
  });

  it('a name that does not resolve: the DNS error', async () => {
    const { error } = await firstError('http://bosun-agent-test.invalid', { allowInsecure: true });
    expect(error.kind).toBe('network');
    expect(error.cause).toMatch(/^getaddrinfo (ENOTFOUND|EAI_AGAIN) bosun-agent-test\.invalid$/);
  });

  it('https to a server that does not speak TLS: the TLS error', async () => {
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    const { error } = await firstError(server.url.replace(/^http:/, 'https:').replace(/\/v1\/stream$/, ''));
    expect(error.kind).toBe('network');
    expect(error.cause).toMatch(/ERR_SSL_WRONG_VERSION_NUMBER|wrong version number|packet length too long/i);
  });

  it('a certificate error before the first put: the start error names it', async () => {
    const certError = Object.assign(new Error('self-signed certificate'), {
      code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
    const { error, started } = await firstError('https://bosun.example.com', {
      fetch: async () => {
        throw new TypeError('fetch failed', { cause: certError });
      },
    });
    expect(error).toMatchObject({
      kind: 'tls',
      cause: 'DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate',
    });
    await expect(started).rejects.toThrow(
      'TLS certificate error: DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate',
    );
  });

  it('an HTTP error: its status', async () => {
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    const { agent, started } = startAgent(server.url.replace(/\/v1\/stream$/, ''), dir(), 't');
    (await server.next()).respond(502);
    await waitFor(() => agent.health().last_error !== null, 'the HTTP error');
    expect(agent.health().last_error).toMatchObject({ kind: 'http', status: 502, cause: 'HTTP 502' });
    (await server.next()).open().put([rep('A', 1)]);
    await started;
  });
});

describe('agent /metrics', () => {
  /** `name{labels} value` lines of a Prometheus text page, keyed by name and labels. */
  const samples = (text: string) =>
    new Map(
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))] as const),
    );

  it('serves Prometheus text beside /healthz: connected, relays held, last applied version, errors, files', async () => {
    const server = await ScriptedServer.start();
    cleanups.defer(() => server.close());
    const { agent, started } = startAgent(server.url.replace(/\/v1\/stream$/, ''), dir(), 't');
    const conn = (await server.next()).open().put([rep('A', 1), rep('B', 2)]);
    await started;
    conn.patch(rep('A', 3)).del('B', 4);
    await waitFor(() => agent.health().relays === 1, 'the delete applied');
    const metricsUrl = agent.healthUrl!.replace(/\/healthz$/, '/metrics');
    const res = await fetch(metricsUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(Object.fromEntries(samples(text))).toMatchObject({
      bosun_agent_stream_connected: 1,
      bosun_agent_relays: 1,
      bosun_agent_last_applied_version: 4,
      bosun_agent_files_written_total: 3,
      bosun_agent_files_removed_total: 1,
    });
    expect(text).not.toContain(SECRET);
    if (existsSync('/usr/bin/promtool')) {
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${lint.stdout}${lint.stderr}`.trim()).toBe('');
      expect(lint.status).toBe(0);
    }

    conn.destroy();
    await waitFor(() => agent.health().status === 'interrupted', 'the cut seen');
    const after = samples(await (await fetch(metricsUrl)).text());
    expect(after.get('bosun_agent_stream_connected')).toBe(0);
    expect(
      after.get('bosun_agent_errors_total{kind="network"}') ??
        after.get('bosun_agent_errors_total{kind="eof"}'),
    ).toBe(1);
  });
});
