import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { beforeEach, describe, expect, it } from 'vitest';
import { publicKeyOf } from '../../../src/domain/keys.js';
import { createNip98Signer } from '../../../src/nostr/nip98.js';
import { runZooidEmulatorCli, type ZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { FakeClock, settle } from '../../support/clock.js';
import {
  ADMIN_PUBKEY,
  BOSUN_PUBKEY,
  BOSUN_SECRET,
  call,
  minimalBody,
  nip11,
  OWNER_PUBKEY,
  type RawRequest,
  RELAY_SECRET,
  raw,
  relayApi,
  useEmulators,
} from './helpers.js';

const { start, track, tempDir } = useEmulators('zooid-emu-');

const post = (emu: ZooidEmulator, id: string, body: RawRequest['body']) => relayApi(emu, 'POST', id, body);
const expectError = async (p: Promise<{ status: number; json: unknown }>, status: number, error: string) => {
  const res = await p;
  expect({ status: res.status, json: res.json }).toEqual({ status, json: { error } });
};

describe('validation order and texts (V2, the default)', () => {
  let emu: ZooidEmulator;
  beforeEach(async () => {
    emu = await start();
  });

  it('checks host, schema, schema format, secret, info.pubkey, then blossom adapter', async () => {
    expect(emu.variant).toBe('v2');
    await expectError(post(emu, 'x', {}), 400, 'host is required');
    await expectError(post(emu, 'x', { schema: 'x' }), 400, 'host is required');
    await expectError(post(emu, 'x', { host: 'h', secret: 'zz' }), 400, 'schema is required');
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'Bad', secret: 'zz' }),
      400,
      'schema must contain only lowercase letters, numbers, and underscores',
    );
    await expectError(
      post(emu, 'x', { host: 'h', schema: '9a' }),
      400,
      'schema must contain only lowercase letters, numbers, and underscores',
    );
    const noSecret = await post(emu, 'x', { host: 'h', schema: 'ok' });
    expect(noSecret.status).toBe(400);
    expect((noSecret.json as { error: string }).error).toMatch(/^invalid secret key: /);
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'ok', secret: 'zz' }),
      400,
      "invalid secret key: encoding/hex: invalid byte: U+007A 'z'",
    );
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'ok', secret: '000' }),
      400,
      'invalid secret key: secret key is zero',
    );
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'ok', secret: '1' }),
      400,
      "invalid info.pubkey: pubkey should be 64-char hex, got ''",
    );
    const notAPoint = '0'.repeat(63) + '5';
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'ok', secret: '1', info: { pubkey: notAPoint } }),
      400,
      `invalid info.pubkey: '${notAPoint}' is not a valid pubkey`,
    );
    const base = { host: 'h', schema: 'ok', secret: '1', info: { pubkey: OWNER_PUBKEY } };
    await expectError(
      post(emu, 'x', { ...base, blossom: { enabled: true, adapter: 's3' } }),
      400,
      'blossom.s3.bucket is required when blossom.adapter is s3',
    );
    await expectError(
      post(emu, 'x', {
        ...base,
        blossom: { adapter: 's3', s3: { bucket: 'b', region: 'r', access_key: 'a' } },
      }),
      400,
      'blossom.s3.secret_key is required when blossom.adapter is s3',
    );
    await expectError(
      post(emu, 'x', { ...base, blossom: { adapter: 'gcs' } }),
      400,
      'invalid blossom adapter',
    );
    expect(emu.relays().size).toBe(0);
    const ok = await post(emu, 'x', base);
    expect([ok.status, ok.text]).toEqual([201, '{"message":"relay created successfully"}\n']);
    const stored = emu.relays().get('x')!;
    expect(stored.secret).toBe('1');
    expect(stored.blossom).toEqual({
      enabled: false,
      authenticated_read: false,
      adapter: 'local',
      s3: { region: '', bucket: '', access_key: '', secret_key: '', endpoint: '', key_prefix: '' },
    });
  });

  it('never validates host format, roles or livekit', async () => {
    const res = await post(emu, 'y', {
      ...minimalBody(1, { host: 'NOT a host!' }),
      roles: { admin: { pubkeys: ['npub-not-hex'] } },
      livekit: { server_url: '::' },
    });
    expect(res.status).toBe(201);
    expect(emu.relays().get('y')?.roles).toEqual({
      admin: { pubkeys: ['npub-not-hex'], can_invite: false, can_manage: false },
    });
  });

  it('decodes like Go: case-insensitive keys, unknown keys ignored, missing keys zero', async () => {
    const res = await post(emu, 'go', {
      HOST: 'go.example.com',
      Schema: 'go',
      secret: RELAY_SECRET,
      Info: { PubKey: OWNER_PUBKEY, unknown: 1 },
      whatever: { deep: true },
    });
    expect(res.status).toBe(201);
    expect(emu.relays().get('go')).toEqual({
      host: 'go.example.com',
      schema: 'go',
      secret: RELAY_SECRET,
      inactive: false,
      info: { name: '', icon: '', description: '', pubkey: OWNER_PUBKEY },
      policy: { public_join: false, strip_signatures: false },
      groups: { enabled: false },
      management: { enabled: false },
      blossom: {
        enabled: false,
        authenticated_read: false,
        adapter: 'local',
        s3: { region: '', bucket: '', access_key: '', secret_key: '', endpoint: '', key_prefix: '' },
      },
      livekit: { server_url: '', api_key: '', api_secret: '' },
      push: { enabled: false },
      roles: {},
    });
  });

  it('reports type and syntax errors as invalid json config', async () => {
    await expectError(
      post(emu, 'x', { host: 5 }),
      400,
      'invalid json config: json: cannot unmarshal number into Go struct field Config.host of type string',
    );
    await expectError(
      post(emu, 'x', { info: { name: true } }),
      400,
      'invalid json config: json: cannot unmarshal bool into Go struct field Info.info.name of type string',
    );
    await expectError(
      post(emu, 'x', [1]),
      400,
      'invalid json config: json: cannot unmarshal array into Go value of type zooid.Config',
    );
    await expectError(post(emu, 'x', '{"host":'), 400, 'invalid json config: unexpected end of JSON input');
    await expectError(
      post(emu, 'x', 'xyz'),
      400,
      "invalid json config: invalid character 'x' looking for beginning of value",
    );
    await expectError(post(emu, 'x', ''), 400, 'invalid json config: unexpected end of JSON input');
  });

  it('limits bodies to 1 MiB with a 400, and checks id existence before reading the body', async () => {
    const body = JSON.stringify(minimalBody(1));
    const exact = body + ' '.repeat((1 << 20) - body.length);
    expect(Buffer.byteLength(exact)).toBe(1 << 20);
    expect((await post(emu, 'big', exact)).status).toBe(201);
    await expectError(
      post(emu, 'big2', `${exact} `),
      400,
      'failed to read body: http: request body too large',
    );
    await expectError(post(emu, 'big', `${exact} `), 409, 'relay with this id already exists');
    await expectError(post(emu, 'big', 'garbage'), 409, 'relay with this id already exists');
    await expectError(
      call(emu, 'PUT', '/relay/big', `${exact} `),
      400,
      'failed to read body: http: request body too large',
    );
    await expectError(call(emu, 'PUT', '/relay/none', 'garbage'), 404, 'relay not found');
  });
});

