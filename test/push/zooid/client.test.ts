import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { relayConfigSchema } from '../../../src/domain/relay.js';
import { createNip98Signer, type NostrEvent } from '../../../src/nostr/nip98.js';
import { type BlossomS3, patchBody, zooidBody } from '../../../src/push/zooid/body.js';
import { ZooidClient, type ZooidClientOptions } from '../../../src/push/zooid/client.js';
import {
  startZooidEmulator,
  type ZooidEmulator,
  type ZooidEmulatorOptions,
} from '../../../src/push/zooid/emulator.js';
import {
  poolTransport,
  type ZooidHttpRequest,
  type ZooidTransport,
} from '../../../src/push/zooid/transport.js';
import { FakeClock } from '../../support/clock.js';
import { endlessAnswer } from '../../support/endless-answer.js';
import { until } from '../../support/until.js';
import {
  ADMIN_PUBKEY,
  BOSUN_PUBKEY,
  BOSUN_SECRET,
  minimalBody,
  OTHER_SECRET,
  OWNER_PUBKEY,
  RELAY_SECRET,
} from './helpers.js';

const emulators: ZooidEmulator[] = [];
const transports: ZooidTransport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(emulators.splice(0).map((e) => e.close()));
});

/** The real pool transport to `apiUrl`, showing each request to `seen` first. */
function recording(apiUrl: string, seen: (req: ZooidHttpRequest) => void): ZooidTransport {
  const pool = poolTransport(apiUrl);
  transports.push(pool);
  return {
    request: (req) => {
      seen(req);
      return pool.request(req);
    },
    close: () => pool.close(),
  };
}

async function setup(
  emuOpts: Partial<ZooidEmulatorOptions> = {},
  clientOpts: Partial<ZooidClientOptions> = {},
) {
  const emu = await startZooidEmulator({ whitelist: [BOSUN_PUBKEY], ...emuOpts });
  emulators.push(emu);
  const clock = new FakeClock(Date.now());
  const calls: Array<{ url: string; init: ZooidHttpRequest }> = [];
  const client = new ZooidClient({
    apiUrl: emu.url,
    signer: createNip98Signer(BOSUN_SECRET, { clock }),
    clock,
    transport: recording(emu.url, (init) => calls.push({ url: init.url, init })),
    ...clientOpts,
  });
  return { emu, client, clock, calls };
}

/** Runs `p`, firing the client's short backoff timers on the fake clock (never its 10 s timeout). */
async function drive<T>(clock: FakeClock, p: Promise<T>, maxStepMs = 5_000): Promise<T> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  while (!done) {
    const due = clock.nextDue();
    if (due !== undefined && due - clock.now() <= maxStepMs) await clock.advance(due - clock.now());
    else await new Promise((r) => setTimeout(r, 1));
  }
  return p;
}

const decodeAuth = (init: ZooidHttpRequest) => {
  const header = init.headers.authorization!;
  return JSON.parse(Buffer.from(header.slice(6), 'base64').toString('utf8')) as NostrEvent;
};

/** The outcome of a request zooid refused or failed on its one and only try. */
const failedOnce = (kind: string, status: number, message: string) => ({
  ok: false,
  kind,
  status,
  message,
  attempts: 1,
});

