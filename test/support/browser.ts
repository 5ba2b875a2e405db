import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

/**
 * Debian's Chromium, driven by playwright-core (no browser download: `.ci/run` and the README's
 * set-up install it with apt). On CI a missing browser fails the tests; elsewhere they are skipped
 * with one line saying why.
 */
export const CHROMIUM = process.env.BOSUN_CHROMIUM ?? '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const SKIP_BROWSER = !HAVE_CHROMIUM && !process.env.CI;
if (SKIP_BROWSER) {
  console.warn(`browser tests skipped: ${CHROMIUM} not found (apt-get install chromium; CI installs it)`);
}

export const ARTIFACTS = fileURLToPath(new URL('../../test-results/', import.meta.url));

export function launchBrowser(): Promise<Browser> {
  if (!HAVE_CHROMIUM) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}