describe('uniqueness', () => {
  it('schema first, then host, against every other relay (inactive too), in file-name order', async () => {
    const emu = await start();
    expect((await post(emu, 'b', minimalBody(1, { inactive: true }))).status).toBe(201);
    expect((await post(emu, 'c', minimalBody(2))).status).toBe(201);
    await expectError(post(emu, 'x', minimalBody(1)), 409, 'schema "r1" is already in use');
    await expectError(
      post(emu, 'x', minimalBody(9, { host: 'r1.example.com' })),
      409,
      'host "r1.example.com" is already in use',
    );
    // c's schema and b's host: b.toml is checked first
    await expectError(
      post(emu, 'x', minimalBody(2, { host: 'r1.example.com' })),
      409,
      'host "r1.example.com" is already in use',
    );
    // case-sensitive
    expect((await post(emu, 'x', minimalBody(9, { host: 'R1.example.com' }))).status).toBe(201);
    // a relay may keep its own host and schema on PUT and PATCH
    expect(
      (await call(emu, 'PUT', '/relay/c', minimalBody(2, { info: { name: 'new', pubkey: OWNER_PUBKEY } })))
        .status,
    ).toBe(200);
    expect((await call(emu, 'PATCH', '/relay/c', { host: 'r2.example.com' })).status).toBe(200);
    await expectError(call(emu, 'PATCH', '/relay/c', { schema: 'r1' }), 409, 'schema "r1" is already in use');
    await expectError(call(emu, 'PUT', '/relay/c', minimalBody(1)), 409, 'schema "r1" is already in use');
    expect(emu.relays().get('c')?.info.name).toBe('new');
  });
});

