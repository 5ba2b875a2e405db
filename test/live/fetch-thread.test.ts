import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { FetchThread, spawnFetchWorker } from '../../src/live/fetch-thread.js';
import type { FetchThreadRequest } from '../../src/live/fetch-worker.js';
import { useCleanups } from '../support/cleanups.js';
import { until } from '../support/until.js';

const { defer } = useCleanups();

/** A loopback server answering every request with `answer` (which may never finish). */
async function server(answer: (res: ServerResponse, host: string) => void): Promise<string> {
  const s = createServer((req, res) => {
    req.resume();
    answer(res, req.headers.host ?? '');
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  defer(
    () =>
      new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const nip11 = (res: ServerResponse, host: string) => {
  res.writeHead(200, { 'content-type': 'application/nostr+json' });
  res.end(JSON.stringify({ name: host }));
};

interface Rig {
  reads: FetchThread;
  /** What the main thread posted to the thread. */
  posted: FetchThreadRequest[];
  warnings: string[];
}

/** A FetchThread on `spawn` (default: the real fetch-worker), recording what it posts and logs. */
async function rig(spawn: () => Worker = spawnFetchWorker, answerMarginMs?: number): Promise<Rig> {
  const posted: FetchThreadRequest[] = [];
  const warnings: string[] = [];
  let worker: Worker | undefined;
  const reads = new FetchThread({
    logger: { warn: (_obj, msg) => warnings.push(msg) },
    spawn: () => {
      worker = spawn();
      const post = worker.postMessage.bind(worker);
      worker.postMessage = (m: FetchThreadRequest) => {
        posted.push(m);
        post(m);
      };
      return worker;
    },
    ...(answerMarginMs !== undefined ? { answerMarginMs } : {}),
  });
  defer(() => reads.close());
  return { reads, posted, warnings };
}

/** A thread that says it is ready, then never answers a read. */
const deaf = () =>
  new Worker(
    "require('node:worker_threads').parentPort.on('message', () => {}); require('node:worker_threads').parentPort.postMessage({ type: 'ready' });",
    { eval: true },
  );

/** A read once the thread is ready (reads before that run on the main thread). */
async function readyRead(r: Rig, url: string) {
  await until(() => r.reads.onThread, 30_000, 'the live check thread ready');
  return r.reads.fetch({ baseUrl: url, host: 'r1.example.com', timeoutMs: 2000 });
}

describe('FetchThread: NIP-11 reads on a thread of their own', () => {
  it('reads through the thread once it is ready, with the same outcome as on the main thread', async () => {
    const url = await server(nip11);
    const r = await rig();
    const outcome = await readyRead(r, url);
    expect(outcome).toEqual({ ok: true, doc: { name: 'r1.example.com' } });
    expect(r.posted.at(-1)).toMatchObject({ type: 'fetch', baseUrl: url, host: 'r1.example.com' });
    expect(r.warnings).toEqual([]);
  });

  it("keeps fetch.ts's bounds in the thread: a redirect is not followed", async () => {
    const url = await server((res) => {
      res.writeHead(302, { location: 'http://elsewhere.example/' });
      res.end();
    });
    const r = await rig();
    const outcome = await readyRead(r, url);
    expect(outcome).toEqual({ ok: false, error: expect.stringContaining('redirect') });
  });

  it('an aborted read ends at once and cancels the read in the thread', async () => {
    let held = 0;
    const url = await server((_res, host) => {
      if (host === 'hang.example.com') held++;
      else nip11(_res, host);
    });
    const r = await rig();
    await readyRead(r, url);
    const abort = new AbortController();
    const read = r.reads.fetch({
      baseUrl: url,
      host: 'hang.example.com',
      timeoutMs: 30_000,
      signal: abort.signal,
    });
    await until(() => held === 1, 5000, 'the held request');
    abort.abort();
    expect(await read).toEqual({ ok: false, error: 'aborted' });
    expect(r.posted.at(-1)).toMatchObject({ type: 'cancel' });
  });

  it('a thread that stops answering fails its read past the deadline, once; later reads run here', async () => {
    const url = await server(nip11);
    const r = await rig(deaf, 100);
    await until(() => r.reads.onThread, 10_000, 'the deaf thread ready');
    const outcome = await r.reads.fetch({ baseUrl: url, host: 'r2.example.com', timeoutMs: 200 });
    expect(outcome).toEqual({ ok: false, error: 'no answer from the live check thread within 200 ms' });
    expect(r.warnings).toEqual(['live check thread hung; reading NIP-11 documents on the main thread']);
    const posted = r.posted.length;
    expect(await r.reads.fetch({ baseUrl: url, host: 'r3.example.com', timeoutMs: 2000 })).toEqual({
      ok: true,
      doc: { name: 'r3.example.com' },
    });
    expect(r.posted.length).toBe(posted);
    expect(r.reads.onThread).toBe(false);
  });

  it('a thread that exits fails what it owed; later reads run here', async () => {
    let held = 0;
    const url = await server((res, host) => {
      if (host === 'hang.example.com') held++;
      else nip11(res, host);
    });
    let worker: Worker | undefined;
    const r = await rig(() => {
      worker = spawnFetchWorker();
      return worker;
    });
    await readyRead(r, url);
    const read = r.reads.fetch({ baseUrl: url, host: 'hang.example.com', timeoutMs: 30_000 });
    await until(() => held === 1, 5000, 'the held request');
    await worker!.terminate();
    expect(await read).toEqual({ ok: false, error: 'the live check thread stopped' });
    expect(r.warnings).toHaveLength(1);
    expect(await r.reads.fetch({ baseUrl: url, host: 'r4.example.com', timeoutMs: 2000 })).toEqual({
      ok: true,
      doc: { name: 'r4.example.com' },
    });
  });
});
