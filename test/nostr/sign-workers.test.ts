import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadServeConfig } from '../../src/config.js';
import { generateSecretKey, publicKeyOf } from '../../src/domain/keys.js';
import { Nip98SignerPool } from '../../src/nostr/signer-pool.js';
import { startZooidEmulator, type ZooidEmulator } from '../../src/push/zooid/emulator.js';
import { keypair, relayBody, startServer, type TestServer } from '../support/env.js';

const bosunKey = generateSecretKey();
const owner = keypair();
const open: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function serve(signWorkers: string): Promise<{ s: TestServer; zooid: ZooidEmulator }> {
  const zooid = await startZooidEmulator({ whitelist: [publicKeyOf(bosunKey)] });
  open.push(zooid);
  const s = await startServer({
    env: { ZOOID_API_URL: zooid.url, BOSUN_SECRET_KEY: bosunKey, BOSUN_SIGN_WORKERS: signWorkers },
  });
  open.push(s);
  return { s, zooid };
}

describe('BOSUN_SIGN_WORKERS', () => {
  it('defaults to one signing thread and accepts 0 to 8', () => {
    const base = { ZOOID_API_URL: 'http://127.0.0.1:3334', BOSUN_SECRET_KEY: bosunKey };
    expect(loadServeConfig(base).sync.signWorkers).toBe(1);
    expect(loadServeConfig({ ...base, BOSUN_SIGN_WORKERS: '' }).sync.signWorkers).toBe(1);
    expect(loadServeConfig({ ...base, BOSUN_SIGN_WORKERS: '0' }).sync.signWorkers).toBe(0);
    expect(loadServeConfig({ ...base, BOSUN_SIGN_WORKERS: '8' }).sync.signWorkers).toBe(8);
  });

  it('refuses anything else with a message naming the variable', () => {
    for (const bad of ['9', '-1', '1.5', 'two', '0x2']) {
      const load = () => loadServeConfig({ BOSUN_SIGN_WORKERS: bad });
      expect(load).toThrow(ConfigError);
      expect(load).toThrow('invalid configuration: BOSUN_SIGN_WORKERS: must be a whole number from 0 to 8');
    }
  });

  it.each(['0', '2'])('pushes relays with %s signing threads, and close() stops them', async (n) => {
    const { s, zooid } = await serve(n);
    const signer = s.peer.signer!;
    if (n === '0') expect(signer).not.toBeInstanceOf(Nip98SignerPool);
    else expect((signer as Nip98SignerPool).size).toBe(2);
    for (let i = 0; i < 20; i++) await s.api('POST', '/v1/relays', relayBody(`sw-${n}-${i}`, owner.pubkey));
    await s.peer.observer!.idle();
    expect(zooid.relays().size).toBe(20);
    expect(zooid.requests.every((r) => r.status === 201)).toBe(true);
    expect(s.logs.some((l) => l.includes('"signWorkers":'))).toBe(true);
    expect(s.logs.filter((l) => l.includes('signing thread'))).toEqual([]);
    await s.close();
    if (n !== '0') expect((signer as Nip98SignerPool).size).toBe(0);
  });
});