describe('PUT, PATCH, DELETE', () => {
  let emu: ZooidEmulator;
  beforeEach(async () => {
    emu = await start();
    const res = await post(emu, 'r1', {
      ...minimalBody(1),
      blossom: {
        enabled: true,
        adapter: 's3',
        s3: { region: 'r', bucket: 'b', access_key: 'a', secret_key: 's', key_prefix: 'r1' },
      },
      roles: { admin: { pubkeys: [ADMIN_PUBKEY], can_manage: true }, member: { can_invite: true } },
    });
    expect(res.status).toBe(201);
  });

  it('PUT replaces the whole config and needs the secret', async () => {
    const noSecret = await call(emu, 'PUT', '/relay/r1', {
      host: 'r1.example.com',
      schema: 'r1',
      info: { pubkey: OWNER_PUBKEY },
    });
    expect(noSecret.status).toBe(400);
    expect((noSecret.json as { error: string }).error).toMatch(/^invalid secret key: /);
    const res = await call(emu, 'PUT', '/relay/r1', minimalBody(1));
    expect([res.status, res.text]).toEqual([200, '{"message":"relay updated successfully"}\n']);
    const c = emu.relays().get('r1')!;
    expect(c.roles).toEqual({});
    expect(c.blossom.adapter).toBe('local');
    await expectError(call(emu, 'PUT', '/relay/r9', minimalBody(9)), 404, 'relay not found');
  });

  it('PATCH deep-merges: null deletes, objects recurse, arrays replace, secret kept', async () => {
    const res = await call(emu, 'PATCH', '/relay/r1', {
      info: { name: 'Renamed' },
      roles: { admin: null, mod: { pubkeys: [OWNER_PUBKEY] } },
      blossom: { adapter: null, s3: null, enabled: false },
      inactive: true,
    });
    expect([res.status, res.text]).toEqual([200, '{"message":"relay patched successfully"}\n']);
    const c = emu.relays().get('r1')!;
    expect(c.info).toEqual({ name: 'Renamed', icon: '', description: '', pubkey: OWNER_PUBKEY });
    expect(c.roles).toEqual({
      member: { pubkeys: [], can_invite: true, can_manage: false },
      mod: { pubkeys: [OWNER_PUBKEY], can_invite: false, can_manage: false },
    });
    expect(c.blossom).toEqual({
      enabled: false,
      authenticated_read: false,
      adapter: 'local',
      s3: { region: '', bucket: '', access_key: '', secret_key: '', endpoint: '', key_prefix: '' },
    });
    expect(c.inactive).toBe(true);
    expect(c.secret).toBe(RELAY_SECRET);
    await call(emu, 'PATCH', '/relay/r1', { roles: { mod: { pubkeys: [ADMIN_PUBKEY] } }, inactive: null });
    const d = emu.relays().get('r1')!;
    expect(d.roles.mod).toEqual({ pubkeys: [ADMIN_PUBKEY], can_invite: false, can_manage: false });
    expect(d.inactive).toBe(false);
    expect((await call(emu, 'PATCH', '/relay/r1', 'null')).status).toBe(200);
  });

  it('PATCH errors: 404 first, non-object body, merged type error (raw), validation', async () => {
    await expectError(call(emu, 'PATCH', '/relay/none', '[1]'), 404, 'relay not found');
    await expectError(
      call(emu, 'PATCH', '/relay/r1', [1]),
      400,
      'invalid json: json: cannot unmarshal array into Go value of type map[string]interface {}',
    );
    await expectError(
      call(emu, 'PATCH', '/relay/r1', '{'),
      400,
      'invalid json: unexpected end of JSON input',
    );
    await expectError(
      call(emu, 'PATCH', '/relay/r1', { host: 5 }),
      400,
      'json: cannot unmarshal number into Go struct field Config.host of type string',
    );
    await expectError(call(emu, 'PATCH', '/relay/r1', { host: null }), 400, 'host is required');
    await expectError(
      call(emu, 'PATCH', '/relay/r1', { blossom: { s3: { bucket: '' } } }),
      400,
      'blossom.s3.bucket is required when blossom.adapter is s3',
    );
    expect(emu.relays().get('r1')?.host).toBe('r1.example.com');
  });

  it('patchClearsSecret models the inferred V2 loader: PATCH then needs the secret', async () => {
    const strict = await start({ patchClearsSecret: true });
    expect((await post(strict, 'r1', minimalBody(1))).status).toBe(201);
    const res = await call(strict, 'PATCH', '/relay/r1', { inactive: true });
    expect(res.status).toBe(400);
    expect((res.json as { error: string }).error).toMatch(/^invalid secret key: /);
    expect((await call(strict, 'PATCH', '/relay/r1', { inactive: true, secret: RELAY_SECRET })).status).toBe(
      200,
    );
  });

  it('DELETE removes the relay; then 404', async () => {
    const res = await call(emu, 'DELETE', '/relay/r1');
    expect([res.status, res.text]).toEqual([200, '{"message":"relay deleted successfully"}\n']);
    expect(emu.relays().has('r1')).toBe(false);
    await expectError(call(emu, 'DELETE', '/relay/r1'), 404, 'relay not found');
    await expectError(call(emu, 'PATCH', '/relay/r1', {}), 404, 'relay not found');
    expect((await post(emu, 'r1', minimalBody(1))).status).toBe(201);
  });

  it('keeps the accepted bodies per relay, in order', async () => {
    await call(emu, 'PATCH', '/relay/r1', { inactive: true });
    await call(emu, 'PATCH', '/relay/r1', { host: 5 });
    await call(emu, 'DELETE', '/relay/r1');
    const history = emu.accepted('r1');
    expect(history.map((h) => h.method)).toEqual(['POST', 'PATCH', 'DELETE']);
    expect(history[1]?.body).toEqual({ inactive: true });
    expect(history[1]?.config?.inactive).toBe(true);
    expect(history[2]).toMatchObject({ body: null, config: null });
    expect(emu.accepted('nope')).toEqual([]);
  });
});