describe('ZooidClient: success paths', () => {
  it('POST, PUT, PATCH, DELETE, each freshly signed for the exact URL', async () => {
    const { emu, client, calls } = await setup();
    const body = minimalBody(1);
    expect(await client.create('r1', body)).toEqual({ ok: true, status: 201, attempts: 1 });
    expect(await client.replace('r1', { ...body, info: { ...(body.info as object), name: 'X' } })).toEqual({
      ok: true,
      status: 200,
      attempts: 1,
    });
    expect(await client.patch('r1', { inactive: true })).toEqual({ ok: true, status: 200, attempts: 1 });
    expect(emu.relays().get('r1')).toMatchObject({
      inactive: true,
      info: { name: 'X' },
      secret: RELAY_SECRET,
    });
    expect(await client.remove('r1')).toEqual({ ok: true, status: 200, attempts: 1 });
    expect(emu.relays().size).toBe(0);

    expect(calls.map((c) => [c.init.method, c.url])).toEqual([
      ['POST', `${emu.url}/relay/r1`],
      ['PUT', `${emu.url}/relay/r1`],
      ['PATCH', `${emu.url}/relay/r1`],
      ['DELETE', `${emu.url}/relay/r1`],
    ]);
    const first = decodeAuth(calls[0]!.init);
    const sent = Buffer.from(calls[0]!.init.body as Uint8Array);
    expect(JSON.parse(sent.toString('utf8'))).toEqual(body);
    expect(first.tags).toEqual([
      ['u', `${emu.url}/relay/r1`],
      ['method', 'POST'],
      ['payload', createHash('sha256').update(sent).digest('hex')],
    ]);
    expect(decodeAuth(calls[3]!.init).tags).toEqual([
      ['u', `${emu.url}/relay/r1`],
      ['method', 'DELETE'],
    ]);
    expect(new Set(calls.map((c) => decodeAuth(c.init).id)).size).toBe(4);
    expect(calls[0]!.init.headers['content-type']).toBe('application/json');
  });

  it('accepts an API URL with a trailing slash and exposes the pubkey', async () => {
    const { emu } = await setup();
    const client = new ZooidClient({ apiUrl: `${emu.url}/`, signer: createNip98Signer(BOSUN_SECRET) });
    expect(client.pubkey).toBe(BOSUN_PUBKEY);
    expect(await client.create('r1', minimalBody(1))).toEqual({ ok: true, status: 201, attempts: 1 });
    expect(() => new ZooidClient({ apiUrl: 'ftp://x', signer: createNip98Signer(BOSUN_SECRET) })).toThrow(
      /http/,
    );
    expect(
      () => new ZooidClient({ apiUrl: 'http://x/?a=1', signer: createNip98Signer(BOSUN_SECRET) }),
    ).toThrow(/query/);
  });
});

