import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { createNip98Signer, type NostrEvent, verifyNip98 } from '../../src/nostr/nip98.js';
import type { SignReply, SignWorkerData } from '../../src/nostr/sign-worker.js';
import {
  createPooledNip98Signer,
  Nip98SignerPool,
  type SignerPoolOptions,
  spawnSignWorker,
} from '../../src/nostr/signer-pool.js';
import { BOSUN_PUBKEY, BOSUN_SECRET } from '../push/zooid/helpers.js';
import { FakeClock } from '../support/clock.js';

const T0 = Date.UTC(2026, 0, 1);
const BASE = 'http://127.0.0.1:3334/relay';

const decode = (header: string) =>
  JSON.parse(Buffer.from(header.slice('Nostr '.length), 'base64').toString('utf8')) as NostrEvent;

/** zooid's check plus bosun's stricter payload check, at the time the header claims. */
const verify = (header: string, url: string, method: string, body: string | undefined, now = T0) =>
  verifyNip98(header, { url, method, now, windowSeconds: 60, checkPayload: true, ...(body ? { body } : {}) });

interface Spawned {
  worker: Worker;
  /** Resolves when the thread reported ready. */
  ready: Promise<void>;
  /** Resolves with the exit code once the thread is gone. */
  exited: Promise<number>;
  signed: number;
}

/** A thread that says it is ready, then spins forever on the first request (CommonJS, eval'd). */
const HANGS_ON_FIRST_REQUEST = `
  const { parentPort } = require('node:worker_threads');
  parentPort.postMessage({ type: 'ready', backend: 'pure' });
  parentPort.on('message', () => { for (;;) {} });
`;
/** A thread that stays alive and never says it is ready. */
const NEVER_READY = 'setInterval(() => {}, 1000);';

const pools: Nip98SignerPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

/** A pool whose threads (real ones, from sign-worker.ts) and warnings the test can see. */
function pool(options: Partial<SignerPoolOptions> = {}) {
  const spawned: Spawned[] = [];
  const warnings: Record<string, unknown>[] = [];
  const p = new Nip98SignerPool(BOSUN_SECRET, {
    workers: 1,
    clock: new FakeClock(T0),
    logger: { warn: (obj, msg) => warnings.push({ ...obj, msg }) },
    spawn: (data: SignWorkerData) => {
      const worker = spawnSignWorker(data);
      const entry: Spawned = {
        worker,
        ready: new Promise((resolve) =>
          worker.on('message', (m: SignReply) => m.type === 'ready' && resolve()),
        ),
        exited: new Promise((resolve) => worker.once('exit', resolve)),
        signed: 0,
      };
      worker.on('message', (m: SignReply) => {
        if (m.type === 'signed') entry.signed++;
      });
      spawned.push(entry);
      return worker;
    },
    ...options,
  });
  pools.push(p);
  return { pool: p, spawned, warnings };
}

