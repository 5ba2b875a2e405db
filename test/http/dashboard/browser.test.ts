import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startZooidEmulator } from '../../../src/push/zooid/emulator.js';
import { type Probe, probe } from '../../pull/sse-probe.js';
import { ARTIFACTS, launchBrowser, SKIP_BROWSER } from '../../support/browser.js';
import { ADMIN_TOKEN, keypair, relayBody } from '../../support/env.js';
import { type Planet, startPlanet } from '../../support/planet.js';

// Code inside page.evaluate runs in the browser; the test project has no DOM typings.
declare const document: any;
declare const getComputedStyle: (e: unknown) => { color: string };

const SECRET = keypair().secret;
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const PHONE = { width: 375, height: 812 };

/** axe-core's violations on the page as it is, `rule (impact): selectors` per violation. */
async function axeViolations(p: Page): Promise<{ serious: string[]; all: string[] }> {
  if (!(await p.evaluate(() => 'axe' in globalThis))) await p.addScriptTag({ path: AXE });
  const found: { id: string; impact: string; targets: string[] }[] = await p.evaluate(async () => {
    const axe = (globalThis as any).axe;
    const { violations } = await axe.run(document, { resultTypes: ['violations'] });
    return violations.map((v: any) => ({
      id: v.id,
      impact: v.impact,
      targets: v.nodes.map((n: any) => n.target.join(' ')),
    }));
  });
  const line = (v: (typeof found)[number]) => `${v.id} (${v.impact}): ${v.targets.slice(0, 3).join(', ')}`;
  return {
    serious: found.filter((v) => v.impact === 'serious' || v.impact === 'critical').map(line),
    all: found.map(line),
  };
}

