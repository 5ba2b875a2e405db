import { afterEach, describe, expect, it } from 'vitest';
import { Command } from '../../../src/command.js';
import type { Activity } from '../../../src/domain/activity.js';
import { systemClock } from '../../../src/domain/clock.js';
import { Notifier } from '../../../src/notifier.js';
import { ChangeFeed } from '../../../src/store/postgres/change-feed.js';
import { parsePostgresUrl } from '../../../src/store/postgres/options.js';
import { PostgresStore } from '../../../src/store/postgres/pg-store.js';
import { keypair, relayBody } from '../../support/env.js';
import { freshSchema, postgresUrl, withPg } from '../../support/postgres.js';

const quiet = { info() {}, warn() {}, debug() {}, error() {} };
const admin = { role: 'admin' as const, actor: 'admin' };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One "process": its own pool, Notifier, Command and change feed. */
async function processOn(url: string, backoff = { baseMs: 100, capMs: 1000 }) {
  const store = await PostgresStore.open(parsePostgresUrl(url, { poolSize: 2 }));
  const notifier = new Notifier();
  const received: Activity[] = [];
  notifier.subscribe((acts) => received.push(...acts));
  const feed = await ChangeFeed.start({ store, notifier, logger: quiet, backoff });
  cleanups.push(async () => {
    await feed.stop();
    await store.close();
  });
  return { store, notifier, feed, received, command: new Command(store, notifier, systemClock) };
}

describe.skipIf(!postgresUrl)('PostgreSQL change feed (LISTEN/NOTIFY)', () => {
  it("publishes another process's commits in this process, and this process's own only once", async () => {
    const s = freshSchema();
    cleanups.push(s.drop);
    const a = await processOn(s.url);
    const b = await processOn(s.url);
    const { pubkey } = keypair();
    const created = await a.command.createRelay(admin, relayBody('n1', pubkey));
    await until(() => b.received.length === 1);
    expect(b.received[0]).toEqual(created.activity);
    const own = await b.command.updateRelay(admin, 'n1', { info: { name: 'x' } });
    await until(() => a.received.length === 2);
    await new Promise((r) => setTimeout(r, 100));
    await b.feed.settled();
    expect(b.received.map((x) => x.id)).toEqual([created.activity!.id, own.activity!.id]);
    expect(a.received.map((x) => x.id)).toEqual([created.activity!.id, own.activity!.id]);
  });

  it('reconnects after losing its connection and catches up on what it missed from the log', async () => {
    const s = freshSchema();
    cleanups.push(s.drop);
    const a = await processOn(s.url);
    const b = await processOn(s.url, { baseMs: 400, capMs: 1000 });
    const { pubkey } = keypair();
    // Kill b's listener connection; the commit below happens while b is not listening.
    const killed = await withPg(
      async (c) =>
        (
          await c.query(
            'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1',
            [`bosun-listen:${b.store.instanceId.slice(0, 8)}`],
          )
        ).rows,
    );
    expect(killed.length).toBe(1);
    const missed = await a.command.createRelay(admin, relayBody('n2', pubkey));
    expect(b.feed.connects).toBe(1);
    await until(() => b.feed.connects === 2);
    await until(() => b.received.length === 1);
    expect(b.received[0]?.id).toBe(missed.activity!.id);
    // And it listens again.
    const next = await a.command.updateRelay(admin, 'n2', { info: { name: 'y' } });
    await until(() => b.received.length === 2);
    expect(b.received[1]?.id).toBe(next.activity!.id);
  });
});