describe('routing', () => {
  it('V2: unmatched paths and wrong methods answer plain text without auth', async () => {
    const emu = await start();
    const notFound = await raw(emu.url, { method: 'POST', path: '/foo' });
    expect([notFound.status, notFound.text, notFound.headers['content-type']]).toEqual([
      404,
      '404 page not found\n',
      'text/plain; charset=utf-8',
    ]);
    expect((await raw(emu.url, { method: 'POST', path: '/relay/' })).status).toBe(404);
    expect((await raw(emu.url, { method: 'POST', path: '/relay/a/b' })).status).toBe(404);
    const wrong = await raw(emu.url, { method: 'GET', path: '/relay/a' });
    expect([wrong.status, wrong.text, wrong.headers.allow]).toEqual([
      405,
      'Method Not Allowed\n',
      'DELETE, PATCH, POST, PUT',
    ]);
    const wrongMembers = await raw(emu.url, { method: 'POST', path: '/relay/a/members' });
    expect([wrongMembers.status, wrongMembers.headers.allow]).toEqual([405, 'GET, HEAD']);
    await expectError(
      raw(emu.url, { method: 'POST', path: '/relay/a' }),
      401,
      'missing authorization header',
    );
  });

  it('V2: GET /relay/{id}/members lists owner and role pubkeys, sorted, behind auth', async () => {
    const emu = await start();
    await post(emu, 'm', {
      ...minimalBody(1),
      roles: { admin: { pubkeys: [ADMIN_PUBKEY, OWNER_PUBKEY] }, member: { pubkeys: ['ff'] } },
    });
    const res = await call(emu, 'GET', '/relay/m/members');
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ members: [ADMIN_PUBKEY, OWNER_PUBKEY].sort() });
    await expectError(call(emu, 'GET', '/relay/zz/members'), 404, 'relay not found');
    await expectError(
      raw(emu.url, { method: 'GET', path: '/relay/m/members' }),
      401,
      'missing authorization header',
    );
  });

  it('V1: auth before routing, then JSON 404/400/405; extra segments ignored; no members route', async () => {
    const emu = await start({ variant: 'v1' });
    await expectError(raw(emu.url, { method: 'POST', path: '/foo' }), 401, 'missing authorization header');
    await expectError(call(emu, 'POST', '/foo'), 404, 'not found');
    await expectError(call(emu, 'POST', '/relay'), 404, 'not found');
    await expectError(call(emu, 'POST', '/relay/'), 400, 'relay id is required');
    await expectError(call(emu, 'GET', '/relay/x'), 405, 'method not allowed');
    await expectError(call(emu, 'GET', '/relay/x/members'), 405, 'method not allowed');
    expect((await call(emu, 'POST', '/relay/x/extra', minimalBody(1))).status).toBe(201);
    expect(emu.relays().has('x')).toBe(true);
  });

  it('only the API host reaches the API; other hosts reach relays', async () => {
    const emu = await start({ apiHost: 'api.zooid.test' });
    expect(emu.apiHost).toBe('api.zooid.test');
    const res = await call(emu, 'POST', '/relay/a', minimalBody(1), { host: 'api.zooid.test' });
    expect(res.status).toBe(201);
    const byIp = await post(emu, 'b', minimalBody(2));
    expect(byIp.status).toBe(404);
    expect(emu.requests.length).toBe(1);
    const doc = await nip11(emu, 'r1.example.com');
    expect(doc.status).toBe(200);
    expect(doc.json).toMatchObject({ name: 'R1', pubkey: OWNER_PUBKEY, self: publicKeyOf(RELAY_SECRET) });
  });
});