/** The dashboard in headless Chromium against a real bosun and zooid emulator. */
describe.skipIf(SKIP_BROWSER)('dashboard in a browser', () => {
  let planet: Planet;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let aliceToken: string;
  let bobToken: string;
  let agent: Probe;
  const requested: string[] = [];
  const owner = keypair();
  const api = (...args: Parameters<Planet['bosun']['api']>) => planet.bosun.api(...args);

  const signIn = async (p: Page, token: string) => {
    await p.goto(`${planet.bosun.url}/`);
    await p.fill('#token', token);
    await p.click('#signin-form button[type=submit]');
  };
  const overviewLoaded = (p: Page) => p.waitForSelector('main[data-view="overview"][data-loaded="true"]');
  /** A new page of `ctx`, signed in with `token`, its overview loaded. */
  const openSignedIn = async (ctx: BrowserContext, token: string) => {
    const p = await ctx.newPage();
    p.setDefaultTimeout(10_000);
    await signIn(p, token);
    await overviewLoaded(p);
    return p;
  };
  const count = (p: Page, status: string) => p.textContent(`.card[data-status="${status}"] .n`);

  beforeAll(async () => {
    [planet, browser] = await Promise.all([
      // Three quick attempts: a failing relay writes several fail_relay_sync activities in a row.
      startPlanet({
        env: { BOSUN_RETRY_MAX_ATTEMPTS: '3', BOSUN_RETRY_BASE_MS: '20', BOSUN_RETRY_CAP_MS: '40' },
      }),
      launchBrowser(),
    ]);
    aliceToken = (await api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    bobToken = (await api('POST', '/v1/tokens', { role: 'tenant', owner: 'bob' })).body.token;
    await api('POST', '/v1/relays', { ...relayBody('ok-1', owner.pubkey), secret: SECRET });
    await api('POST', '/v1/relays', relayBody('alice-r', owner.pubkey), aliceToken);
    await api('POST', '/v1/relays', relayBody('bob-r', owner.pubkey), bobToken);
    await planet.idle();
    await planet.trigger('target_health');
    const agentToken = (await api('POST', '/v1/tokens', { role: 'agent', fleet: 'default' })).body.token;
    agent = await probe(planet.bosun.url, agentToken);
    await agent.until((p) => p.events.some((e) => e.event === 'put'), 'the agent stream');
    admin = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    page = await admin.newPage();
    page.setDefaultTimeout(10_000);
    page.on('request', (r) => requested.push(r.url()));
  }, 60_000);
  afterAll(async () => {
    agent?.close();
    await browser?.close();
    await planet?.close();
  });

  it('signs in with a token (a wrong one is refused) and shows the fleet at a glance', async () => {
    await page.goto(`${planet.bosun.url}/`);
    await page.waitForSelector('#signin-form');
    await page.fill('#token', 'not-a-token');
    await page.click('#signin-form button[type=submit]');
    await expect.poll(() => page.textContent('#signin-error')).toContain('unknown, revoked or expired token');
    expect(await page.evaluate(() => (globalThis as any).sessionStorage.length)).toBe(0);

    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#signin-form button[type=submit]');
    await overviewLoaded(page);
    expect(await page.textContent('#who')).toBe('admin');
    expect(await count(page, 'total')).toBe('3');
    expect(await count(page, 'synced')).toBe('3');
    expect(await page.textContent('#failing')).toContain('No failing relays');
    await page.waitForSelector('#live[data-state="live"]');
    await page.waitForSelector('#chart svg');
    expect(await page.textContent('#targets')).toContain('up');
    expect(await page.textContent('#agents')).toContain('default');
    // Resync is offered where it helps: not on a synced row.
    expect(await page.locator('#relays tr[data-relay="ok-1"] button[data-resync]').count()).toBe(0);
    // The agent's badge stays inside its panel.
    const inside = await page.evaluate(() => {
      const panel = document.getElementById('fleet')!.getBoundingClientRect();
      const badge = document.querySelector('#agents .badge')!.getBoundingClientRect();
      return badge.right <= panel.right && badge.left >= panel.left;
    });
    expect(inside).toBe(true);
  });

  it('shows a relay failing against zooid, then recovering after “Resync now”, without a reload', async () => {
    await page.evaluate(() => {
      (globalThis as any).__sameDocument = true;
    });
    planet.zooid.setFaults({ failAll: true });
    await api('POST', '/v1/relays', relayBody('bad-1', owner.pubkey));
    const row = page.locator('#failing tr[data-relay="bad-1"]');
    await row.waitFor();
    await expect.poll(() => row.locator('td.err').textContent()).toContain('zooid answered 500');
    await expect.poll(() => count(page, 'failed')).toBe('1');
    await expect.poll(() => row.textContent()).toContain('waits for a resync');
    expect(await row.textContent()).toContain('failed');
    // Three identical failures in a row are one feed line that counts them.
    const fails = page.locator('#feed li[data-type="fail_relay_sync"][data-relay="bad-1"]');
    await expect.poll(() => fails.locator('.repeat').textContent()).toBe('×3');
    expect(await fails.count()).toBe(1);
    expect(await fails.textContent()).toContain('failed ×3');
    // The chart counts attempts (3 failed ones), the cards count relays (1 failed).
    expect(await page.textContent('.chart h2')).toContain('attempts');
    await expect
      .poll(() => page.textContent('#chart-summary'), { timeout: 15_000 })
      .toContain('3 failed attempts');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-failing.png'), fullPage: true });

    planet.zooid.setFaults({});
    await row.locator('button[data-resync="bad-1"]').click();
    await page.waitForSelector('#feed li[data-type="complete_relay_sync"][data-relay="bad-1"]');
    await row.waitFor({ state: 'detached' });
    await expect.poll(() => count(page, 'failed')).toBe('0');
    await expect.poll(() => count(page, 'synced')).toBe('4');
    expect(await page.evaluate(() => (globalThis as any).__sameDocument)).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-overview.png'), fullPage: true });
  });

  it('updates the live feed and the relay list as changes happen, without a reload', async () => {
    const feedItems = () => page.locator('#feed li').count();
    const before = await feedItems();
    await api('POST', '/v1/relays', relayBody('live-1', owner.pubkey));
    await page.waitForSelector('#feed li[data-type="create_relay"][data-relay="live-1"]');
    await page.waitForSelector('#relays tr[data-relay="live-1"]');
    await api('PATCH', '/v1/relays/live-1', { info: { name: 'Live one' } });
    await page.waitForSelector('#feed li[data-type="update_relay"][data-relay="live-1"]');
    expect(await page.locator('#feed li').first().getAttribute('data-type')).toMatch(/update_relay|_sync$/);
    expect(await feedItems()).toBeGreaterThan(before);
    expect(await page.evaluate(() => (globalThis as any).__sameDocument)).toBe(true);
  });

  it('shows a relay: config without its secret, sync history, acknowledged vs current', async () => {
    await page.click('#relays a[href="#/relay/ok-1"]');
    await page.waitForSelector('main[data-view="relay:ok-1"][data-loaded="true"]');
    expect(await page.textContent('#history')).toContain('complete_relay_sync');
    expect(await page.textContent('#diff')).toContain('zooid has the current config');
    expect(await page.textContent('pre.config')).toContain('"host": "ok-1.example.com"');
    const html = await page.content();
    expect(html).not.toContain(SECRET);
    // A change zooid has not acknowledged yet shows up as a diff, live.
    planet.zooid.setFaults({ failAll: true });
    await api('PATCH', '/v1/relays/ok-1', { info: { name: 'Renamed' } });
    await expect.poll(() => page.textContent('#diff')).toContain('info.name');
    expect(await page.textContent('#diff')).toContain('"Renamed"');
    // An update's detail is not an error: it is not drawn in the error colour.
    const colors = await page.evaluate(() => {
      const row = [...document.querySelectorAll('#history tbody tr')].find((tr) =>
        tr.textContent!.includes('update_relay'),
      )!;
      const cells = row.querySelectorAll('td');
      return { id: getComputedStyle(cells[0]!).color, detail: getComputedStyle(cells[4]!).color };
    });
    expect(colors.detail).toBe(colors.id);
    expect(await page.locator('main button[data-resync="ok-1"]').count()).toBe(1);
    planet.zooid.setFaults({});
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-relay.png'), fullPage: true });
    expect(await page.evaluate(() => (globalThis as any).__sameDocument)).toBe(true);
    // The long-lived token never went into a URL: the live feed used one-time tickets.
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((u) => u.includes(ADMIN_TOKEN))).toEqual([]);
    expect(requested.some((u) => u.includes('/v1/activities/stream?ticket='))).toBe(true);
  });

  it('shows a repeated failure once in the relay history, with its count', async () => {
    await page.goto(`${planet.bosun.url}/#/relay/bad-1`);
    await page.waitForSelector('main[data-view="relay:bad-1"][data-loaded="true"]');
    const fails = page.locator('#history tr', { hasText: 'fail_relay_sync' });
    expect(await fails.count()).toBe(1);
    expect(await fails.textContent()).toContain('×3');
  });

  it('shows inactive relays: a badge, a count and a filter', async () => {
    await api('POST', '/v1/relays', relayBody('off-1', owner.pubkey, { inactive: true }));
    await page.goto(`${planet.bosun.url}/#/`);
    await overviewLoaded(page);
    await expect.poll(() => count(page, 'inactive')).toBe('1');
    const off = page.locator('#relays tr[data-relay="off-1"]');
    expect(await off.locator('.badge.inactive').textContent()).toBe('inactive');
    expect(await page.locator('#relays tr[data-relay="ok-1"] .badge.inactive').count()).toBe(0);
    await page.selectOption('#active-filter', 'inactive');
    await expect
      .poll(() =>
        page
          .locator('#relays tr[data-relay]')
          .evaluateAll((trs) => trs.map((t) => t.getAttribute('data-relay'))),
      )
      .toEqual(['off-1']);
    await page.selectOption('#active-filter', 'active');
    await expect.poll(() => page.locator('#relays tr[data-relay="off-1"]').count()).toBe(0);
    expect(await page.locator('#relays tr[data-relay="ok-1"]').count()).toBe(1);
    await page.selectOption('#active-filter', '');
    await page.click('#relays a[href="#/relay/off-1"]');
    await page.waitForSelector('main[data-view="relay:off-1"][data-loaded="true"]');
    expect(await page.textContent('#main h1')).toContain('inactive');
  });

  it('has no serious accessibility violations (axe-core) on the sign-in, overview and relay pages', async () => {
    // axe is injected as a script: this context skips the page's CSP (which rightly forbids that).
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 }, bypassCSP: true });
    try {
      const p = await ctx.newPage();
      p.setDefaultTimeout(10_000);
      await p.goto(`${planet.bosun.url}/`);
      await p.waitForSelector('#signin-form');
      const signin = await axeViolations(p);
      await p.fill('#token', ADMIN_TOKEN);
      await p.click('#signin-form button[type=submit]');
      await overviewLoaded(p);
      await p.waitForSelector('#live[data-state="live"]');
      await p.waitForSelector('#chart svg');
      await p.waitForSelector('#feed li a');
      const overview = await axeViolations(p);
      await p.goto(`${planet.bosun.url}/#/relay/bad-1`);
      await p.waitForSelector('main[data-view="relay:bad-1"][data-loaded="true"]');
      const relay = await axeViolations(p);
      expect({ signin: signin.serious, overview: overview.serious, relay: relay.serious }).toEqual({
        signin: [],
        overview: [],
        relay: [],
      });
      // The moderate ones too: a main landmark, an h1, no empty table header.
      expect({ signin: signin.all, overview: overview.all, relay: relay.all }).toEqual({
        signin: [],
        overview: [],
        relay: [],
      });
    } finally {
      await ctx.close();
    }
  });

  it('fits a phone: no sideways scrolling, readable chart labels', async () => {
    const ctx = await browser.newContext({
      viewport: PHONE,
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const p = await openSignedIn(ctx, ADMIN_TOKEN);
      await p.waitForSelector('#chart svg');
      await p.waitForSelector('#relays tr[data-relay="ok-1"]');
      const fit = await p.evaluate(() => {
        const relays = document.getElementById('relays')!;
        // Leaf elements with visible text inside the chart (an SVG <title> has no box).
        const labels = [...document.querySelectorAll('.chart *')].filter(
          (e) => e.children.length === 0 && e.textContent!.trim() !== '' && e.getClientRects().length > 0,
        );
        return {
          page: document.documentElement.scrollWidth,
          relays: relays.scrollWidth - relays.clientWidth,
          smallestLabel: Math.min(...labels.map((e) => e.getBoundingClientRect().height)),
          labels: labels.length,
        };
      });
      expect(fit.page).toBeLessThanOrEqual(PHONE.width);
      expect(fit.relays).toBe(0);
      expect(fit.labels).toBeGreaterThan(3);
      expect(fit.smallestLabel).toBeGreaterThanOrEqual(11);
      await p.screenshot({ path: join(ARTIFACTS, 'dashboard-phone-overview.png') });
      await p.goto(`${planet.bosun.url}/#/relay/bad-1`);
      await p.waitForSelector('main[data-view="relay:bad-1"][data-loaded="true"]');
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
      await p.screenshot({ path: join(ARTIFACTS, 'dashboard-phone-relay.png') });
    } finally {
      await ctx.close();
    }
  });

  it('shows a tenant only its own relays, in the lists and in the live feed', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    try {
      const alice = await openSignedIn(ctx, aliceToken);
      await alice.waitForSelector('#live[data-state="live"]');
      expect(await alice.textContent('#who')).toBe('tenant alice');
      expect(await count(alice, 'total')).toBe('1');
      const rows = await alice
        .locator('#relays tr[data-relay]')
        .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-relay')));
      expect(rows).toEqual(['alice-r']);
      expect(await alice.isVisible('#fleet')).toBe(false);

      await api('POST', '/v1/relays', relayBody('bob-live', owner.pubkey), bobToken);
      await api('POST', '/v1/relays', relayBody('alice-live', owner.pubkey), aliceToken);
      await alice.waitForSelector('#feed li[data-relay="alice-live"]');
      await alice.waitForSelector('#relays tr[data-relay="alice-live"]');
      expect(await alice.locator('#feed li[data-relay^="bob"]').count()).toBe(0);
      expect(await alice.content()).not.toContain('bob-r');

      await alice.goto(`${planet.bosun.url}/#/relay/bob-r`);
      await alice.waitForSelector('main[data-view="relay:bob-r"][data-loaded="true"]');
      expect(await alice.textContent('#main')).toContain('not found');
      expect(await alice.textContent('#main')).not.toContain('bob-r.example.com');
      await alice.screenshot({ path: join(ARTIFACTS, 'dashboard-tenant.png'), fullPage: true });

      await alice.click('#signout');
      await alice.waitForSelector('#signin-form');
      expect(await alice.evaluate(() => (globalThis as any).sessionStorage.length)).toBe(0);
    } finally {
      await ctx.close();
    }
  });
  it('shows where a relay lives and its move to its fleet’s new target, then the move in its history', async () => {
    const other = await startZooidEmulator({ whitelist: [planet.bosunPubkey] });
    try {
      expect((await api('POST', '/v1/targets', { name: 'eu-1', url: other.url })).status).toBe(201);
      await api('POST', '/v1/relays', relayBody('mv-1', owner.pubkey, { fleet: 'mv' }));
      await planet.idle();
      // The old target refuses deletes: the relay stays on it, created on eu-1, its move pending.
      planet.zooid.setFaults({ statusOverride: { DELETE: 500 } });
      expect((await api('PUT', '/v1/fleets/mv', { target: 'eu-1' })).body.moved.relays).toBe(1);
      await expect.poll(async () => (await api('GET', '/v1/relays/mv-1')).body.sync.error).toMatch(/moving/);
      await page.goto(`${planet.bosun.url}/#/relay/mv-1`);
      await page.waitForSelector('main[data-view="relay:mv-1"][data-loaded="true"]');
      expect(await page.textContent('#relay-target')).toBe('default → eu-1 (moving)');
      planet.zooid.setFaults({});
      await page.click('main button[data-resync="mv-1"]');
      await expect.poll(() => page.textContent('#relay-target')).toBe('eu-1');
      expect(await page.textContent('#history')).toContain('moved from default to eu-1');
      expect(other.relays().has('mv-1')).toBe(true);
      expect(planet.zooid.relays().has('mv-1')).toBe(false);
    } finally {
      planet.zooid.setFaults({});
      await other.close();
    }
  });
});
