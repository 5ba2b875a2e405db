import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, SKIP_BROWSER } from '../../support/browser.js';
import { ADMIN_TOKEN, startServer, type TestServer } from '../../support/env.js';

/** The page's router against hostile links: a malformed escape in the hash is no error. */
describe.skipIf(SKIP_BROWSER)('dashboard routing in a browser', () => {
  let s: TestServer;
  let browser: Browser;

  beforeAll(async () => {
    [s, browser] = await Promise.all([startServer(), launchBrowser()]);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('shows the overview for #/relay/<malformed escape>, without a page error', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    await page.goto(`${s.url}/#/relay/%E0%A4%A`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#signin-form button[type=submit]');
    await page.waitForSelector('main[data-view="overview"][data-loaded="true"]', { timeout: 10_000 });
    expect(errors).toEqual([]);
    await page.close();
  });
});
