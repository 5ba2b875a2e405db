import type { Clock } from '../../src/domain/clock.js';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';

/** `n` zooid instances and their keys, plus one close for them all. */
export interface Zooids {
  keys: string[];
  zooids: ZooidEmulator[];
  close: () => Promise<void>;
}

/**
 * `n` zooid emulators, each whitelisting only its own key: a request signed for another instance
 * is refused (403), so a relay routed to the wrong target shows in the emulators' request logs.
 */
export async function startZooids(n: number, opts: { clock?: Clock } = {}): Promise<Zooids> {
  const keys = Array.from({ length: n }, () => generateSecretKey());
  const zooids: ZooidEmulator[] = [];
  const close = async () => {
    for (const z of zooids) await z.close();
  };
  try {
    for (const key of keys) zooids.push(await startZooidEmulator({ whitelist: [publicKeyOf(key)], ...opts }));
  } catch (err) {
    await close();
    throw err;
  }
  return { keys, zooids, close };
}

/** How a test calls bosun's API: an in-process TestServer's `api`, or fetch against a child. */
export type CallApi = (method: string, path: string, body?: unknown) => Promise<{ status: number }>;

/**
 * Targets eu-1 and us-1 on zooids 1 and 2 (zooid 0 is bosun's default target, ZOOID_API_URL), each
 * with its instance's key, then each fleet of `fleets` (name to target) on its target.
 */
export async function addTargets(
  api: CallApi,
  { zooids, keys }: Pick<Zooids, 'zooids' | 'keys'>,
  fleets: Record<string, string>,
): Promise<void> {
  for (const [i, name] of [
    [1, 'eu-1'],
    [2, 'us-1'],
  ] as const) {
    const res = await api('POST', '/v1/targets', { name, url: zooids[i]!.url, secret_key: keys[i] });
    if (res.status !== 201) throw new Error(`adding target ${name}: ${res.status}`);
  }
  for (const [fleet, target] of Object.entries(fleets)) {
    const res = await api('PUT', `/v1/fleets/${fleet}`, { target });
    if (res.status !== 200) throw new Error(`putting fleet ${fleet} on ${target}: ${res.status}`);
  }
}

/** bosun's environment for its default target on zooid 0, signing with that instance's key. */
export function defaultTargetEnv({ zooids, keys }: Pick<Zooids, 'zooids' | 'keys'>): Record<string, string> {
  return { ZOOID_API_URL: zooids[0]!.url, BOSUN_SECRET_KEY: keys[0]! };
}
