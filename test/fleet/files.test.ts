import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_FILE_BYTES, MAX_FLEET_RELAYS } from '../../src/domain/fleet/spec.js';
import { SyncError } from '../../src/fleet/errors.js';
import { locateLine, readFleetDir } from '../../src/fleet/files.js';
import { tempDir } from '../support/env.js';
import { manifest, PUBKEY, relayFile, writeFleet } from './helpers.js';

const root = tempDir('bosun-fleet-files-');
afterAll(() => root.cleanup());
let n = 0;
const fresh = (m: string, relays: Record<string, string>) =>
  writeFleet(join(root.path, `f${n++}`), m, relays);

/** The SyncError reading `dir` throws, as `resource: description`. */
function failure(dir: string): SyncError {
  try {
    readFleetDir(dir);
  } catch (err) {
    expect(err).toBeInstanceOf(SyncError);
    return err as SyncError;
  }
  throw new Error(`expected ${dir} to be refused`);
}

describe('fleet files', () => {
  it('reads the example fleet: defaults merged under each relay file, files in name order', () => {
    const fleet = readFleetDir('examples/fleet');
    expect(fleet.name).toBe('example');
    expect(fleet.resolved.relays.map((r) => [r.name, r.id])).toEqual([
      ['archive', 'archive'],
      ['community', 'community'],
      ['team', 'team'],
    ]);
    const [archive, community, team] = fleet.resolved.relays;
    expect(archive!.fields).toMatchObject({
      inactive: true,
      blossom: { enabled: false },
      info: { pubkey: PUBKEY },
    });
    expect(community!.fields).toMatchObject({ policy: { public_join: true }, blossom: { enabled: true } });
    expect(team!.fields).toMatchObject({ policy: { public_join: false }, management: { enabled: true } });
    expect(team!.fields!.secret).toBeUndefined();
  });

  it('takes the id from the file name unless the file sets one', () => {
    const dir = fresh(manifest('edge'), {
      'alpha.toml': relayFile('a.example.com'),
      'Beta Relay.toml': relayFile('b.example.com', 'id = "beta"\n'),
      'notes.md': 'not a relay',
    });
    expect(readFleetDir(dir).resolved.relays.map((r) => [r.name, r.id])).toEqual([
      ['Beta Relay', 'beta'],
      ['alpha', 'alpha'],
    ]);
  });

  it('names the file, line and field of invalid TOML', () => {
    const dir = fresh(manifest('edge'), { 'r1.toml': 'host = "r1.example.com"\n[info]\nname = \n' });
    const err = failure(dir);
    expect(err.resource).toBe(join(dir, 'r1.toml:3'));
    expect(err.description).toMatch(/^invalid TOML: /);
  });

  it('names the file, line and field of an unknown field, a wrong value and a missing field', () => {
    const dir = fresh(manifest('edge'), {
      'r1.toml': relayFile('r1.example.com', '\n[policy]\npublic_join = true\ncolour = "red"\n'),
    });
    const unknown = failure(dir);
    expect(unknown.message).toBe(`${join(dir, 'r1.toml')}:5: policy.colour: unknown field`);

    writeFileSync(
      join(dir, 'r1.toml'),
      relayFile('r1.example.com', '\n[info]\nname = "R1"\npubkey = "nope"\n'),
    );
    expect(failure(dir).message).toMatch(
      new RegExp(`^${join(dir, 'r1.toml')}:5: info.pubkey: must be a 64-character lowercase hex`),
    );

    writeFileSync(join(dir, 'r1.toml'), '[info]\nname = "R1"\n');
    expect(failure(dir).message).toBe(`${join(dir, 'r1.toml')}: host: is required`);

    writeFileSync(join(dir, 'r1.toml'), relayFile('r1.example.com', 'fleet = "other"\n'));
    expect(failure(dir).message).toBe(
      `${join(dir, 'r1.toml')}:2: fleet: unknown field (fleet.toml names the fleet of every relay file)`,
    );
  });

  it('names fleet.toml, its line and field for bad defaults or a bad name', () => {
    const bad = fresh(manifest('edge', '[defaults]\nhost = "x.example.com"\n'), {});
    expect(failure(bad).message).toBe(`${join(bad, 'fleet.toml')}:4: defaults.host: unknown field`);
    const badType = fresh(manifest('edge', '[defaults.policy]\npublic_join = "yes"\n'), {});
    expect(failure(badType).message).toMatch(
      new RegExp(`^${join(badType, 'fleet.toml')}:4: defaults.policy.public_join: expected boolean`),
    );
    const badName = fresh('name = "Edge Fleet"\n', {});
    expect(failure(badName).message).toMatch(
      new RegExp(`^${join(badName, 'fleet.toml')}:1: name: must match`),
    );
    const missing = fresh('', {});
    expect(failure(missing).message).toBe(`${join(missing, 'fleet.toml')}: name: is required`);
  });

  it('refuses a directory without fleet.toml, or that does not exist', () => {
    const dir = fresh('', {});
    writeFleet(dir, '', {});
    rmSync(join(dir, 'fleet.toml'));
    expect(failure(dir).message).toMatch(/fleet\.toml: is missing/);
    expect(failure(join(root.path, 'nowhere')).message).toMatch(/cannot read the fleet directory \(ENOENT\)/);
  });

  it('refuses duplicate ids and hosts across files, naming both', () => {
    const ids = fresh(manifest('edge'), {
      'a.toml': relayFile('a.example.com', 'id = "b"\n'),
      'b.toml': relayFile('b.example.com'),
    });
    expect(failure(ids).message).toBe(
      `${join(ids, 'b.toml')}: id: "b" is also the id of ${join(ids, 'a.toml')}`,
    );
    const hosts = fresh(manifest('edge'), {
      'a.toml': relayFile('same.example.com'),
      'b.toml': relayFile('same.example.com'),
    });
    expect(failure(hosts).message).toBe(
      `${join(hosts, 'b.toml')}:1: host: "same.example.com" is also the host of ${join(hosts, 'a.toml')}`,
    );
  });

  it('refuses a file name that is not an id when the file sets none', () => {
    const dir = fresh(manifest('edge'), { 'My Relay.toml': relayFile('m.example.com') });
    expect(failure(dir).message).toMatch(
      /My Relay\.toml: id: the file name "My Relay" is not a valid relay id/,
    );
  });

  it(`refuses files over ${MAX_FILE_BYTES} bytes and fleets over ${MAX_FLEET_RELAYS} relays`, () => {
    const text = relayFile('big.example.com', `# ${'x'.repeat(MAX_FILE_BYTES)}\n`);
    const big = fresh(manifest('edge'), { 'big.toml': text });
    expect(failure(big).message).toBe(
      `${join(big, 'big.toml')}: is ${Buffer.byteLength(text)} bytes; the limit is 1048576 bytes (1 MiB) per file`,
    );
    const many: Record<string, string> = {};
    for (let i = 0; i <= MAX_FLEET_RELAYS; i++) many[`r${i}.toml`] = '';
    const crowded = fresh(manifest('edge'), many);
    expect(failure(crowded).message).toBe(
      `${crowded}: has 10001 relay files; the limit is 10000 relays per fleet`,
    );
  });

  it('refuses objects and arrays nested over 64 levels, naming the file and the limit', () => {
    // A table header nests as deep as it has dotted keys; TOML's own limit only counts values.
    const header = (depth: number) => `[${Array(depth).fill('a').join('.')}]\nx = 1\n`;
    const deep = fresh(manifest('edge'), { 'r1.toml': relayFile('r1.example.com', header(20_000)) });
    expect(failure(deep).message).toBe(
      `${join(deep, 'r1.toml')}:2: a: nested over 64 levels of tables and arrays (the limit)`,
    );
    const deepDefaults = fresh(manifest('edge', `[defaults.info]\npubkey = "${PUBKEY}"\n${header(65)}`), {});
    expect(failure(deepDefaults).message).toBe(
      `${join(deepDefaults, 'fleet.toml')}:5: a: nested over 64 levels of tables and arrays (the limit)`,
    );
    // 64 levels are read (and refused for what they say, not for their depth).
    const limit = fresh(manifest('edge'), { 'r1.toml': relayFile('r1.example.com', header(63)) });
    expect(failure(limit).message).toBe(`${join(limit, 'r1.toml')}:2: a: unknown field`);
  });

  it('refuses __proto__, prototype and constructor as keys, naming the field', () => {
    for (const name of ['__proto__', 'prototype', 'constructor']) {
      const dir = fresh(manifest('edge'), {
        'r1.toml': relayFile('r1.example.com', `[roles.${name}]\ncan_invite = true\n`),
      });
      expect(failure(dir).message).toBe(
        `${join(dir, 'r1.toml')}:2: roles.${name}: is a reserved name (__proto__, prototype, constructor)`,
      );
    }
    // Elsewhere __proto__ is a field like any other: unknown, never a way to set inherited values.
    const info = fresh(manifest('edge'), {
      'r1.toml': relayFile('r1.example.com', '[info.__proto__]\nname = "sneaky"\n'),
    });
    expect(failure(info).message).toBe(`${join(info, 'r1.toml')}:2: info.__proto__: unknown field`);
    const defaults = fresh(
      manifest('edge', `[defaults.info]\npubkey = "${PUBKEY}"\n[defaults.roles.__proto__]\n`),
      {
        'r1.toml': relayFile('r1.example.com'),
      },
    );
    expect(failure(defaults).message).toMatch(
      /^.*fleet\.toml:\d+: defaults\.roles\.__proto__: is a reserved name/,
    );
  });

  it('takes a host written with its default port, or in capitals, as the same host', () => {
    const dir = fresh(manifest('edge'), {
      'a.toml': relayFile('same.example.com:443'),
      'b.toml': relayFile('same.example.com'),
    });
    expect(failure(dir).message).toBe(
      `${join(dir, 'b.toml')}:1: host: "same.example.com" is also the host of ${join(dir, 'a.toml')}`,
    );
    writeFileSync(join(dir, 'b.toml'), relayFile('Other.Example.COM:80'));
    expect(readFleetDir(dir).resolved.relays.map((r) => r.fields!.host)).toEqual([
      'same.example.com',
      'other.example.com',
    ]);
  });

  it('reads only regular files: a link to a device is refused, naming the file', () => {
    const dir = fresh(manifest('edge'), { 'r1.toml': relayFile('r1.example.com') });
    symlinkSync('/dev/zero', join(dir, 'zero.toml'));
    expect(failure(dir).message).toBe(
      `${join(dir, 'zero.toml')}: is not a regular file (a character device)`,
    );
    rmSync(join(dir, 'zero.toml'));
    rmSync(join(dir, 'fleet.toml'));
    symlinkSync('/dev/null', join(dir, 'fleet.toml'));
    expect(failure(dir).message).toBe(
      `${join(dir, 'fleet.toml')}: is not a regular file (a character device)`,
    );
  });

  it('locates fields in tables, dotted keys and inline tables', () => {
    const text = [
      'host = "a"', // 1
      'info.name = "x"', // 2
      '[policy]', // 3
      'public_join = true', // 4
      '[roles.admin]', // 5
      'pubkeys = ["a"]', // 6
      'blossom = { enabled = true }', // 7
    ].join('\n');
    expect(locateLine(text, ['host'])).toBe(1);
    expect(locateLine(text, ['info', 'name'])).toBe(2);
    expect(locateLine(text, ['policy', 'public_join'])).toBe(4);
    expect(locateLine(text, ['policy', 'strip_signatures'])).toBe(3);
    expect(locateLine(text, ['roles', 'admin', 'pubkeys', 0])).toBe(6);
    expect(locateLine(text, ['roles', 'admin', 'blossom'])).toBe(7);
    expect(locateLine(text, ['livekit'])).toBeUndefined();
  });
});
