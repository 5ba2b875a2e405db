/**
 * bench/dashboard: first render of the dashboard for a 5,000-relay fleet in headless Chromium
 * (navigation start → counts, failing relays and the first page of the relay list on screen),
 * beside the time to serve the same data as plain JSON, measured in the same run against the same
 * server. Target: first render ≤ 1 s.
 *
 *   npm run bench:dashboard [-- --relays 5000 --runs 7]
 *
 * Needs Debian's chromium (/usr/bin/chromium, or BOSUN_CHROMIUM).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { loadServeConfig } from '../src/config.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { createLogger } from '../src/logger.js';
import { Peer } from '../src/peer.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) || fallback : fallback;
};
const RELAYS = arg('relays', 5000);
const RUNS = arg('runs', 7);
const TOKEN = 'bench-admin-token-0123456789abcdef';
const CHROMIUM = process.env.BOSUN_CHROMIUM ?? '/usr/bin/chromium';
const admin: Principal = { role: 'admin', actor: 'bench' };

/** The few browser globals the page callbacks touch (the project compiles without the DOM lib). */
interface Browser {
  sessionStorage: { setItem(key: string, value: string): void };
  document: {
    querySelectorAll(selector: string): { length: number };
    querySelector(selector: string): { textContent: string | null } | null;
  };
  performance: { getEntriesByType(type: string): { loadEventEnd: number }[] };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const ms = (n: number) => `${n.toFixed(0).padStart(5)} ms`;

async function seed(peer: Peer): Promise<Record<string, number>> {
  const pubkey = publicKeyOf(generateSecretKey());
  const { command } = peer;
  // A realistic mix: most synced, some pending, a few retrying and failed (errors, attempts, retry times).
  const counts = { synced: 0, pending: 0, retrying: 0, failed: 0 };
  for (let i = 0; i < RELAYS; i++) {
    const id = `relay-${String(i).padStart(5, '0')}`;
    await command.createRelay(admin, {
      id,
      host: `${id}.example.com`,
      owner: `tenant-${i % 50}`,
      info: { pubkey, name: `Relay ${i}`, description: 'a relay of the benchmark fleet' },
      roles: { member: { pubkeys: [pubkey], can_invite: true } },
    });
    const kind = i % 100;
    if (kind < 4) {
      await command.failRelaySync(id, {
        version: 1,
        error: 'zooid answered 500: injected',
        attempts: 10,
        nextAttemptAt: null,
      });
      counts.failed++;
    } else if (kind < 10) {
      await command.failRelaySync(id, {
        version: 1,
        error: 'connect ECONNREFUSED 10.0.0.1:3334',
        attempts: 3,
        nextAttemptAt: Date.now() + 60_000,
      });
      counts.retrying++;
    } else if (kind < 30) {
      counts.pending++;
    } else {
      await command.completeRelaySync(id, {
        version: 1,
        config: { host: `${id}.example.com` },
        deleted: false,
      });
      counts.synced++;
    }
  }
  return counts;
}

async function jsonBaseline(url: string) {
  const get = async (path: string) => {
    const res = await fetch(url + path, { headers: { authorization: `Bearer ${TOKEN}` } });
    return res.json() as Promise<{ next?: string | null }>;
  };
  const sameData: number[] = [];
  const wholeList: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    let t = performance.now();
    // What the first render shows: the overview (counts, failing relays) and the first page of relays.
    await Promise.all([get('/v1/dashboard/overview'), get('/v1/relays?limit=100')]);
    if (i > 0) sameData.push(performance.now() - t);
    t = performance.now();
    let after: string | null | undefined;
    do {
      after = (await get(`/v1/relays?limit=1000${after ? `&after=${after}` : ''}`)).next;
    } while (after);
    if (i > 0) wholeList.push(performance.now() - t);
  }
  return { sameData: median(sameData), wholeList: median(wholeList) };
}

