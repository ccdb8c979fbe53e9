// The registry page's at-a-glance in a real browser shows what the cache stores for the registry and
// what was evicted (GET /registries/{id}/usage), in all and per upstream: before and after a group's
// storage quota evicts the least recently pulled entries.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { ADMIN_PASSWORD, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { insertCacheEntry } from '../helpers/virtual-registries.ts';
import { launchChromium, screenshotBothWidths, signedInPage } from '../helpers/browser.ts';

describe('the registry page: bytes stored and evictions', () => {
  let server: TestManifold;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let groupId: number;
  let registryId: number;

  before(async () => {
    // Entries just written may be evicted at once (no grace period).
    [server, browser] = await Promise.all([startManifold({ storage: { evictionGraceSeconds: 0 } }), launchChromium()]);
    const services = server.manifold.services;
    const group = unwrap(await services.groups.create(server.admin, { path: 'acme' }));
    groupId = group.id;
    const registry = unwrap(await services.registries.create(server.admin, group.id, { name: 'hub' }));
    registryId = registry.id;
    // Public address literals: nothing resolves or contacts them in this test. Four entries of 512 KiB on
    // the first upstream, one on the second: 2.5 MiB stored.
    for (const [name, url, count] of [['one', 'https://8.8.8.8', 4], ['two', 'https://8.8.4.4', 1]] as const) {
      const link = unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, registry.id, { name, url }));
      for (let i = 0; i < count; i++) await insertCacheEntry(server.manifold.database.db, group.id, link.upstream_id, 0, 512 * 1024);
    }
    ({ page, errors } = await signedInPage(browser, server.url, 'admin', ADMIN_PASSWORD));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const text = async (testId: string) => (await page.getByTestId(testId).textContent()) ?? '';
  /** The per-upstream rows: upstream, stored, entries, evicted. */
  const perUpstream = () => page.locator('table.usage tbody tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent)));

  it('shows the bytes stored and no evictions yet', async () => {
    await page.goto(`${server.url}/#/registries/${registryId}`);
    await page.getByTestId('stored-bytes').waitFor();
    assert.equal(await text('stored-bytes'), '2.5 MiB');
    assert.equal(await text('cached-entries'), '5 entries');
    assert.equal(await text('evicted-bytes'), '0 B');
    assert.deepEqual(await perUpstream(), [['one', '2.0 MiB', '4', '0 B (0 entries)'], ['two', '512 KiB', '1', '0 B (0 entries)']]);
  });

  it('after the group\'s storage quota evicted entries, Refresh shows fewer bytes stored and the evictions', async () => {
    // 2 MiB: over 90 % of it, entries go until at most 80 % is left (1.6 MiB), least recently pulled first.
    const patched = await fetch(`${server.url}/api/v1/groups/${groupId}`, {
      method: 'PATCH',
      headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ storage_quota_bytes: 2 * 1024 * 1024 }),
    });
    assert.equal(patched.status, 200, await patched.text());
    const check = await server.manifold.services.quota.check();
    assert.equal(check.evictedEntries, 2);

    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForFunction(() => document.querySelector('[data-testid="evicted-bytes"]')?.textContent === '1.0 MiB');
    assert.equal(await text('stored-bytes'), '1.5 MiB');
    assert.equal(await text('cached-entries'), '3 entries');
    assert.match(await text('evicted-entries'), /^2 entries, /);
    const rows = await perUpstream();
    assert.deepEqual(rows.map((row) => row[0]), ['one', 'two']);
    assert.equal(rows.reduce((sum, row) => sum + Number(row[2]), 0), 3, 'three entries left');
    assert.ok(rows.every((row) => /\(\d+ entr(y|ies)\)$/.test(row[3] ?? '')));
    await screenshotBothWidths(page, 'registry-storage');
    assert.deepEqual(errors, []);
  });
});
