import { connect } from 'node:net';
import type { TestServer } from '../support/env.js';

/** Fixed fuzz seed, printed by every hostile suite; `BOSUN_FUZZ_SEED=<n>` replays a failure. */
export const FUZZ_SEED = Number(process.env.BOSUN_FUZZ_SEED ?? 20_260_101);
/** Runs per property: small enough for the default suite; `BOSUN_FUZZ_RUNS` for a longer pass. */
export const FUZZ_RUNS = Number(process.env.BOSUN_FUZZ_RUNS ?? 0) || undefined;
export const runs = (n: number) => ({ seed: FUZZ_SEED, numRuns: FUZZ_RUNS ?? n });

export function printSeed(suite: string): void {
  console.log(`${suite}: fuzz seed ${FUZZ_SEED} (replay with BOSUN_FUZZ_SEED=${FUZZ_SEED})`);
}

/** Everything a request could have written: relays (tombstones too), the activity log, tokens. */
export async function snapshot(s: TestServer) {
  const store = s.peer.store;
  return {
    relays: await store.listRelays({ limit: 100_000, includeDeleted: true }),
    lastActivity: await store.lastActivityId(),
    tokens: await store.listTokens(),
  };
}

export interface RawResponse {
  /** 0 when the server closed the connection without answering. */
  status: number;
  head: string;
}

/**
 * Sends raw bytes over a fresh TCP connection and resolves with the status line of the answer
 * (the socket is destroyed as soon as the head arrived, so long-lived streams are fine too).
 */
export function rawRequest(url: string, bytes: Buffer | string, timeoutMs = 5000): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms to ${JSON.stringify(String(bytes).slice(0, 200))}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      resolve({ status: m ? Number(m[1]) : 0, head: got.split('\r\n\r\n')[0] ?? '' });
    };
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', finish);
    socket.write(bytes);
  });
}
