// A real browser for the console's tests: Debian's Chromium (/usr/bin/chromium) driven by playwright-core,
// headless, with the flags this closed network needs (no background connections to Google's hosts).
// Missing Chromium or an unbuilt console fails the test loudly. Screenshots go to test-results/console/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';

export const CHROMIUM = process.env.MANIFOLD_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../../test-results/console');
const CONSOLE_INDEX = path.resolve(import.meta.dirname, '../../dist/console/index.html');

export const WIDTHS = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } } as const;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is missing at ${CHROMIUM}: apt-get install chromium (bash .ci/run installs it)`);
  if (!existsSync(CONSOLE_INDEX)) throw new Error(`the console is not built (${CONSOLE_INDEX} is missing): run npm run build:console (npm ci does it)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions'],
  });
}

/** A fresh browser profile (cookies, storage) at desktop width, allowed to use the clipboard on `origin`. */
export async function newContext(browser: Browser, origin: string): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: WIDTHS.desktop, reducedMotion: 'reduce' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  return context;
}

/** Full-page screenshots of the page as it is now, at 1280 px and at 390 px wide; the viewport is restored. */
export async function screenshotBothWidths(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const before = page.viewportSize() ?? WIDTHS.desktop;
  for (const [label, size] of Object.entries(WIDTHS)) {
    await page.setViewportSize(size);
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}-${label}.png`), fullPage: true });
    // Usable at this width: nothing makes the whole page scroll sideways (wide tables scroll in their own box).
    const wider = await page.evaluate((width) => {
      if (document.documentElement.scrollWidth <= width) return [];
      // The outermost elements that reach past the screen's edge.
      const culprits = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > width + 1 && !(e.parentElement && e.parentElement.getBoundingClientRect().right > width + 1));
      return [`the page is ${document.documentElement.scrollWidth} px`, ...culprits.slice(0, 5).map((e) => `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px)`)];
    }, size.width);
    if (wider.length > 0) throw new Error(`${name} at ${size.width} px is wider than the screen: ${wider.join(', ')}`);
  }
  await page.setViewportSize(before);
}

/** Fails the test on any error the page logs (a failed script, a CSP violation, an uncaught exception). */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  page.on('console', (message) => {
    // A 4xx the page expects (a refused sign-in, a field error) is logged by Chromium as a failed resource.
    if (message.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())) errors.push(message.text());
  });
  return errors;
}

/**
 * A page signed in to the console at `origin` in a fresh profile, on the groups list, with its errors
 * collected (collectPageErrors).
 */
export async function signedInPage(browser: Browser, origin: string, username: string, password: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await newContext(browser, origin);
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors = collectPageErrors(page);
  await page.goto(origin);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Groups', exact: true }).waitFor();
  return { context, page, errors };
}