describe('Nip98SignerPool', () => {
  it('signs on a thread what the in-thread signer signs: same event but the signature, created_at read at call time', async () => {
    const clock = new FakeClock(T0 + 999);
    const { pool: p, spawned } = pool({ clock });
    expect(p.pubkey).toBe(BOSUN_PUBKEY);
    await p.threadsStarted();
    const body = '{"host":"a"}';
    const first = p.sign(`${BASE}/r1?x=1#frag`, 'post', body);
    // The clock moves before the thread answers: the header keeps the second sign() was called in.
    await clock.advance(120_000);
    const second = p.sign(`${BASE}/r1`, 'delete');
    const [a, b] = await Promise.all([first, second]);
    expect(spawned[0]!.signed).toBe(2);

    expect(verify(a, `${BASE}/r1`, 'POST', body)).toMatchObject({ ok: true, pubkey: BOSUN_PUBKEY });
    expect(decode(a).created_at).toBe(T0 / 1000);
    expect(verify(b, `${BASE}/r1`, 'DELETE', undefined, T0 + 120_000).ok).toBe(true);
    expect(decode(b).created_at).toBe((T0 + 120_000) / 1000);
    expect(decode(b).tags).toEqual([
      ['u', `${BASE}/r1`],
      ['method', 'DELETE'],
    ]);

    const inThread = await createNip98Signer(BOSUN_SECRET, { clock: new FakeClock(T0 + 999) }).sign(
      `${BASE}/r1?x=1#frag`,
      'post',
      body,
    );
    const { sig: _s1, ...threadEvent } = decode(a);
    const { sig: _s2, ...localEvent } = decode(inThread);
    // Same id means same kind, tags, content, pubkey and created_at; same keys in the same order.
    expect(threadEvent).toEqual(localEvent);
    expect(Object.keys(decode(a))).toEqual(Object.keys(decode(inThread)));
  });

  it('answers many concurrent requests correctly, spread over the threads', async () => {
    const { pool: p, spawned } = pool({ workers: 2 });
    expect(p.size).toBe(2);
    await p.threadsStarted();
    const methods = ['POST', 'PUT', 'PATCH', 'DELETE'];
    const requests = Array.from({ length: 400 }, (_, i) => {
      const method = methods[i % 4]!;
      const body = method === 'DELETE' ? undefined : JSON.stringify({ i, pad: 'x'.repeat(i) });
      return { url: `${BASE}/relay-${i}`, method, body };
    });
    const headers = await Promise.all(
      requests.map((r) => p.sign(r.url, r.method.toLowerCase(), r.body && Buffer.from(r.body))),
    );
    headers.forEach((header, i) => {
      const r = requests[i]!;
      expect(verify(header, r.url, r.method, r.body)).toMatchObject({ ok: true, pubkey: BOSUN_PUBKEY });
    });
    expect(spawned.map((s) => s.signed).reduce((x, y) => x + y)).toBe(400);
    expect(spawned.every((s) => s.signed > 0)).toBe(true);
  });

  it('runs its threads with small heap limits, and they sign thousands of requests within them', async () => {
    const { pool: p, spawned } = pool({ workers: 1 });
    await p.threadsStarted();
    expect(spawned[0]!.worker.resourceLimits).toMatchObject({
      maxOldGenerationSizeMb: 32,
      maxYoungGenerationSizeMb: 4,
    });
    const body = Buffer.from('x'.repeat(4000));
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 400 }, (_, i) => p.sign(`${BASE}/r-${i}`, 'patch', body)));
    }
    expect(spawned).toHaveLength(1);
    expect(spawned[0]!.signed).toBe(2000);
  });

  it('signs on the main thread what a thread killed mid-flight owed, replaces the thread and logs once', async () => {
    const { pool: p, spawned, warnings } = pool();
    await p.threadsStarted();
    const requests = Array.from({ length: 500 }, (_, i) => p.sign(`${BASE}/k${i}`, 'PATCH', `{"i":${i}}`));
    await spawned[0]!.worker.terminate();
    const headers = await Promise.all(requests);
    headers.forEach((h, i) => {
      expect(verify(h, `${BASE}/k${i}`, 'PATCH', `{"i":${i}}`).ok).toBe(true);
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ worker: 0, replaced: true });
    expect(warnings[0]!.pending as number).toBeGreaterThan(0);
    expect(JSON.stringify(warnings)).not.toContain(BOSUN_SECRET);

    expect(spawned).toHaveLength(2);
    await spawned[1]!.ready;
    expect(verify(await p.sign(`${BASE}/after`, 'PUT', '{}'), `${BASE}/after`, 'PUT', '{}').ok).toBe(true);
    expect(spawned[1]!.signed).toBe(1);
  });

  it('stops replacing threads after a few failures and signs on the main thread from then on', async () => {
    const { pool: p, spawned, warnings } = pool();
    for (let i = 0; i < 4; i++) {
      await spawned[i]!.ready;
      await spawned[i]!.worker.terminate();
    }
    expect(spawned).toHaveLength(4);
    expect(warnings.map((w) => w.replaced)).toEqual([true, true, true, false]);
    expect(p.size).toBe(0);
    expect(verify(await p.sign(`${BASE}/r1`, 'POST', '{}'), `${BASE}/r1`, 'POST', '{}').ok).toBe(true);
  });

  it('does not replace a thread that fails before it is ready, nor one that cannot be created', async () => {
    const broken = pool({
      spawn: () => new Worker('throw new Error("cannot load the signer")', { eval: true }),
    });
    const pending = broken.pool.sign(`${BASE}/r1`, 'POST', '{}');
    await broken.pool.threadsStarted();
    expect(verify(await pending, `${BASE}/r1`, 'POST', '{}').ok).toBe(true);
    expect(broken.warnings).toHaveLength(1);
    expect(broken.warnings[0]).toMatchObject({ replaced: false });
    expect(String(broken.warnings[0]!.err)).toMatch(/cannot load the signer/);
    expect(broken.pool.size).toBe(0);

    const refused = pool({
      spawn: () => {
        throw new Error('no threads here');
      },
    });
    expect(refused.pool.size).toBe(0);
    expect(refused.warnings).toHaveLength(1);
    await refused.pool.ready();
    expect(verify(await refused.pool.sign(`${BASE}/r2`, 'PUT'), `${BASE}/r2`, 'PUT', undefined).ok).toBe(
      true,
    );
  });

  it('takes a thread that stops answering as hung: what it owed is signed here, it is terminated and replaced', async () => {
    const hung: Worker[] = [];
    const {
      pool: p,
      spawned,
      warnings,
    } = pool({
      answerTimeoutMs: 100,
      spawn: (data) => {
        if (hung.length > 0) return spawnSignWorker(data);
        hung.push(new Worker(HANGS_ON_FIRST_REQUEST, { eval: true }));
        return hung[0]!;
      },
    });
    const exited = new Promise((resolve) => hung[0]!.once('exit', resolve));
    await p.threadsStarted();
    const started = performance.now();
    const headers = await Promise.all([0, 1, 2].map((i) => p.sign(`${BASE}/h${i}`, 'PUT', '{}')));
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    headers.forEach((h, i) => {
      expect(verify(h, `${BASE}/h${i}`, 'PUT', '{}').ok).toBe(true);
    });
    await exited;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ worker: 0, pending: 3, replaced: true });
    expect(String(warnings[0]!.err)).toMatch(/did not answer for \d+ ms/);
    // The replacement is a real signing thread and takes the work once it is ready.
    expect(spawned).toHaveLength(0);
    expect(p.size).toBe(1);
  });

  it('signs on the main thread while no thread is ready, and gives up a thread that never gets ready', async () => {
    let never: Worker | undefined;
    const { pool: p, warnings } = pool({
      startTimeoutMs: 100,
      spawn: () => {
        never = new Worker(NEVER_READY, { eval: true });
        return never;
      },
    });
    const exited = new Promise((resolve) => never!.once('exit', resolve));
    // Not held by the starting thread: answered before the start times out.
    expect(verify(await p.sign(`${BASE}/s1`, 'POST', '{}'), `${BASE}/s1`, 'POST', '{}').ok).toBe(true);
    expect(warnings).toEqual([]);
    await p.threadsStarted();
    await exited;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ worker: 0, pending: 0, replaced: false });
    expect(String(warnings[0]!.err)).toMatch(/not ready after 100 ms/);
    expect(p.size).toBe(0);
    expect(verify(await p.sign(`${BASE}/s2`, 'POST', '{}'), `${BASE}/s2`, 'POST', '{}').ok).toBe(true);
  });

  it('close() terminates the threads, settles what they owed and keeps signing on the main thread', async () => {
    const { pool: p, spawned, warnings } = pool({ workers: 2 });
    await p.threadsStarted();
    const owed = Array.from({ length: 100 }, (_, i) => p.sign(`${BASE}/c${i}`, 'DELETE'));
    await p.close();
    expect(await Promise.all(spawned.map((s) => s.exited))).toHaveLength(2);
    (await Promise.all(owed)).forEach((h, i) => {
      expect(verify(h, `${BASE}/c${i}`, 'DELETE', undefined).ok).toBe(true);
    });
    expect(p.size).toBe(0);
    expect(verify(await p.sign(`${BASE}/late`, 'POST', '{}'), `${BASE}/late`, 'POST', '{}').ok).toBe(true);
    expect(spawned).toHaveLength(2);
    // A shutdown is not a failure.
    expect(warnings).toEqual([]);
    await p.close();
  });

  it('rejects a bad key without echoing it, and signs in-thread for 0 workers', async () => {
    expect(() => new Nip98SignerPool('zz', { workers: 1 })).toThrow(/^(?!.*zz).*64-character lowercase hex/);
    const inThread = createPooledNip98Signer(BOSUN_SECRET, { workers: 0, clock: new FakeClock(T0) });
    expect(inThread).not.toBeInstanceOf(Nip98SignerPool);
    expect(verify(await inThread.sign(`${BASE}/r1`, 'POST', '{}'), `${BASE}/r1`, 'POST', '{}').ok).toBe(true);
  });
});

describe('a process with a signer pool', () => {
  const fixture = fileURLToPath(new URL('./fixtures/sign-pool-exit.ts', import.meta.url));
  const run = (mode: string) =>
    new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', fixture, mode],
        { timeout: 20_000, env: { ...process.env, BOSUN_TEST_SECRET: BOSUN_SECRET } },
        (err, stdout, stderr) => {
          const e = err as (Error & { code?: number; signal?: string }) | null;
          resolve({ code: e ? (e.code ?? null) : 0, signal: e?.signal ?? null, out: stdout + stderr });
        },
      );
    });

  it('exits on its own after close(), when the pool is idle, and not before an owed signature arrives', async () => {
    const [closed, idle, inflight] = await Promise.all([run('close'), run('idle'), run('inflight')]);
    expect(closed).toEqual({ code: 0, signal: null, out: 'signed ok\nclosed\n' });
    expect(idle).toEqual({ code: 0, signal: null, out: 'signed ok\n' });
    expect(inflight).toEqual({ code: 0, signal: null, out: 'signed ok\n' });
  });
});