describe('variants V1 and V1p', () => {
  it("V1 requires the secret by name, accepts any schema and no pubkey, and drops V2's blossom keys", async () => {
    const emu = await start({ variant: 'v1' });
    await expectError(post(emu, 'x', { host: 'h', schema: 'Bad-Schema' }), 400, 'secret is required');
    const res = await post(emu, 'x', {
      host: 'h',
      schema: 'Bad-Schema',
      secret: RELAY_SECRET,
      blossom: { enabled: true, adapter: 's3', authenticated_read: true },
    });
    expect(res.status).toBe(201);
    expect(emu.relays().get('x')?.blossom).toEqual({ enabled: true });
    expect(emu.relays().get('x')?.info.pubkey).toBe('');
    await expectError(
      post(emu, 'y', { host: 'h2', schema: 's2', secret: RELAY_SECRET, info: { pubkey: 'abc' } }),
      400,
      "invalid info.pubkey: pubkey should be 64-char hex, got 'abc'",
    );
    // PATCH without the secret keeps the stored one
    expect((await call(emu, 'PATCH', '/relay/x', { inactive: true })).status).toBe(200);
    expect(emu.relays().get('x')?.secret).toBe(RELAY_SECRET);
  });

  it('V1p requires info.pubkey and a letters/digits/underscore schema (any case)', async () => {
    const emu = await start({ variant: 'v1p' });
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'bad-x', secret: RELAY_SECRET }),
      400,
      'schema must contain only letters, numbers, and underscores',
    );
    await expectError(
      post(emu, 'x', { host: 'h', schema: 'Good_1', secret: RELAY_SECRET }),
      400,
      'info.pubkey is required',
    );
    expect(
      (
        await post(emu, 'x', {
          host: 'h',
          schema: 'Good_1',
          secret: RELAY_SECRET,
          info: { pubkey: OWNER_PUBKEY },
        })
      ).status,
    ).toBe(201);
  });
});

