import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncError } from '../../src/fleet/errors.js';
import { readFleetDir } from '../../src/fleet/files.js';
import {
  parseDelete,
  parseHeldVersions,
  parsePatch,
  parsePut,
  parseReconnect,
} from '../../src/pull/protocol.js';
import { keypair, relayBody, startServer, type TestServer, tempDir } from '../support/env.js';
import { printSeed, runs, snapshot } from './helpers.js';

/**
 * The other inputs bosun reads: fleet files (TOML written by anyone with commit access), stream
 * messages an agent receives, and the resume headers an agent sends. Parsers answer a typed error,
 * never throw anything else; the server never answers 5xx nor writes.
 */
describe('hostile input: fleet files and stream messages', () => {
  beforeAll(() => printSeed('parsers'));

  const tomlish = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc
      .array(
        fc.oneof(
          fc.constantFrom(
            'id = "r1"',
            'host = "r1.example.com"',
            '[info]',
            `pubkey = "${'ab'.repeat(32)}"`,
            '[[roles]]',
            '[policy]',
            'public_join = true',
            'secret = "00"',
            'inactive = "yes"',
            'a.b.c = 1',
            '[info.deep.deeper]',
            'x = 1979-05-27T07:32:00Z',
            'y = [1, "a", {b = 2}]',
            'z = """',
            'name = "\\u0000"',
            '= 1',
            '[',
          ),
          fc.string({ maxLength: 40 }),
        ),
        { maxLength: 12 },
      )
      .map((lines) => lines.join('\n')),
  );

  it('fleet directories: any bytes give a SyncError naming the file, or a valid fleet', () => {
    const dir = tempDir();
    try {
      let valid = 0;
      fc.assert(
        fc.property(tomlish, tomlish, fc.boolean(), (manifest, relay, plainName) => {
          writeFileSync(join(dir.path, 'fleet.toml'), plainName ? `name = "fz"\n${manifest}` : manifest);
          const base = `host = "r1.example.com"\n[info]\npubkey = "${'ab'.repeat(32)}"\n`;
          writeFileSync(join(dir.path, 'r1.toml'), plainName ? base + relay : relay);
          try {
            readFleetDir(dir.path);
            valid++;
          } catch (err) {
            expect(err, String(err)).toBeInstanceOf(SyncError);
            expect((err as Error).message.length).toBeGreaterThan(0);
          }
        }),
        runs(400),
      );
      console.log(`parsers: ${valid} random fleet directories were valid`);
    } finally {
      dir.cleanup();
    }
  });

  it('stream messages: the agent-side parsers never throw', () => {
    const message = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.json({ maxDepth: 4 }),
      fc
        .record(
          {
            path: fc.oneof(fc.constantFrom('', '/', '/r1', '/../x', '/r1/secret'), fc.string()),
            data: fc.jsonValue({ maxDepth: 3 }),
            version: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
            epoch: fc.oneof(fc.string(), fc.integer()),
          },
          { requiredKeys: [] },
        )
        .map((v) => JSON.stringify(v)),
    );
    fc.assert(
      fc.property(message, (text) => {
        for (const parse of [parsePut, parsePatch, parseDelete]) {
          const result = parse(text);
          expect(typeof result.ok).toBe('boolean');
          if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
        }
        expect(() => parseReconnect(text)).not.toThrow();
        expect(() => parseHeldVersions(text)).not.toThrow();
      }),
      runs(1000),
    );
  });

  it('stream messages nested over 64 levels are malformed, whatever event they are', () => {
    const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    const secret = 'ab'.repeat(32);
    const rep = `{"id":"r1","version":1,"secret":"${secret}","config":{"info":${deep}}}`;
    const reason = 'JSON nested over 64 levels of objects and arrays (the limit)';
    expect(parsePatch(`{"path":"relays/r1","data":${rep}}`)).toEqual({ ok: false, reason });
    expect(parsePut(`{"path":"/","epoch":"e","data":{"relays":{"r1":${rep}}}}`)).toEqual({
      ok: false,
      reason,
    });
    expect(parseDelete(`{"path":"relays/r1","version":1,"x":${deep}}`)).toEqual({ ok: false, reason });
    expect(parseReconnect(`{"reason":"x","extra":${deep}}`)).toEqual({});
    // A rep at the limit is read.
    expect(parsePatch(`{"path":"relays/r1","data":{"x":${'['.repeat(62)}${']'.repeat(62)}}}`).ok).toBe(true);
  });

  describe('resume headers from agents', () => {
    let s: TestServer;
    let agent: string;
    beforeAll(async () => {
      s = await startServer();
      agent = (await s.api('POST', '/v1/tokens', { role: 'agent', fleet: 'default' })).body.token;
      await s.api('POST', '/v1/relays', relayBody('r1', keypair().pubkey));
    });
    afterAll(async () => {
      await s.close();
    });

    it('any Bosun-Epoch / Bosun-Held-Versions / Last-Event-ID: never 5xx, never a write', async () => {
      const value = fc.oneof(
        // What a header can carry: visible ASCII and spaces (fetch refuses the rest client-side).
        fc.string({
          unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
          maxLength: 100,
        }),
        fc.constantFrom(
          'r1=1',
          'r1=-1',
          'r1=9007199254740993',
          'r1=1,r1=2',
          '=',
          ',,',
          'x'.repeat(9000),
          'NaN',
        ),
      );
      const before = await snapshot(s);
      await fc.assert(
        fc.asyncProperty(value, value, value, async (epoch, held, last) => {
          const ac = new AbortController();
          const res = await fetch(`${s.url}/v1/stream`, {
            headers: {
              authorization: `Bearer ${agent}`,
              accept: 'text/event-stream',
              'bosun-epoch': epoch.trim(),
              'bosun-held-versions': held.trim(),
              'last-event-id': last.trim(),
            },
            signal: ac.signal,
          });
          expect(res.status).toBeLessThan(500);
          ac.abort();
          await res.body?.cancel().catch(() => undefined);
        }),
        runs(60),
      );
      await expect.poll(() => s.peer.streams.stats().streams).toBe(0);
      expect(await snapshot(s)).toEqual(before);
    });
  });
});
