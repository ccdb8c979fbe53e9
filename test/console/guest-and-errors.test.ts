// The console in a real browser for a guest of a group and for bad input: a guest sees registries and
// entries but no edit controls, and the API refuses a change made with the guest's session (403); a change
// without the CSRF token is refused; a signed-out session's cookie is refused; invalid input (a registry
// name with a slash, a private upstream URL) shows the API's message next to its field.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { insertCacheEntry } from '../helpers/virtual-registries.ts';
import { ADMIN_PASSWORD, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { launchChromium, screenshotBothWidths, signedInPage } from '../helpers/browser.ts';

const GUEST_PASSWORD = 'a guest password, long enough';

describe('the console for a guest, and its refusals', () => {
  let server: TestManifold;
  let browser: Browser;
  let registryId: number;
  let groupId: number;

  before(async () => {
    // Private upstreams are not allowed here (the default): the private URL case needs it.
    [server, browser] = await Promise.all([startManifold({ upstream: { allowPrivate: false } }), launchChromium()]);
    const services = server.manifold.services;
    const group = unwrap(await services.groups.create(server.admin, { path: 'acme' }));
    groupId = group.id;
    const registry = unwrap(await services.registries.create(server.admin, group.id, { name: 'hub' }));
    registryId = registry.id;
    // A public address literal: nothing resolves or contacts it in this test.
    const link = unwrap(await services.registryUpstreams.createUpstreamForRegistry(server.admin, registry.id, { name: 'public', url: 'https://8.8.8.8' }));
    await insertCacheEntry(server.manifold.database.db, group.id, link.upstream_id);
    unwrap(await services.users.create(server.admin, { username: 'gus', password: GUEST_PASSWORD }));
    unwrap(await services.memberships.add(server.admin, { group_id: group.id, username: 'gus', role: 'guest' }));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  const signedIn = (username: string, password: string) => signedInPage(browser, server.url, username, password);

  /** A request from the page itself, with its session cookie; the CSRF token only when asked. */
  const fromPage = (page: Page, method: string, path: string, body: unknown, withCsrf: boolean) => page.evaluate(async ({ method, path, body, withCsrf }) => {
    const session = await (await fetch('/api/v1/session')).json() as { csrf_token: string };
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (withCsrf) headers['x-csrf-token'] = session.csrf_token;
    const response = await fetch(`/api/v1${path}`, { method, headers, body: JSON.stringify(body) });
    return { status: response.status, body: await response.text() };
  }, { method, path, body, withCsrf });

  it('a guest sees the registries and entries but no edit controls', async () => {
    const { context, page, errors } = await signedIn('gus', GUEST_PASSWORD);
    try {
      await page.getByRole('link', { name: 'acme' }).click();
      await page.getByRole('link', { name: 'hub' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Create registry' }).count(), 0);
      const tabs = await page.getByRole('navigation', { name: 'Group sections' }).getByRole('link').allTextContents();
      assert.deepEqual(tabs, ['Registries', 'Members', 'Cleanup policy'], 'no owner tabs (tokens, audit) for a guest');
      await screenshotBothWidths(page, 'guest-group');

      await page.getByRole('link', { name: 'hub' }).click();
      await page.locator('table.entries').waitFor();
      assert.equal(await page.locator('table.entries tbody tr').count(), 1, 'the entry is listed');
      assert.match(await page.locator('ol.upstreams').textContent() ?? '', /public/);
      for (const name of [/^Purge/, /^Reorder/, /^Remove/, /^Move/, /^Test/, 'Add upstream', /^Change the credentials/]) {
        assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${String(name)} control for a guest`);
      }
      assert.equal(await page.locator('[draggable="true"]').count(), 0, 'nothing to drag');
      await screenshotBothWidths(page, 'guest-registry');

      // The API decides, not the page: with the guest's session and a valid CSRF token every change is 403.
      for (const [method, path, body] of [
        ['PATCH', `/registries/${registryId}`, { name: 'renamed' }],
        ['DELETE', `/registries/${registryId}/cache`, {}],
        ['POST', `/registries/${registryId}/upstreams`, { name: 'more', url: 'https://8.8.4.4' }],
        ['PUT', `/groups/${groupId}/cleanup_policy`, { enabled: false }],
      ] as const) {
        const answer = await fromPage(page, method, path, body, true);
        assert.equal(answer.status, 403, `${method} ${path}: ${answer.body}`);
      }
      const still = unwrap(await server.manifold.services.registries.get(server.admin, registryId));
      assert.equal(still.name, 'hub');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });

  it('a change without the CSRF token is refused; the same change with it is done', async () => {
    const { context, page } = await signedIn('gus', GUEST_PASSWORD);
    try {
      // Any user may create a group: only the CSRF token decides here.
      const without = await fromPage(page, 'POST', '/groups', { path: 'no-csrf' }, false);
      assert.equal(without.status, 403);
      assert.match(without.body, /X-CSRF-Token/i);
      assert.equal((await server.manifold.services.groups.getByPath(server.admin, 'no-csrf')).ok, false, 'nothing was created');
      const withToken = await fromPage(page, 'POST', '/groups', { path: 'with-csrf' }, true);
      assert.equal(withToken.status, 201, withToken.body);
    } finally {
      await context.close();
    }
  });

  it('after signing out, the session cookie is refused and the page asks to sign in', async () => {
    const { context, page } = await signedIn('gus', GUEST_PASSWORD);
    try {
      const cookie = (await context.cookies()).find((c) => c.name === 'manifold_session');
      assert.ok(cookie);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: 'Sign in to Manifold' }).waitFor();
      assert.equal((await context.cookies()).some((c) => c.name === 'manifold_session'), false, 'the cookie is cleared');
      const replay = await fetch(`${server.url}/api/v1/groups`, { headers: { cookie: `manifold_session=${cookie.value}` } });
      assert.equal(replay.status, 401);
      // Put back in the browser, the old cookie does not bring the session back.
      await context.addCookies([{ ...cookie }]);
      await page.reload();
      await page.getByRole('heading', { name: 'Sign in to Manifold' }).waitFor();
    } finally {
      await context.close();
    }
  });

  it('invalid input shows the API\'s message next to the field: a registry name with a slash, a private upstream URL', async () => {
    const { context, page, errors } = await signedIn('admin', ADMIN_PASSWORD);
    try {
      const apiMessage = async (path: string, body: unknown, field: string) => {
        const answer = await fetch(`${server.url}/api/v1${path}`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        assert.equal(answer.status, 400);
        return ((await answer.json()) as { errors: Record<string, string[]> }).errors[field].join(', ');
      };
      /** The message shown for the field, found through the input's aria-describedby. */
      const shownFor = (label: string) => page.getByLabel(label, { exact: true }).evaluate((input) => {
        const ids = (input.getAttribute('aria-describedby') ?? '').split(' ');
        return { invalid: input.getAttribute('aria-invalid'), text: ids.map((id) => document.getElementById(id)?.textContent ?? '').join(' ') };
      });

      await page.goto(`${server.url}/#/groups/acme/registries`);
      await page.getByLabel('Name', { exact: true }).fill('team/hub');
      await page.getByRole('button', { name: 'Create registry' }).click();
      const nameMessage = await apiMessage(`/groups/${groupId}/registries`, { name: 'team/hub' }, 'name');
      await page.getByText(nameMessage).waitFor();
      const name = await shownFor('Name');
      assert.equal(name.invalid, 'true');
      assert.ok(name.text.includes(nameMessage), `"${name.text}" carries "${nameMessage}"`);
      await screenshotBothWidths(page, 'error-registry-name');

      await page.goto(`${server.url}/#/registries/${registryId}`);
      await page.getByLabel('Upstream name').fill('internal');
      await page.getByLabel('URL').fill('http://127.0.0.1:5000');
      await page.getByRole('button', { name: 'Add upstream' }).click();
      const urlMessage = await apiMessage(`/registries/${registryId}/upstreams`, { name: 'internal', url: 'http://127.0.0.1:5000' }, 'url');
      assert.match(urlMessage, /internal host/);
      await page.getByText(urlMessage).waitFor();
      const url = await shownFor('URL');
      assert.equal(url.invalid, 'true');
      assert.ok(url.text.includes(urlMessage));
      await page.getByRole('heading', { name: 'Add an upstream' }).scrollIntoViewIfNeeded();
      await screenshotBothWidths(page, 'error-upstream-url');
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
});