describe('TOML storage', () => {
  it('writes <id>.toml with every field, reloads it on restart, removes it on DELETE', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'broken.toml'), 'this is = = not toml');
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const emu = await start({ configDir: dir });
    expect(emu.dir).toBe(dir);
    expect(
      (
        await post(emu, 'r1', {
          ...minimalBody(1),
          roles: { admin: { pubkeys: [ADMIN_PUBKEY], can_manage: true } },
        })
      ).status,
    ).toBe(201);
    const file = join(dir, 'r1.toml');
    const text = readFileSync(file, 'utf8');
    expect(text).toContain(`secret = "${RELAY_SECRET}"`);
    expect(text).toContain('inactive = false');
    expect(text).toContain('[roles.admin]');
    expect(parseToml(text)).toEqual(emu.relays().get('r1'));
    await emu.close();

    const again = await start({ configDir: dir });
    expect([...again.relays().keys()]).toEqual(['r1']);
    await expectError(post(again, 'r1', minimalBody(1)), 409, 'relay with this id already exists');
    await expectError(post(again, 'r2', minimalBody(1)), 409, 'schema "r1" is already in use');
    expect((await call(again, 'DELETE', '/relay/r1')).status).toBe(200);
    expect(existsSync(file)).toBe(false);
  });
  it('keeps relay secrets private: a directory it creates is 0700, every file 0600 (also one that was 0644)', async () => {
    const dir = join(tempDir(), 'zooid-config');
    const emu = await start({ configDir: dir });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect((await post(emu, 'r1', minimalBody(1))).status).toBe(201);
    expect(statSync(join(dir, 'r1.toml')).mode & 0o777).toBe(0o600);
    chmodSync(join(dir, 'r1.toml'), 0o644);
    expect((await call(emu, 'PATCH', '/relay/r1', { info: { name: 'again' } })).status).toBe(200);
    expect(statSync(join(dir, 'r1.toml')).mode & 0o777).toBe(0o600);
  });

  it("git ignores the demo's config directory and the SQLite data directory", () => {
    const root = join(import.meta.dirname, '..', '..');
    const ignored = execFileSync(
      'git',
      ['check-ignore', 'zooid-config/r1.toml', 'data/bosun.db', 'data/admin-token'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(ignored.trim().split('\n')).toEqual(['zooid-config/r1.toml', 'data/bosun.db', 'data/admin-token']);
  });
});

describe('fault injection', () => {
  it('latency on the emulator clock', async () => {
    const clock = new FakeClock();
    const emu = await start({ clock, faults: { latencyMs: 5_000 } });
    const s = createNip98Signer(BOSUN_SECRET, { clock });
    let done = false;
    const p = raw(emu.url, { method: 'POST', path: '/relay/l1', body: minimalBody(1), signer: s }).then(
      (r) => {
        done = true;
        return r;
      },
    );
    while (clock.pending() === 0) await settle();
    await clock.advance(4_999);
    expect(done).toBe(false);
    await clock.advance(1);
    expect((await p).status).toBe(201);
  });

  it('errorRate with the injected rng, failStatus, failAll, statusOverride, dropConnections; setFaults replaces', async () => {
    const rolls = [0.1, 0.9, 0.5];
    const emu = await start({ rng: () => rolls.shift() ?? 0.99 });
    emu.setFaults({ errorRate: 0.5, failStatus: 503 });
    await expectError(post(emu, 'e1', minimalBody(1)), 503, 'injected failure');
    expect((await post(emu, 'e1', minimalBody(1))).status).toBe(201);
    expect((await post(emu, 'e2', minimalBody(2))).status).toBe(201); // 0.5 is not < 0.5
    expect(emu.requests.map((r) => [r.status, r.fault])).toEqual([
      [503, 'error'],
      [201, null],
      [201, null],
    ]);

    emu.setFaults({ failAll: true });
    await expectError(call(emu, 'DELETE', '/relay/e1'), 500, 'injected failure');
    expect(emu.relays().has('e1')).toBe(true);

    emu.setFaults({
      statusOverride: {
        PATCH: 409,
        PUT: { status: 502, body: '<html>bad gateway</html>', contentType: 'text/html' },
      },
    });
    await expectError(call(emu, 'PATCH', '/relay/e1', {}), 409, 'injected');
    const put = await call(emu, 'PUT', '/relay/e1', minimalBody(1));
    expect([put.status, put.text, put.headers['content-type']]).toEqual([
      502,
      '<html>bad gateway</html>',
      'text/html',
    ]);
    expect((await call(emu, 'DELETE', '/relay/e2')).status).toBe(200);

    emu.setFaults({ dropConnections: 2 });
    await expect(post(emu, 'd1', minimalBody(3))).rejects.toThrow();
    await expect(post(emu, 'd1', minimalBody(3))).rejects.toThrow();
    expect((await post(emu, 'd1', minimalBody(3))).status).toBe(201);
    expect(emu.requests.slice(-3).map((r) => [r.status, r.fault])).toEqual([
      [0, 'drop'],
      [0, 'drop'],
      [201, null],
    ]);
    emu.setFaults({ dropConnections: true });
    await expect(post(emu, 'd2', minimalBody(4))).rejects.toThrow();
    await expect(post(emu, 'd2', minimalBody(4))).rejects.toThrow();
    emu.setFaults({});
    expect((await post(emu, 'd2', minimalBody(4))).status).toBe(201);
  });

  it('tracks concurrent requests per relay', async () => {
    const clock = new FakeClock();
    const emu = await start({ clock, faults: { latencyMs: 100 } });
    const s = createNip98Signer(BOSUN_SECRET, { clock });
    const send = (id: string, n: number) =>
      raw(emu.url, { method: 'POST', path: `/relay/${id}`, body: minimalBody(n), signer: s });
    const all = Promise.all([send('a', 1), send('a', 1), send('b', 2)]);
    while (clock.pending() < 3) await settle();
    await clock.advance(100);
    const statuses = (await all).map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 409]);
    expect(emu.maxConcurrentPerRelay('a')).toBe(2);
    expect(emu.maxConcurrentPerRelay('b')).toBe(1);
    expect(emu.maxConcurrentPerRelay()).toBe(2);
    expect(emu.maxConcurrentPerRelay('none')).toBe(0);
  });

  it('logs each request with method, id, body, time and status', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1));
    const emu = await start({ clock });
    const s = createNip98Signer(BOSUN_SECRET, { clock });
    await raw(emu.url, { method: 'POST', path: '/relay/l1?x=1', body: minimalBody(1), signer: s });
    await raw(emu.url, { method: 'DELETE', path: '/relay/l1', signer: s });
    expect(emu.requests).toEqual([
      {
        method: 'POST',
        path: '/relay/l1',
        id: 'l1',
        body: minimalBody(1),
        at: Date.UTC(2026, 5, 1),
        status: 201,
        pubkey: BOSUN_PUBKEY,
        fault: null,
      },
      {
        method: 'DELETE',
        path: '/relay/l1',
        id: 'l1',
        body: null,
        at: Date.UTC(2026, 5, 1),
        status: 200,
        pubkey: BOSUN_PUBKEY,
        fault: null,
      },
    ]);
  });
});

