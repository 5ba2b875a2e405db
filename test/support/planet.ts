import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { createNip98Signer } from '../../src/nostr/nip98.js';
import { ZooidClient } from '../../src/push/zooid/client.js';
import {
  startZooidEmulator,
  type ZooidEmulator,
  type ZooidFaults,
  type ZooidServingOptions,
} from '../../src/push/zooid/emulator.js';
import type { FakeClock } from './clock.js';
import { startServer, type TestServer } from './env.js';

/**
 * A complete bosun peer with a zooid emulator and a temp database, like Storj's testplanet: the
 * integration tests' one-line set-up. Chores run only when a test triggers them (their intervals
 * are a day) unless `env` says otherwise.
 */
export interface Planet {
  bosun: TestServer;
  zooid: ZooidEmulator;
  /** A zooid client with bosun's key, for changing zooid behind bosun's back. */
  direct: ZooidClient;
  bosunPubkey: string;
  /** Resolves once no chore run is in flight and the observer has synced all it was handed. */
  idle: () => Promise<void>;
  trigger: (chore: string) => Promise<void>;
  close: () => Promise<void>;
}

export async function startPlanet(
  opts: {
    clock?: FakeClock;
    env?: Record<string, string>;
    faults?: ZooidFaults;
    dir?: string;
    /** What relay hosts serve (live verification's knobs). */
    serving?: ZooidServingOptions;
    /** Live verification on, reading relays back at the emulator's address. */
    verify?: { graceMs: number };
    /** The emulator's CONFIG dir (another instance may load its files). */
    zooidConfigDir?: string;
  } = {},
): Promise<Planet> {
  const key = generateSecretKey();
  const bosunPubkey = publicKeyOf(key);
  const zooid = await startZooidEmulator({
    whitelist: [bosunPubkey],
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.faults ? { faults: opts.faults } : {}),
    ...(opts.zooidConfigDir ? { configDir: opts.zooidConfigDir } : {}),
    ...opts.serving,
  });
  const slow: Record<string, string> = {};
  for (const chore of [
    'RETRY_SWEEPER',
    'DRIFT_REPAIR',
    'RESYNC',
    'RESYNC_FAILED',
    'CREDENTIAL_EXPIRY',
    'ACTIVITY_RETENTION',
    'TARGET_HEALTH',
  ]) {
    slow[`BOSUN_CHORE_${chore}_INTERVAL`] = '1d';
  }
  const bosun = await startServer({
    env: {
      ZOOID_API_URL: zooid.url,
      BOSUN_SECRET_KEY: key,
      BOSUN_CHORE_TARGET_HEALTH_ENABLED: 'true',
      ...slow,
      ...(opts.verify
        ? {
            BOSUN_VERIFY_URL: zooid.url,
            BOSUN_VERIFY_INTERVAL_MS: '300000',
            BOSUN_VERIFY_GRACE_MS: String(opts.verify.graceMs),
          }
        : {}),
      ...opts.env,
    },
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.dir ? { dir: opts.dir } : {}),
  });
  const direct = new ZooidClient({ apiUrl: zooid.url, signer: createNip98Signer(key) });
  return {
    bosun,
    zooid,
    direct,
    bosunPubkey,
    idle: async () => {
      // A chore run a fake-clock tick started may not have handed its relays to the observer yet.
      const choresBusy = () => [...bosun.peer.chores.values()].some((c) => c.cycle.active);
      do {
        while (choresBusy()) await new Promise((r) => setTimeout(r, 1));
        await bosun.peer.pushQueue!.idle();
      } while (choresBusy());
    },
    trigger: async (chore) => {
      const handle = bosun.peer.chores.get(chore as never);
      if (!handle) throw new Error(`chore ${chore} is not running`);
      await handle.cycle.triggerWait();
    },
    close: async () => {
      await bosun.close();
      await zooid.close();
    },
  };
}
