import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startZooidEmulator } from '../../src/push/zooid/emulator.js';
import { keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

/**
 * Fault injection on the push path, in real time with fast retries: 5xx bursts, latency spikes
 * beyond the sync timeout, connection resets, and zooid down (process gone) then back. Through all
 * of it changes keep coming; afterwards every relay converges to its latest config, zooid never got
 * an older config after a newer one, never two requests for a relay at once.
 */
describe('fault injection: push sync', () => {
  let p: Planet;
  const owner = keypair();
  const ids = Array.from({ length: 15 }, (_, i) => `f-${String(i).padStart(2, '0')}`);
  let counter = 0;
  let restarted: Awaited<ReturnType<typeof startZooidEmulator>> | undefined;
  /** Retries and timeouts short enough for faults to heal within a test. */
  const FAST_RETRIES = {
    BOSUN_RETRY_BASE_MS: '20',
    BOSUN_RETRY_CAP_MS: '200',
    BOSUN_RETRY_MAX_ATTEMPTS: '1000',
    BOSUN_SYNC_TIMEOUT_MS: '300',
    BOSUN_CHORE_RETRY_SWEEPER_INTERVAL: '1s',
  };

  beforeAll(async () => {
    p = await startPlanet({ env: FAST_RETRIES });
    for (const id of ids) {
      expect(
        (
          await p.bosun.api(
            'POST',
            '/v1/relays',
            relayBody(id, owner.pubkey, { info: { pubkey: owner.pubkey, name: 'k0' } }),
          )
        ).status,
      ).toBe(201);
    }
    await converge();
  });
  afterAll(async () => {
    await p.close();
    await restarted?.close();
  });

  /** Updates every relay a few times while a fault is active. */
  const churn = async (rounds: number) => {
    for (let r = 0; r < rounds; r++) {
      await Promise.all(
        ids.map(async (id) => {
          const res = await p.bosun.api('PATCH', `/v1/relays/${id}`, { info: { name: `k${++counter}` } });
          expect(res.status).toBe(200);
        }),
      );
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  async function converge(timeoutMs = 20_000, opts = { concurrency: true }) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const relays = (await p.bosun.api('GET', '/v1/relays?limit=1000')).body.relays as any[];
      const stored = p.zooid.relays();
      const done = relays.every(
        (r) =>
          r.sync.status === 'synced' &&
          r.sync.synced_version === r.version &&
          stored.get(r.id)?.info.name === r.config.info.name,
      );
      if (done) break;
      if (Date.now() > deadline) {
        throw new Error(
          `no convergence: ${JSON.stringify(
            relays
              .filter((r) => r.sync.status !== 'synced')
              .map((r) => [r.id, r.sync])
              .slice(0, 5),
          )}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Never an older config after a newer, never two requests for a relay at once.
    for (const id of ids) {
      const names = p.zooid
        .accepted(id)
        .filter((c) => c.config)
        .map((c) => Number(String(c.config!.info.name).slice(1)));
      expect(names, id).toEqual([...names].sort((a, b) => a - b));
    }
    if (opts.concurrency) expect(p.zooid.maxConcurrentPerRelay()).toBe(1);
  }

  it('5xx bursts (500/502/503, half the requests) while changes keep coming', async () => {
    for (const failStatus of [500, 502, 503]) {
      p.zooid.setFaults({ errorRate: 0.5, failStatus });
      await churn(2);
    }
    const relays = (await p.bosun.api('GET', '/v1/relays?limit=1000')).body.relays as any[];
    expect(
      relays.some((r) => r.sync.status === 'retrying' || r.sync.attempts > 0 || r.sync.status === 'pending'),
    ).toBe(true);
    p.zooid.setFaults({});
    await converge();
  });

  it('connection resets: zooid drops every connection for a while', async () => {
    p.zooid.setFaults({ dropConnections: true });
    await churn(3);
    await new Promise((r) => setTimeout(r, 300));
    p.zooid.setFaults({ dropConnections: 10 });
    await converge();
  });

  it('zooid down (process gone, connection refused), then back on the same port', async () => {
    const port = p.zooid.port;
    const whitelist = [p.bosunPubkey];
    const first = p.zooid;
    await first.close();
    // close() is idempotent for the planet's own close later.
    first.close = async () => {};
    await churn(3);
    await new Promise((r) => setTimeout(r, 1500));
    const relays = (await p.bosun.api('GET', '/v1/relays?limit=1000')).body.relays as any[];
    expect(relays.every((r) => r.sync.status !== 'synced' || r.sync.synced_version < r.version)).toBe(true);
    // It comes back empty (it lost its relays too): PATCH answers 404 and bosun POSTs them again.
    restarted = await startZooidEmulator({ port, whitelist });
    p.zooid = restarted;
    await converge(30_000);
    expect(restarted.requests.some((r) => r.method === 'POST')).toBe(true);
  });
  it('latency spikes beyond BOSUN_SYNC_TIMEOUT_MS: requests time out, retry, and converge', async () => {
    p.zooid.setFaults({ latencyMs: 500 });
    await churn(2);
    await new Promise((r) => setTimeout(r, 800));
    const relays = (await p.bosun.api('GET', '/v1/relays?limit=1000')).body.relays as any[];
    expect(relays.some((r) => r.sync.status === 'retrying')).toBe(true);
    expect(relays.find((r) => r.sync.error)?.sync.error).toMatch(/did not answer .* within 300 ms/);
    p.zooid.setFaults({});
    // A retry after a timeout waits at least the sync timeout, so it never overlaps the abandoned
    // request zooid is still working on: zooid never sees two requests for one relay at once.
    await converge(20_000, { concurrency: true });
  });
});