async function browserRuns(url: string) {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    await context.addInitScript(
      (token) => (globalThis as unknown as Browser).sessionStorage.setItem('bosun.token', token),
      TOKEN,
    );
    const runs: { render: number; wall: number; chart: number }[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const page = await context.newPage();
      const t = performance.now();
      await page.goto(`${url}/`);
      await page.waitForSelector('main[data-view="overview"][data-loaded="true"]', { timeout: 30_000 });
      const wall = performance.now() - t;
      await page.waitForSelector('#chart svg', { timeout: 30_000 });
      const marks = await page.evaluate(() => {
        const { document } = globalThis as unknown as Browser;
        return {
          render: performance.getEntriesByName('bosun:overview')[0]?.startTime ?? Number.NaN,
          chart: performance.getEntriesByName('bosun:chart')[0]?.startTime ?? Number.NaN,
          rows: document.querySelectorAll('#relays tr[data-relay]').length,
          failing: document.querySelectorAll('#failing tr[data-relay]').length,
          total: document.querySelector('.card[data-status="total"] .n')?.textContent as string | undefined,
        };
      });
      if (Number(marks.total) !== RELAYS || marks.rows !== 100) {
        throw new Error(`the page did not show the fleet: ${JSON.stringify(marks)}`);
      }
      runs.push({ render: marks.render, wall, chart: marks.chart });
      if (i === RUNS) {
        console.log(
          `  rendered: ${marks.total} relays counted, ${marks.failing} failing rows, ${marks.rows} list rows`,
        );
      }
      await page.close();
    }
    const [cold, ...warm] = runs;
    // The same data as plain JSON documents in the same browser: navigation start → JSON loaded.
    const plain = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` } });
    const jsonRuns: number[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      let total = 0;
      for (const path of ['/v1/dashboard/overview', '/v1/relays?limit=100']) {
        const page = await plain.newPage();
        await page.goto(url + path);
        total += await page.evaluate(
          () =>
            (performance as unknown as Browser['performance']).getEntriesByType('navigation')[0]!
              .loadEventEnd,
        );
        await page.close();
      }
      if (i > 0) jsonRuns.push(total);
    }
    await plain.close();
    return {
      jsonInBrowser: median(jsonRuns),
      cold: cold!,
      render: median(warm.map((r) => r.render)),
      wall: median(warm.map((r) => r.wall)),
      chart: median(warm.map((r) => r.chart)),
      worst: Math.max(...runs.map((r) => r.render)),
    };
  } finally {
    await browser.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'bosun-bench-dashboard-'));
const config = loadServeConfig({
  BOSUN_DATABASE_URL: `sqlite:${join(dir, 'bosun.db')}`,
  PORT: '0',
  BOSUN_ADMIN_TOKEN: TOKEN,
  BOSUN_LOG_LEVEL: 'silent',
});
const peer = await Peer.create(config, { logger: createLogger({ level: 'silent' }) });
try {
  const url = await peer.start();
  let t = performance.now();
  const mix = await seed(peer);
  console.log(`bench/dashboard (relays=${RELAYS}, runs=${RUNS} + 1 cold, node ${process.version})`);
  console.log(`  fleet: ${JSON.stringify(mix)}, seeded in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const json = await jsonBaseline(url);
  const page = await browserRuns(url);
  console.log(`  baseline: same data as plain JSON (overview + first relay page) : ${ms(json.sameData)}`);
  console.log(
    `  baseline: all ${RELAYS} relays as JSON (${Math.ceil(RELAYS / 1000)} pages of 1000)          : ${ms(json.wholeList)}`,
  );
  console.log(
    `  baseline: same data as JSON documents opened in the browser      : ${ms(page.jsonInBrowser)}`,
  );
  console.log(
    `  dashboard first render, cold (navigation → data on screen)       : ${ms(page.cold.render)}  (wall ${ms(page.cold.wall)})`,
  );
  console.log(
    `  dashboard first render, warm median                            : ${ms(page.render)}  (wall ${ms(page.wall)})  ratio to JSON in browser ${(page.render / page.jsonInBrowser).toFixed(1)}`,
  );
  console.log(`  chart drawn (syncs per minute), warm median                    : ${ms(page.chart)}`);
  console.log(
    `  target: first render <= 1000 ms (worst run ${page.worst.toFixed(0)} ms) -> ${page.worst <= 1000 ? 'met' : 'NOT met'}`,
  );
} finally {
  await peer.close();
  rmSync(dir, { recursive: true, force: true });
}
