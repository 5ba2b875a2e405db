import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, launchBrowser, SKIP_BROWSER } from '../support/browser.js';
import { ADMIN_TOKEN, keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

const SECRET = keypair().secret;

/** The dashboard in headless Chromium against a real bosun and zooid emulator. */
describe.skipIf(SKIP_BROWSER)('dashboard in a browser', () => {
  let planet: Planet;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let aliceToken: string;
  let bobToken: string;
  const requested: string[] = [];
  const owner = keypair();
  const api = (...args: Parameters<Planet['bosun']['api']>) => planet.bosun.api(...args);

  const signIn = async (p: Page, token: string) => {
    await p.goto(`${planet.bosun.url}/`);
    await p.fill('#token', token);
    await p.click('#signin-form button[type=submit]');
  };
  const overviewLoaded = (p: Page) => p.waitForSelector('main[data-view="overview"][data-loaded="true"]');
  const count = (p: Page, status: string) => p.textContent(`.card[data-status="${status}"] .n`);

  beforeAll(async () => {
    [planet, browser] = await Promise.all([
      startPlanet({ env: { BOSUN_RETRY_MAX_ATTEMPTS: '1' } }),
      launchBrowser(),
    ]);
    aliceToken = (await api('POST', '/v1/tokens', { role: 'tenant', owner: 'alice' })).body.token;
    bobToken = (await api('POST', '/v1/tokens', { role: 'tenant', owner: 'bob' })).body.token;
    await api('POST', '/v1/relays', { ...relayBody('ok-1', owner.pubkey), secret: SECRET });
    await api('POST', '/v1/relays', relayBody('alice-r', owner.pubkey), aliceToken);
    await api('POST', '/v1/relays', relayBody('bob-r', owner.pubkey), bobToken);
    await planet.idle();
    await planet.trigger('target_health');
    admin = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    page = await admin.newPage();
    page.setDefaultTimeout(10_000);
    page.on('request', (r) => requested.push(r.url()));
  }, 60_000);
  afterAll(async () => {
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
    expect(await page.textContent('#agents')).toMatch(/agent/i);
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
    expect(await row.textContent()).toContain('failed');
    expect(await row.textContent()).toContain('waits for a resync');
    await expect.poll(() => count(page, 'failed')).toBe('1');
    await page.waitForSelector('#feed li[data-type="fail_relay_sync"][data-relay="bad-1"]');
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
    planet.zooid.setFaults({});
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-relay.png'), fullPage: true });
    expect(await page.evaluate(() => (globalThis as any).__sameDocument)).toBe(true);
    // The long-lived token never went into a URL: the live feed used one-time tickets.
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((u) => u.includes(ADMIN_TOKEN))).toEqual([]);
    expect(requested.some((u) => u.includes('/v1/activities/stream?ticket='))).toBe(true);
  });

  it('shows a tenant only its own relays, in the lists and in the live feed', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    try {
      const alice = await ctx.newPage();
      alice.setDefaultTimeout(10_000);
      await signIn(alice, aliceToken);
      await overviewLoaded(alice);
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
      expect(await alice.textContent('main')).toContain('not found');
      expect(await alice.textContent('main')).not.toContain('bob-r.example.com');
      await alice.screenshot({ path: join(ARTIFACTS, 'dashboard-tenant.png'), fullPage: true });

      await alice.click('#signout');
      await alice.waitForSelector('#signin-form');
      expect(await alice.evaluate(() => (globalThis as any).sessionStorage.length)).toBe(0);
    } finally {
      await ctx.close();
    }
  });
});
