import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, SKIP_BROWSER } from '../support/browser.js';
import { ADMIN_TOKEN, keypair, relayBody } from '../support/env.js';
import { type Planet, startPlanet } from '../support/planet.js';

/** The dashboard shows live status: per relay, counted on the overview, not-live relays listed. */
describe.skipIf(SKIP_BROWSER)('live status in the dashboard', () => {
  let planet: Planet;
  let browser: Browser;
  let page: Page;
  const owner = keypair();
  const twin = keypair();

  async function until(id: string, status: string) {
    const end = Date.now() + 15_000;
    for (;;) {
      const r = (await planet.bosun.api('GET', `/v1/relays/${id}`)).body;
      if (r.live.status === status) return;
      if (Date.now() > end) throw new Error(`${id}: live ${r.live.status}, wanted ${status}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  beforeAll(async () => {
    [planet, browser] = await Promise.all([
      startPlanet({
        verify: { graceMs: 60_000 },
        serving: { failLoad: ['broken'], servedSecret: { twin: twin.secret } },
      }),
      launchBrowser(),
    ]);
    for (const id of ['ok', 'broken', 'twin']) {
      await planet.bosun.api('POST', '/v1/relays', relayBody(id, owner.pubkey));
    }
    await Promise.all([until('ok', 'live'), until('broken', 'not_served'), until('twin', 'wrong_identity')]);
    page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    page.setDefaultTimeout(10_000);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await planet?.close();
  });

  it('counts, a banner for wrong_identity, not-live relays next to failing ones, a badge per relay', async () => {
    await page.goto(`${planet.bosun.url}/`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('main[data-view="overview"][data-loaded="true"]');
    const n = (status: string) => page.textContent(`#live-counts .card[data-live="${status}"] .n`);
    expect([await n('live'), await n('not_served'), await n('wrong_identity'), await n('stale')]).toEqual([
      '1',
      '1',
      '1',
      '0',
    ]);
    expect(await page.isVisible('#live-banner')).toBe(true);
    expect(await page.textContent('#live-banner')).toContain('1 wrong identity');
    const notLive = await page.textContent('#notlive');
    expect(notLive).toContain('broken');
    expect(notLive).toContain('twin');
    expect(notLive).not.toContain('ok.example.com');
    expect(await page.textContent('#notlive tr[data-relay="broken"]')).toMatch(/404/);
    const badge = (id: string) =>
      page.getAttribute(`#relays tr[data-relay="${id}"] [data-live]`, 'data-live');
    expect([await badge('ok'), await badge('broken'), await badge('twin')]).toEqual([
      'live',
      'not_served',
      'wrong_identity',
    ]);

    // The relay page says why it is not live.
    await page.goto(`${planet.bosun.url}/#/relay/twin`);
    await page.waitForSelector('main[data-loaded="true"] #live-error');
    expect(await page.textContent('#live-error')).toContain(twin.pubkey.slice(0, 16));
  });
});
