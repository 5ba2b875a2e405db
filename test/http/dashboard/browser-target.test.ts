import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, SKIP_BROWSER } from '../../support/browser.js';
import { ADMIN_TOKEN } from '../../support/env.js';
import { startTargetFleet, type TargetFleet } from './target-fleet.js';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** axe-core's serious or critical violations on the page as it is. */
async function seriousViolations(p: Page): Promise<string[]> {
  await p.addScriptTag({ path: AXE });
  return p.evaluate(async () => {
    const { violations } = await (globalThis as any).axe.run((globalThis as any).document, {
      resultTypes: ['violations'],
    });
    return violations
      .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
      .map((v: any) => `${v.id}: ${v.nodes.map((n: any) => n.target.join(' ')).join(', ')}`);
  });
}

/** The overview's counts by target and a target's page, in headless Chromium (issue 17.6). */
describe.skipIf(SKIP_BROWSER)('dashboard by target in a browser', () => {
  let f: TargetFleet;
  let browser: Browser;

  beforeAll(async () => {
    [f, browser] = await Promise.all([startTargetFleet(), launchBrowser()]);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await f?.close();
  });

  const signedIn = async (token: string, hash = '') => {
    // CSP bypassed only so that axe-core's script may be added to the page.
    const page = await (await browser.newContext({ bypassCSP: true })).newPage();
    page.setDefaultTimeout(10_000);
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(String(err)));
    await page.goto(`${f.planet.bosun.url}/${hash}`);
    await page.fill('#token', token);
    await page.click('#signin-form button[type=submit]');
    return { page, errors };
  };
  const cell = (p: Page, row: string, label: string) =>
    p.textContent(`#by-target tr[data-target="${row}"] td[data-label="${label}"]`);

  it('admin: the overview groups relays by target; a target links to its failing relays and health', async () => {
    const { page, errors } = await signedIn(ADMIN_TOKEN);
    await page.waitForSelector('main[data-view="overview"][data-loaded="true"]');
    expect(await page.isVisible('#by-target-panel')).toBe(true);
    const rows = await page.$$eval('#by-target tbody tr', (trs) =>
      trs.map((tr) => tr.getAttribute('data-target')),
    );
    expect(rows).toEqual(['default', 'eu-1', 'none']);
    expect(await cell(page, 'default', 'synced')).toBe('2');
    expect(await cell(page, 'eu-1', 'failed')).toBe('1');
    expect(await cell(page, 'eu-1', 'retrying')).toBe('1');
    expect(await cell(page, 'none', 'target')).toBe('none (pull)');
    expect(await cell(page, 'none', 'total')).toBe('1');
    expect(await page.getAttribute('#by-target tr[data-target="eu-1"] [data-health]', 'data-health')).toBe(
      'up',
    );
    // The targets panel names each target, with its own health.
    expect(await page.textContent('#targets tr[data-target="eu-1"]')).toContain(f.eu.url);

    await page.click('#by-target tr[data-target="eu-1"] a');
    await page.waitForSelector('main[data-view="target:eu-1"][data-loaded="true"]');
    expect(page.url()).toMatch(/#\/target\/eu-1$/);
    expect(await page.textContent('#main h1')).toContain('eu-1');
    expect(await page.getAttribute('#main h1 [data-health]', 'data-health')).toBe('up');
    expect(await page.textContent('#target-fleets')).toBe('eu');
    expect(await page.textContent('#target-sync-failures')).toBe('1');
    expect(await page.textContent('.card[data-status="failed"] .n')).toBe('1');
    const ids = await page.$$eval('#failing tbody tr', (trs) =>
      trs.map((tr) => tr.getAttribute('data-relay')),
    );
    expect(ids).toEqual(['eu-bad', 'eu-later']);
    const bad = page.locator('#failing tr[data-relay="eu-bad"]');
    expect(await bad.locator('td.err').textContent()).toContain('400');
    expect(await bad.textContent()).toContain('waits for a resync');
    const later = page.locator('#failing tr[data-relay="eu-later"]');
    expect(await later.locator('td.err').textContent()).toContain('500');
    expect(await later.locator('td[data-label="next attempt"] time').textContent()).toMatch(
      /^in (\d+ s|1 min)$/,
    );
    expect(await seriousViolations(page)).toEqual([]);
    // A relay of the page links to the relay's own page.
    await later.locator('a').first().click();
    await page.waitForSelector('main[data-view="relay:eu-later"][data-loaded="true"]');
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('a tenant sees no counts by target and no target page', async () => {
    const { page, errors } = await signedIn(f.aliceToken);
    await page.waitForSelector('main[data-view="overview"][data-loaded="true"]');
    expect(await page.isHidden('#by-target-panel')).toBe(true);
    await page.evaluate(() => {
      (globalThis as any).location.hash = '#/target/eu-1';
    });
    await page.waitForSelector('main[data-view="target:eu-1"][data-loaded="true"]');
    expect(await page.textContent('#main .error')).toMatch(/admin/i);
    expect(await page.locator('#failing').count()).toBe(0);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