describe('ZooidClient: error classification (4xx never retried)', () => {
  it('409 id exists, 409 schema/host conflict, 404 and 409 "relay not found"', async () => {
    const { emu, client } = await setup();
    await client.create('r1', minimalBody(1));
    expect(await client.create('r1', minimalBody(1))).toEqual(
      failedOnce('id_exists', 409, 'relay with this id already exists'),
    );
    expect(await client.create('r2', minimalBody(1))).toEqual(
      failedOnce('conflict', 409, 'schema "r1" is already in use'),
    );
    expect(await client.create('r2', minimalBody(2, { host: 'r1.example.com' }))).toMatchObject({
      kind: 'conflict',
      message: 'host "r1.example.com" is already in use',
    });
    expect(await client.patch('nope', {})).toEqual(
      failedOnce('not_found', 404, 'zooid has no such relay: PATCH answered 404 (relay not found)'),
    );
    expect(await client.remove('nope')).toMatchObject({ kind: 'not_found', status: 404 });
    emu.setFaults({ statusOverride: { PATCH: { status: 409, body: '{"error":"relay not found"}\n' } } });
    expect(await client.patch('r1', {})).toEqual(failedOnce('not_found', 409, 'relay not found'));
    expect(emu.requests.length).toBe(7);
  });

  it('400 is invalid with zooid text; secret-bearing texts are redacted', async () => {
    const { emu, client } = await setup();
    expect(await client.create('r1', { ...minimalBody(1), host: '' })).toEqual(
      failedOnce('invalid', 400, 'host is required'),
    );
    const badSecret = await client.create('r1', { ...minimalBody(1), secret: 'zz' });
    expect(badSecret).toMatchObject({ kind: 'invalid', message: 'invalid secret key' });
    emu.setFaults({
      statusOverride: {
        POST: { status: 400, body: JSON.stringify({ error: `cannot use ${RELAY_SECRET} here` }) },
      },
    });
    const echoed = await client.create('r1', minimalBody(1));
    expect(echoed).toMatchObject({ kind: 'invalid', message: 'cannot use [redacted] here' });
    expect(emu.requests.length).toBe(3);
  });

  it('401 is auth (with a clock hint), 403 tells which pubkey to whitelist', async () => {
    const { emu, clock } = await setup();
    const stale = new ZooidClient({
      apiUrl: emu.url,
      signer: createNip98Signer(BOSUN_SECRET, { clock: new FakeClock(clock.now() - 120_000) }),
    });
    expect(await stale.create('r1', minimalBody(1))).toEqual(
      failedOnce(
        'auth',
        401,
        "zooid rejected bosun's NIP-98 signature: event is outside the allowed time window (check this host clock)",
      ),
    );
    const stranger = new ZooidClient({ apiUrl: emu.url, signer: createNip98Signer(OTHER_SECRET) });
    const res = await stranger.create('r1', minimalBody(1));
    const otherPubkey = createNip98Signer(OTHER_SECRET).pubkey;
    expect(res).toEqual(
      failedOnce('forbidden', 403, `zooid rejected bosun's key: add ${otherPubkey} to API_WHITELIST`),
    );
    expect(emu.requests.length).toBe(2);
  });

  it('a 404 to a POST points at the API URL', async () => {
    const { emu } = await setup();
    const client = new ZooidClient({ apiUrl: `${emu.url}/zooid`, signer: createNip98Signer(BOSUN_SECRET) });
    expect(await client.create('r1', minimalBody(1))).toEqual(
      failedOnce(
        'not_found',
        404,
        `zooid answered 404 to a POST: check that ${emu.url}/zooid reaches zooid's API_HOST (404 page not found)`,
      ),
    );
  });

  it('any 404 is not_found whatever zooid (or a proxy) says; 409 wording is read tolerantly', async () => {
    const { emu, client } = await setup();
    await client.create('r1', minimalBody(1));
    const notFound: Array<{ status: number; body: string; contentType?: string }> = [
      { status: 404, body: 'Not Found\n' },
      { status: 404, body: '{"error":"missing"}\n', contentType: 'application/json' },
      { status: 404, body: '' },
      { status: 404, body: '{"error":{"code":"gone"},"hint":"x"}', contentType: 'application/json' },
      { status: 409, body: '{"error":"no such relay"}' },
    ];
    for (const reply of notFound) {
      for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
        emu.setFaults({ statusOverride: { [method]: reply } });
        const res =
          method === 'PUT'
            ? await client.replace('r1', minimalBody(1))
            : method === 'PATCH'
              ? await client.patch('r1', {})
              : await client.remove('r1');
        expect(res, `${method} ${reply.status} ${reply.body}`).toMatchObject({
          ok: false,
          kind: 'not_found',
          status: reply.status,
        });
      }
    }
    const post409 = async (body: string) => {
      emu.setFaults({ statusOverride: { POST: { status: 409, body } } });
      return client.create('r1', minimalBody(1));
    };
    // POST checks the id before the body: a 409 that names no host or schema is the id.
    expect(await post409('{"error":"duplicate relay id r1"}')).toMatchObject({ kind: 'id_exists' });
    expect(await post409('Conflict')).toMatchObject({ kind: 'id_exists' });
    expect(await post409('{"error":"Host r1.example.com taken"}')).toMatchObject({ kind: 'conflict' });
    expect(await post409('{"error":"schema r1 belongs to relay r0","extra":1}')).toMatchObject({
      kind: 'conflict',
      message: 'schema r1 belongs to relay r0',
    });
    emu.setFaults({ statusOverride: { PATCH: { status: 409, body: '{"error":"HOST IS USED"}' } } });
    expect(await client.patch('r1', {})).toMatchObject({ kind: 'conflict' });
  });

  it('refuses unsafe ids without sending anything', async () => {
    const { emu, client } = await setup();
    const res = await client.create('../etc', minimalBody(1));
    expect(res).toMatchObject({ ok: false, kind: 'invalid', attempts: 0 });
    expect(emu.requests.length).toBe(0);
  });
});

