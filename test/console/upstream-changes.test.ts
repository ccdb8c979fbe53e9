// The console on a registry that was set up a day ago, as most are: every change an admin makes to its
// upstreams (reorder by keyboard, add, remove) shows on the page at once, and after a keyboard move focus
// stays on the moved upstream's handle, so the next arrow key moves it again. (The API once let the
// browser keep the registry's answer by its Last-Modified for a tenth of its age, and the page showed the
// old list: on a day-old registry, for more than two hours.) A slow answer to an earlier search does not
// replace the answer to a later one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { ADMIN_PASSWORD, startManifold, unwrap } from '../helpers/manifold.ts';
import { insertCacheEntry } from '../helpers/virtual-registries.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { launchChromium, signedInPage } from '../helpers/browser.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

describe('the console on a day-old registry', () => {
  let server: TestManifold;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let registryId: number;
  const digests: string[] = [];

  before(async () => {
    [server, browser] = await Promise.all([startManifold(), launchChromium()]);
    const services = server.manifold.services;
    const group = unwrap(await services.groups.create(server.admin, { path: 'acme' }));
    const registry = unwrap(await services.registries.create(server.admin, group.id, { name: 'hub' }));
    registryId = registry.id;
    // Public address literals: nothing resolves or contacts them in this test.
    for (const [name, url] of [['one', 'https://8.8.8.8'], ['two', 'https://8.8.4.4']]) {
      unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, registry.id, { name, url }));
    }
    // Two cache entries of upstream one (which stays), told apart by their digests.
    const [one] = unwrap(await services.registryUpstreams.listForRegistry(server.admin, registry.id));
    for (let i = 0; i < 2; i++) {
      const entry = await insertCacheEntry(server.manifold.database.db, group.id, one.upstream_id);
      digests.push((await server.manifold.database.db.selectFrom('cache_entries').select('digest').where('id', '=', entry).executeTakeFirstOrThrow()).digest);
    }
    const yesterday = Date.now() - DAY_MS;
    await server.manifold.database.db.updateTable('registries').set({ updated_at: yesterday }).where('id', '=', registry.id).execute();

    ({ page, errors } = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD));
    await page.goto(`${server.url}/#/registries/${registryId}`);
    await page.locator('ol.upstreams').waitFor();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const shown = () => page.locator('ol.upstreams > li strong').allTextContents();
  const showsOrder = (names: string[]) => page.waitForFunction((expected) => [...document.querySelectorAll('ol.upstreams > li strong')].map((node) => node.textContent).join() === expected, names.join());
  /** The accessible name of the focused element: what a screen reader announces. */
  const focused = () => page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.tagName ?? null);

  it('moves an upstream down and up again with the arrow keys; focus follows the moved handle', async () => {
    await page.getByRole('button', { name: /^Reorder one/ }).focus();
    for (const [key, order, position] of [['ArrowDown', ['two', 'one'], 2], ['ArrowUp', ['one', 'two'], 1], ['ArrowDown', ['two', 'one'], 2]] as const) {
      // The keys go to whatever has focus, as a keyboard user's do.
      await page.keyboard.press(key);
      await showsOrder([...order]);
      assert.equal(await focused(), `Reorder one, position ${position} of 2: press the up or down arrow`, `after ${key}`);
      assert.match(await page.locator('[aria-live="polite"]').first().textContent() ?? '', new RegExp(`one moved to position ${position} of 2`));
    }
    const links = unwrap(await server.manifold.services.registryUpstreams.listForRegistry(server.admin, registryId));
    assert.deepEqual(links.map((link) => link.upstream.name), ['two', 'one']);
  });

  it('adds an upstream and removes one; the list shows each change', async () => {
    await page.getByLabel('Upstream name').fill('three');
    await page.getByLabel('URL').fill('https://1.1.1.1');
    await page.getByRole('button', { name: 'Add upstream' }).click();
    await showsOrder(['two', 'one', 'three']);

    await page.getByRole('button', { name: 'Remove two' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove upstream' }).click();
    await showsOrder(['one', 'three']);
    assert.deepEqual(await shown(), ['one', 'three']);
    assert.deepEqual(errors, [], 'no script errors');
  });

  it('a slow answer to an earlier search does not replace the answer to a later one', async () => {
    const [first, second] = digests.map((digest) => digest.slice('sha256:'.length, 'sha256:'.length + 16));
    // The first search's answer is held back until the second's has been shown.
    await page.route(`**/cache_entries?*search=${first}*`, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await route.continue();
    });
    const firstAnswered = page.waitForResponse((response) => response.url().includes(`search=${first}`));
    await page.getByLabel('Image or digest contains').fill(first);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByLabel('Image or digest contains').fill(second);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('table.entries code.path', { hasText: second }).waitFor();
    await firstAnswered;
    // Give the page the time to apply the late answer, as it would.
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 200)));
    const paths = await page.locator('table.entries code.path').allTextContents();
    assert.equal(paths.length, 1, paths.join(', '));
    assert.ok(paths[0].includes(second), `the later search is shown: ${paths[0]}`);
    await page.unrouteAll();
  });
});
