/**
 * Entry of the NIP-11 read thread, started by fetch-thread.ts. It runs fetchRelayInfo (every bound
 * of fetch.ts applies here unchanged) and sends back only the outcome, so the HTTP client's work —
 * sockets, parsing, the body's buffers — is this thread's, not the main thread's, where push sync
 * and the API run. Answers `ready` once it listens.
 */
import { parentPort } from 'node:worker_threads';
import { type FetchRelayInfoResult, fetchRelayInfo } from './fetch.js';

export type FetchThreadRequest =
  | { type: 'fetch'; id: number; baseUrl: string; host: string; timeoutMs: number; maxBytes?: number }
  | { type: 'cancel'; id: number };

export type FetchThreadReply =
  | { type: 'ready' }
  | { type: 'done'; id: number; outcome: FetchRelayInfoResult };

const port = parentPort;
if (!port) throw new Error('fetch-worker runs only as a worker thread (see fetch-thread.ts)');

const running = new Map<number, AbortController>();
port.on('message', (message: FetchThreadRequest) => {
  if (message.type === 'cancel') {
    running.get(message.id)?.abort();
    return;
  }
  const { id, type: _, ...req } = message;
  const abort = new AbortController();
  running.set(id, abort);
  void fetchRelayInfo({ ...req, signal: abort.signal }).then((outcome) => {
    running.delete(id);
    port.postMessage({ type: 'done', id, outcome } satisfies FetchThreadReply);
  });
});
port.postMessage({ type: 'ready' } satisfies FetchThreadReply);
