// The console in a real browser (Debian Chromium via playwright-core), as a first-time admin uses it:
// sign in, create a group and a registry with two upstreams (real Distributions), reorder them by drag
// and by keyboard, test a connection, create a token and copy it; skopeo then pulls through the registry
// with that token, and the registry page shows the entries and, after a second pull, a higher hit ratio.
// Every page is photographed at 1280 and 390 px wide (test-results/console/).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { ADMIN_PASSWORD, startManifold } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { collectPageErrors, launchChromium, newContext, screenshotBothWidths } from '../helpers/browser.ts';

describe('the console, as a first-time admin', () => {
  const image = buildImage({ layerSizes: [4 * 1024, 200 * 1024] });
  let withImage: Distribution;
  let empty: Distribution;
  let server: TestManifold;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let skopeo: SkopeoClient;

  before(async () => {
    [withImage, empty, browser] = await Promise.all([Distribution.start(), Distribution.start(), launchChromium()]);
    await pushImage(withImage.url, 'library/app', image, { tag: '1.0' });
    server = await startManifold({ cache: { counterFlushSeconds: 1 } });
    context = await newContext(browser, server.url);
    page = await context.newPage();
    // Generous: CI machines here run at a load of 20 and more.
    page.setDefaultTimeout(30_000);
    errors = collectPageErrors(page);
    skopeo = new SkopeoClient(server.host);
  });
  after(async () => {
    skopeo?.cleanup();
    await browser?.close();
    await server?.stop();
    await Promise.all([withImage?.stop(), empty?.stop()]);
  });

  const registryId = async () => {
    const found = await server.manifold.database.db.selectFrom('registries').select('id').where('name', '=', 'hub').executeTakeFirstOrThrow();
    return found.id;
  };
  const upstreamOrder = async () => (await page.locator('ol.upstreams > li strong').allTextContents());
  /** The fills done (a blob's entry is written as its last bytes leave), and what the flush timers would write within a second, written now. */
  const flushCounters = async () => {
    await server.manifold.services.pull.settle();
    await server.manifold.services.counter.flush();
    await server.manifold.services.traffic.flush();
  };

  it('signs in with the admin password and lands on the groups page', async () => {
    const started = performance.now();
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Sign in to Manifold' }).waitFor();
    await screenshotBothWidths(page, 'sign-in');
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('wrong password, surely');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('wrong username or password').waitFor();
    assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true', 'the refused field is marked invalid');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Groups', exact: true }).waitFor();
    console.log(`# sign-in to groups page: ${Math.round(performance.now() - started)} ms`);
    const cookies = await context.cookies();
    const session = cookies.find((cookie) => cookie.name === 'manifold_session');
    assert.ok(session, 'a session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/api/v1');
  });

  it('creates a group and a registry with two upstreams, and tests a connection', async () => {
    await screenshotBothWidths(page, 'groups-empty');
    await page.getByLabel('Path').fill('acme');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('heading', { name: /acme/ }).first().waitFor();
    await page.getByLabel('Name', { exact: true }).fill('hub');
    await page.getByRole('button', { name: 'Create registry' }).click();
    await page.getByRole('heading', { name: 'Upstreams, in the order they are asked' }).waitFor();

    const add = async (name: string, url: string) => {
      await page.getByLabel('Upstream name').fill(name);
      await page.getByLabel('URL').fill(url);
      await page.getByRole('button', { name: 'Add upstream' }).click();
      await page.locator('ol.upstreams strong', { hasText: name }).waitFor();
    };
    await add('empty-mirror', empty.url);
    await add('distribution', withImage.url);
    assert.deepEqual(await upstreamOrder(), ['empty-mirror', 'distribution']);

    await page.getByRole('button', { name: 'Test the connection to distribution' }).click();
    await page.getByText(/Connection works/).waitFor();
  });

  it('reorders the upstreams by drag and by keyboard; the API agrees', async () => {
    const items = page.locator('ol.upstreams > li');
    await items.nth(1).dragTo(items.nth(0));
    await page.waitForFunction(() => document.querySelector('ol.upstreams > li strong')?.textContent === 'distribution');
    assert.deepEqual(await upstreamOrder(), ['distribution', 'empty-mirror']);

    // Keyboard: focus the handle of the first upstream and press the down arrow.
    await page.getByRole('button', { name: /^Reorder distribution/ }).focus();
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => document.querySelector('ol.upstreams > li strong')?.textContent === 'empty-mirror');
    assert.deepEqual(await upstreamOrder(), ['empty-mirror', 'distribution']);
    assert.match(await page.locator('[aria-live="polite"]').first().textContent() ?? '', /distribution moved to position 2 of 2/);
    // Focus follows the moved upstream, whose handle announces its new position: the next key moves it again.
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Reorder distribution, position 2 of 2: press the up or down arrow');
    await page.keyboard.press('ArrowUp');
    await page.waitForFunction(() => document.querySelector('ol.upstreams > li strong')?.textContent === 'distribution');

    const detail = await server.manifold.services.registryUpstreams.listForRegistry(server.admin, await registryId());
    assert.ok(detail.ok);
    assert.deepEqual(detail.value.map((link) => link.upstream.name), ['distribution', 'empty-mirror']);
  });

  let token = '';

  it('creates a token, shows it once with a copy button that puts it on the clipboard', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tokens' }).click();
    await page.getByRole('heading', { name: 'Personal access tokens' }).waitFor();
    await page.getByLabel('Token name').fill('laptop');
    await page.getByRole('button', { name: 'Create token' }).click();
    token = (await page.getByTestId('new-token').textContent()) ?? '';
    assert.match(token, /^mfpat_/);
    await page.getByRole('button', { name: 'Copy token' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
    await screenshotBothWidths(page, 'tokens');
    await page.getByRole('button', { name: 'Done' }).click();
    assert.equal(await page.getByTestId('new-token').count(), 0, 'the token is not shown again');
  });

  it('the copied token pulls an image with skopeo; the registry page shows the entries and the hit ratio rising after a second pull', async () => {
    const login = await skopeo.login('admin', token);
    assert.equal(login.code, 0, login.stderr);
    const first = await skopeo.copy('acme/hub/library/app', '1.0');
    assert.equal(first.code, 0, first.stderr);
    await flushCounters();

    const id = await registryId();
    const started = performance.now();
    await page.goto(`${server.url}/#/registries/${id}`);
    await page.locator('table.entries').waitFor();
    console.log(`# registry page rendered with its entries (loopback): ${Math.round(performance.now() - started)} ms`);
    const paths = await page.locator('table.entries code.path').allTextContents();
    assert.ok(paths.some((p) => p.includes('/library/app/manifests/1.0')), `the manifest is listed: ${paths.join(', ')}`);
    for (const blob of image.blobs) assert.ok(paths.some((p) => p.includes(blob.digest)), `blob ${blob.digest} is listed`);
    const ratioAfterFirst = Number.parseInt((await page.getByTestId('hit-ratio').textContent()) ?? '', 10);
    assert.ok(Number.isFinite(ratioAfterFirst), 'a hit ratio is shown after the first pull');

    const second = await skopeo.copy('acme/hub/library/app', '1.0');
    assert.equal(second.code, 0, second.stderr);
    await flushCounters();
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForFunction((before) => Number.parseInt(document.querySelector('[data-testid="hit-ratio"]')?.textContent ?? '', 10) > before, ratioAfterFirst);
    const ratioAfterSecond = Number.parseInt((await page.getByTestId('hit-ratio').textContent()) ?? '', 10);
    // The second pull is all hits, so the ratio over both pulls is above the first's.
    assert.ok(ratioAfterSecond > ratioAfterFirst, `hit ratio ${ratioAfterFirst} % then ${ratioAfterSecond} %`);
    assert.match((await page.getByTestId('cached-entries').textContent()) ?? '', /^[1-9]\d* entr(y|ies)$/);
    // Downloads were counted: the manifest was pulled twice.
    const manifestRow = page.locator('table.entries tr', { hasText: '/library/app/manifests/1.0' });
    assert.ok(Number(await manifestRow.locator('td').nth(4).textContent()) >= 2);
    await screenshotBothWidths(page, 'registry');
  });

  it('searches and purges cache entries with confirmation', async () => {
    await page.getByLabel('Image or digest contains').fill('manifests');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForFunction(() => [...document.querySelectorAll('table.entries code.path')].every((node) => node.textContent?.includes('/manifests/')));
    const row = page.locator('table.entries tr', { hasText: '/library/app/manifests/1.0' });
    await row.getByRole('button', { name: /^Purge / }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText(/The next pull fetches it again/).waitFor();
    await screenshotBothWidths(page, 'registry-purge-confirm');
    await dialog.getByRole('button', { name: 'Purge entry' }).click();
    await row.waitFor({ state: 'detached' });
    const left = await server.manifold.services.entries.findLive((await server.manifold.database.db.selectFrom('upstreams').select('id').where('name', '=', 'distribution').executeTakeFirstOrThrow()).id, '/library/app/manifests/1.0');
    assert.equal(left, null, 'the entry is marked for deletion');

    await page.getByRole('button', { name: 'Purge all' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Purge', exact: true }).click();
    await page.getByText(/entries purged; the next pulls fetch them again/).waitFor();
    await page.getByText('No cache entries matching “manifests”.').waitFor();
  });

  it('every other page renders at both widths without a script error', async () => {
    const group = 'acme';
    const visits: [string, string, RegExp][] = [
      ['groups', '#/groups', /Your groups/],
      ['group-registries', `#/groups/${group}/registries`, /Create a registry/],
      ['group-members', `#/groups/${group}/members`, /Members and roles/],
      ['group-tokens', `#/groups/${group}/tokens`, /Group access tokens/],
      ['group-cleanup', `#/groups/${group}/cleanup`, /Cleanup policy/],
      ['group-audit', `#/groups/${group}/audit`, /registry\.create/],
      ['users', '#/users', /Create a user/],
      ['mirror-routes', '#/mirror-routes', /Routes/],
    ];
    for (const [name, hash, expected] of visits) {
      await page.goto(`${server.url}/${hash}`);
      await page.getByText(expected).first().waitFor();
      await page.waitForFunction(() => !document.querySelector('[aria-busy="true"]'));
      await screenshotBothWidths(page, name);
    }
    const registry = await registryId();
    await page.goto(`${server.url}/#/registries/${registry}`);
    await page.locator('#connect').scrollIntoViewIfNeeded();
    const snippets = await page.locator('#connect pre').allTextContents();
    assert.equal(snippets.length, 4);
    assert.match(snippets[0], new RegExp(`docker login ${server.host.replace(/\./g, '\\.')}`));
    assert.match(snippets[1], new RegExp(`\\[host\\."http://${server.host.replace(/\./g, '\\.')}/v2/acme/hub"\\]`));
    assert.match(snippets[2], new RegExp(`location = "${server.host.replace(/\./g, '\\.')}/acme/hub"`));
    assert.match(snippets[3], /kubectl create secret docker-registry/);
    assert.deepEqual(errors, [], 'no script errors or CSP violations on any page');
  });

  it('signs out: the page shows the sign-in form and the old cookie is refused', async () => {
    const old = (await context.cookies()).find((cookie) => cookie.name === 'manifold_session');
    assert.ok(old);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('You have signed out.').waitFor();
    const replay = await fetch(`${server.url}/api/v1/user`, { headers: { cookie: `manifold_session=${old.value}` } });
    assert.equal(replay.status, 401);
  });
});