describe('record: false', () => {
  it('keeps no request log or history but still tracks concurrency', async () => {
    const emu = await start({ record: false });
    expect((await post(emu, 'n1', minimalBody(1))).status).toBe(201);
    expect(emu.requests).toEqual([]);
    expect(emu.accepted('n1')).toEqual([]);
    expect(emu.maxConcurrentPerRelay('n1')).toBe(1);
    expect(emu.relays().has('n1')).toBe(true);
  });
});

describe('runZooidEmulatorCli', () => {
  const lines: string[] = [];

  it('starts, prints one JSON line with the URL, and rejects bad whitelists', async () => {
    const dir = tempDir();
    const emu = track(
      await runZooidEmulatorCli({
        port: '0',
        whitelist: `${BOSUN_PUBKEY}, ${ADMIN_PUBKEY}`,
        configDir: dir,
        log: (l) => lines.push(l),
      }),
    );
    expect(lines.length).toBe(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      level: 'info',
      msg: 'zooid emulator listening',
      url: emu.url,
      api_host: emu.apiHost,
      variant: 'v2',
      whitelist: [BOSUN_PUBKEY, ADMIN_PUBKEY],
      config_dir: dir,
    });
    expect(emu.pubkeysAllowed).toEqual([BOSUN_PUBKEY, ADMIN_PUBKEY]);
    expect((await post(emu, 'c1', minimalBody(1))).status).toBe(201);
    expect(existsSync(join(dir, 'c1.toml'))).toBe(true);
    await expect(runZooidEmulatorCli({ whitelist: 'npub1xyz' })).rejects.toThrow(/npub never matches/);
    await expect(runZooidEmulatorCli({ whitelist: '' })).rejects.toThrow(/at least one/);
    await expect(runZooidEmulatorCli({ whitelist: BOSUN_PUBKEY, port: 'x' })).rejects.toThrow(/--port/);
  });
});
