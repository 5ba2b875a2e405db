/**
 * Entry of one NIP-98 signing thread, started by signer-pool.ts. The main thread sends templates
 * (timestamp and tags already fixed, so its clock and hashing rules stay the only ones); this
 * thread computes the Schnorr signature and the header. It loads the wasm backend the way
 * nip98.ts always does (pure JS until then, or if it cannot load) and answers `ready` once that is
 * settled; requests that arrive earlier wait for it rather than run on the slow path.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type Nip98Template, nip98Ready, signNip98Template } from './nip98.js';

export interface SignWorkerData {
  secret: Uint8Array;
  pubkey: string;
}

export interface SignRequest {
  id: number;
  template: Nip98Template;
}

export type SignReply =
  | { type: 'ready'; backend: 'wasm' | 'pure' }
  | { type: 'signed'; id: number; header: string }
  | { type: 'failed'; id: number; error: string };

const port = parentPort;
if (!port) throw new Error('sign-worker runs only as a worker thread (see signer-pool.ts)');
const { secret, pubkey } = workerData as SignWorkerData;

const reply = (message: SignReply) => port.postMessage(message);

function handle({ id, template }: SignRequest): void {
  try {
    reply({ type: 'signed', id, header: signNip98Template(template, secret, pubkey) });
  } catch (err) {
    // Only the message crosses back: the main thread retries on its own thread and reports that.
    reply({ type: 'failed', id, error: err instanceof Error ? err.message : String(err) });
  }
}

let loaded = false;
const backend = nip98Ready().then((name) => {
  loaded = true;
  return name;
});
port.on('message', (request: SignRequest) => {
  if (loaded) handle(request);
  else void backend.then(() => handle(request));
});
void backend.then((name) => reply({ type: 'ready', backend: name }));