describe('ZooidClient: transient outcomes and weak retries', () => {
  it('5xx and non-JSON garbage are transient and not retried', async () => {
    const { emu, client } = await setup({ faults: { failAll: true, failStatus: 503 } });
    expect(await client.create('r1', minimalBody(1))).toEqual(
      failedOnce('transient', 503, 'zooid answered 503: injected failure'),
    );
    emu.setFaults({
      statusOverride: {
        PUT: { status: 502, body: '<html>bad gateway</html>' },
        PATCH: { status: 200, body: 'OK' },
      },
    });
    expect(await client.replace('r1', minimalBody(1))).toEqual(
      failedOnce('transient', 502, 'zooid answered 502: <html>bad gateway</html>'),
    );
    expect(await client.patch('r1', {})).toEqual(
      failedOnce('transient', 200, 'zooid answered 200 with a non-JSON body: OK'),
    );
    expect(emu.requests.length).toBe(3);
  });

  it('dropped connections are retried with a short backoff on the injected clock', async () => {
    const { emu, client, clock } = await setup({ faults: { dropConnections: 2 } });
    const t0 = clock.now();
    expect(await drive(clock, client.create('r1', minimalBody(1)))).toEqual({
      ok: true,
      status: 201,
      attempts: 3,
    });
    expect(clock.now() - t0).toBe(50 + 100);
    expect(emu.requests.map((r) => r.fault ?? r.status)).toEqual(['drop', 'drop', 201]);
  });

  it('gives up after 5 weak retries (6 attempts) on dropped connections', async () => {
    const { emu, client, clock } = await setup({ faults: { dropConnections: true } });
    const t0 = clock.now();
    const res = await drive(clock, client.patch('r1', {}));
    expect(res).toMatchObject({ ok: false, kind: 'transient', attempts: 6 });
    expect(res.ok ? '' : res.message).toMatch(
      new RegExp(
        `^cannot reach zooid at ${emu.url}: .+ \\((UND_ERR_SOCKET|ECONNRESET|EPIPE)\\) \\(6 attempts\\)$`,
      ),
    );
    expect('status' in res).toBe(false);
    expect(clock.now() - t0).toBe(50 + 100 + 200 + 400 + 800);
    expect(emu.requests.length).toBe(6);
  });

  it('a redirect is an answer, not followed (the signature names one URL); the pool sends only its origin', async () => {
    const hits: string[] = [];
    const server = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      res.writeHead(307, { location: '/elsewhere/relay/r1' }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const client = new ZooidClient({
        apiUrl: url,
        signer: createNip98Signer(BOSUN_SECRET),
        transport: recording(url, () => {}),
      });
      const res = await client.patch('r1', { info: { name: 'x' } });
      expect(res).toMatchObject({ ok: false, kind: 'invalid', status: 307 });
      expect(!res.ok && res.message).toBe(
        'zooid answered 307 redirect to /elsewhere/relay/r1: point the API URL at zooid itself',
      );
      expect(hits).toEqual(['PATCH /relay/r1']);
      const pool = recording(url, () => {});
      await expect(
        pool.request({
          method: 'GET',
          url: 'http://127.0.0.2:1/relay/r1',
          headers: {},
          body: undefined,
          signal: new AbortController().signal,
        }),
      ).rejects.toThrow(/not a URL on/);
      expect(hits).toHaveLength(1);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('an answer body past 64 KiB is not read on (endless, or merely huge): transient, the connection cut', async () => {
    // PUT gets a finite answer over the cap; every other method an endless one.
    const zooid = await endlessAnswer(200, (method, res) => {
      if (method === 'PUT') res.end(`{"message":"${'x'.repeat(100_000)}"}`);
      return method === 'PUT';
    });
    try {
      const client = new ZooidClient({
        apiUrl: zooid.url,
        signer: createNip98Signer(BOSUN_SECRET),
        transport: recording(zooid.url, () => {}),
      });
      const over = failedOnce('transient', 200, 'zooid answered 200 with a body over 65536 bytes (not read)');
      expect(await client.patch('r1', { info: { name: 'x' } })).toEqual(over);
      expect(await client.replace('r1', minimalBody(1))).toEqual(over);
      await until(() => zooid.closed() >= 1, 5_000, 'the endless answer cut');
    } finally {
      await zooid.close();
    }
  });

  it('connection refused: 6 attempts, then transient', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const clock = new FakeClock();
    let fetches = 0;
    const client = new ZooidClient({
      apiUrl: `http://127.0.0.1:${port}`,
      signer: createNip98Signer(BOSUN_SECRET, { clock }),
      clock,
      transport: recording(`http://127.0.0.1:${port}`, () => fetches++),
      weakRetries: 5,
    });
    const res = await drive(clock, client.create('r1', minimalBody(1)));
    expect(res).toEqual({
      ok: false,
      kind: 'transient',
      message: `cannot reach zooid at http://127.0.0.1:${port}: connection refused (ECONNREFUSED) (6 attempts)`,
      attempts: 6,
    });
    expect(fetches).toBe(6);
    expect(JSON.stringify(res)).not.toContain(RELAY_SECRET);
  });

  it('a timeout is transient and not retried (the server may have acted)', async () => {
    const { emu, client, clock } = await setup({ faults: { latencyMs: 3_600_000 } }, { timeoutMs: 10_000 });
    const p = client.create('r1', minimalBody(1));
    while (emu.requests.length === 0) await new Promise((r) => setTimeout(r, 1));
    await clock.advance(9_999);
    let settled = false;
    p.then(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(settled).toBe(false);
    await clock.advance(1);
    expect(await p).toEqual({
      ok: false,
      kind: 'transient',
      message: 'zooid did not answer POST within 10000 ms',
      attempts: 1,
      inDoubt: true,
      settled: expect.any(Promise),
    });
    expect(emu.requests.length).toBe(1);
    // The abandoned request is left open (zooid may still apply it), then cut off at 10 × timeout.
    expect(clock.pending()).toBe(1);
    await clock.advance(100_000);
    const res = await p;
    if (!res.ok) await res.settled;
    expect(clock.pending()).toBe(0);
  });

  it("the caller's signal aborts, during a request or a backoff", async () => {
    const { client, clock, emu } = await setup({ faults: { dropConnections: true } });
    const ac = new AbortController();
    const p = client.create('r1', minimalBody(1), { signal: ac.signal });
    while (clock.pending() < 1 || emu.requests.length < 1) await new Promise((r) => setTimeout(r, 1));
    while ((clock.nextDue() ?? Infinity) - clock.now() > 1000) await new Promise((r) => setTimeout(r, 1));
    ac.abort();
    expect(await p).toEqual({ ok: false, kind: 'transient', message: 'zooid request aborted', attempts: 1 });
    const again = await client.create('r1', minimalBody(1), { signal: ac.signal });
    expect(again).toMatchObject({ kind: 'transient', message: 'zooid request aborted' });
  });

  it('never puts the secret or the Authorization header in a message', async () => {
    const { client, emu } = await setup();
    emu.setFaults({ failAll: true });
    const results = [
      await client.create('r1', minimalBody(1)),
      await client.create('r1', { ...minimalBody(1), secret: 'zz' }),
    ];
    for (const r of results) {
      expect(JSON.stringify(r)).not.toContain(RELAY_SECRET);
      expect(JSON.stringify(r)).not.toContain('Nostr ');
    }
  });
});

describe('zooidBody + patchBody against the emulator', () => {
  it('create with S3, then a PATCH that drops a role and turns blossom off, keeps the secret', async () => {
    const { emu, client } = await setup();
    const s3: BlossomS3 = {
      region: 'eu-1',
      bucket: 'media',
      accessKey: 'AK',
      secretKey: 'SK',
      endpoint: 'http://minio:9000',
    };
    const v1 = relayConfigSchema.parse({
      host: 'r1.example.com',
      schema: 'r1',
      info: { name: 'R1', pubkey: OWNER_PUBKEY },
      blossom: { enabled: true },
      roles: { admin: { pubkeys: [ADMIN_PUBKEY], can_manage: true }, member: { can_invite: true } },
    });
    const created = zooidBody({ config: v1, secret: RELAY_SECRET }, { withSecret: true, blossomS3: s3 });
    expect(await client.create('r1', created)).toMatchObject({ ok: true, status: 201 });
    expect(emu.relays().get('r1')?.blossom).toEqual({
      enabled: true,
      authenticated_read: false,
      adapter: 's3',
      s3: {
        region: 'eu-1',
        bucket: 'media',
        access_key: 'AK',
        secret_key: 'SK',
        endpoint: 'http://minio:9000',
        key_prefix: 'r1',
      },
    });

    const v2 = relayConfigSchema.parse({
      ...v1,
      blossom: { enabled: false },
      roles: { member: { can_invite: true } },
    });
    const next = zooidBody({ config: v2, secret: RELAY_SECRET }, { withSecret: false, blossomS3: s3 });
    const patch = patchBody(created, next);
    expect(patch.roles).toEqual({
      admin: null,
      member: { pubkeys: [], can_invite: true, can_manage: false },
    });
    expect(JSON.stringify(patch)).not.toContain(RELAY_SECRET);
    expect(await client.patch('r1', patch)).toMatchObject({ ok: true, status: 200 });
    const stored = emu.relays().get('r1')!;
    expect(stored.secret).toBe(RELAY_SECRET);
    expect(Object.keys(stored.roles)).toEqual(['member']);
    expect(stored.blossom).toEqual({
      enabled: false,
      authenticated_read: false,
      adapter: 'local',
      s3: { region: '', bucket: '', access_key: '', secret_key: '', endpoint: '', key_prefix: '' },
    });
    expect(emu.accepted('r1').map((a) => a.method)).toEqual(['POST', 'PATCH']);
  });
});
