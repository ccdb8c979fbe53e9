// What the API does with its resources, as a client sees it: authentication methods, pagination headers,
// If-Unmodified-Since, registries with their ordered upstreams, purges and cache entries, the cleanup
// policy, audit events, connection tests, members and users.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../../src/auth/policy.ts';
import { CACHE_ENTRY_STATUS } from '../../../src/db/schema.ts';
import { FakeRegistry } from '../../helpers/fake-registry.ts';
import { insertCacheEntry } from '../../helpers/virtual-registries.ts';
import { basic, bearer, call, createApiFixture, createWorld, privateToken, WORLD_PASSWORD } from './app-fixture.ts';
import type { ApiFixture, World } from './app-fixture.ts';

let fixture: ApiFixture;
let world: World;
let upstream: FakeRegistry;

before(async () => {
  upstream = await FakeRegistry.start({ auth: { kind: 'basic', username: 'puller', password: 'pull-Secret-1' } });
  fixture = await createApiFixture({ allowPrivateUpstreams: true });
  world = await createWorld(fixture);
});
after(async () => {
  await fixture.close();
  await upstream.close();
});

const ownerAuth = () => bearer(world.users.owner.token);

test('Bearer, PRIVATE-TOKEN and Basic (password, or a token as password) all authenticate', async () => {
  const owner = world.users.owner;
  for (const auth of [bearer(owner.token), privateToken(owner.token), basic(owner.username, WORLD_PASSWORD), basic('anything', owner.token)]) {
    const response = await call(fixture.app, 'GET', '/api/v1/user', { auth });
    assert.equal(response.status, 200);
    assert.equal(response.json.username, owner.username);
    assert.equal(response.json.password_hash, undefined);
  }
});

test('lists are paginated with X-Total, X-Page, X-Per-Page and a Link header', async () => {
  for (let i = 0; i < 5; i++) assert.ok((await fixture.services.upstreams.create(SYSTEM, world.group.id, { name: `paged-${i}`, url: `https://paged${i}.example.com` })).ok);
  const response = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.path}/upstreams?search=PAGED&per_page=2&page=2`, { auth: ownerAuth() });
  assert.equal(response.status, 200);
  assert.deepEqual(response.json.map((u: { name: string }) => u.name), ['paged-2', 'paged-3']);
  assert.equal(response.headers['x-total'], '5');
  assert.equal(response.headers['x-total-pages'], '3');
  assert.equal(response.headers['x-page'], '2');
  assert.equal(response.headers['x-per-page'], '2');
  assert.equal(response.headers['x-next-page'], '3');
  assert.equal(response.headers['x-prev-page'], '1');
  const links = Object.fromEntries(String(response.headers.link).split(', ').map((part) => {
    const [, url, rel] = /^<([^>]+)>; rel="(\w+)"$/.exec(part)!;
    return [rel, new URL(url)];
  }));
  assert.deepEqual(Object.keys(links).sort(), ['first', 'last', 'next', 'prev']);
  assert.equal(links.next.searchParams.get('page'), '3');
  assert.equal(links.next.searchParams.get('search'), 'PAGED', 'the other query parameters are kept');
  assert.equal(links.last.searchParams.get('page'), '3');
  assert.equal(links.first.searchParams.get('page'), '1');
  const defaults = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.id}/upstreams`, { auth: ownerAuth() });
  assert.equal(defaults.headers['x-per-page'], '20');
});

test('a registry shows its upstreams in order; links move, and purges mark the cache', async () => {
  const auth = ownerAuth();
  const registry = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/registries`, { auth, body: { name: 'ordered', description: 'three mirrors' } });
  assert.equal(registry.status, 201);
  assert.ok(registry.headers['last-modified']);
  const id = registry.json.id;
  const created = [];
  for (const name of ['first', 'second']) {
    const link = await call(fixture.app, 'POST', `/api/v1/registries/${id}/upstreams`, { auth, body: { name, url: `https://${name}.example.com` } });
    assert.equal(link.status, 201);
    created.push(link.json);
  }
  const lone = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { auth, body: { name: 'third', url: 'https://third.example.com' } });
  const linked = await call(fixture.app, 'POST', `/api/v1/registries/${id}/upstream_links`, { auth, body: { upstream_id: lone.json.id } });
  assert.equal(linked.status, 201);
  assert.equal(linked.json.position, 3);
  const again = await call(fixture.app, 'POST', `/api/v1/registries/${id}/upstream_links`, { auth, body: { upstream_id: lone.json.id } });
  assert.equal(again.status, 409);

  const moved = await call(fixture.app, 'PATCH', `/api/v1/registry_upstreams/${linked.json.id}`, { auth, body: { position: 1 } });
  assert.equal(moved.status, 200);
  const shown = await call(fixture.app, 'GET', `/api/v1/registries/${id}`, { auth });
  assert.deepEqual(shown.json.upstreams.map((l: { upstream: { name: string }; position: number }) => [l.position, l.upstream.name]), [[1, 'third'], [2, 'first'], [3, 'second']]);
  assert.equal(shown.json.description, 'three mirrors');

  const entries = [await insertCacheEntry(fixture.database.db, world.group.id, created[0].upstream_id), await insertCacheEntry(fixture.database.db, world.group.id, created[1].upstream_id)];
  const purged = await call(fixture.app, 'DELETE', `/api/v1/registries/${id}/cache`, { auth });
  assert.equal(purged.status, 202);
  assert.equal(purged.json.marked_entries, 2);
  const statuses = await fixture.database.db.selectFrom('cache_entries').select('status').where('id', 'in', entries).execute();
  assert.ok(statuses.every((row) => row.status === CACHE_ENTRY_STATUS.pending_destruction));

  const unlinked = await call(fixture.app, 'DELETE', `/api/v1/registry_upstreams/${moved.json.id}`, { auth });
  assert.equal(unlinked.status, 204);
  const after = await call(fixture.app, 'GET', `/api/v1/registries/${id}/upstreams`, { auth });
  assert.deepEqual(after.json.map((l: { position: number; upstream: { name: string } }) => [l.position, l.upstream.name]), [[1, 'first'], [2, 'second']]);
  assert.equal((await call(fixture.app, 'GET', `/api/v1/upstreams/${lone.json.id}`, { auth })).status, 200, 'the upstream stays in the group');
});

test('no answer of the API may be kept by a browser cache: a registry\'s Last-Modified stays when its upstreams move', async () => {
  const auth = ownerAuth();
  const registry = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/registries`, { auth, body: { name: 'uncached' } });
  const id = registry.json.id;
  const links = [];
  for (const name of ['near', 'far']) links.push((await call(fixture.app, 'POST', `/api/v1/registries/${id}/upstreams`, { auth, body: { name, url: `https://${name}.example.com` } })).json);
  const before = await call(fixture.app, 'GET', `/api/v1/registries/${id}`, { auth });
  await call(fixture.app, 'PATCH', `/api/v1/registry_upstreams/${links[1].id}`, { auth, body: { position: 1 } });
  const after = await call(fixture.app, 'GET', `/api/v1/registries/${id}`, { auth });
  assert.deepEqual(after.json.upstreams.map((link: { upstream: { name: string } }) => link.upstream.name), ['far', 'near']);
  // Last-Modified is the registry's own: without Cache-Control a browser would keep the answer for a tenth
  // of its age (RFC 9111 §4.2.2) and show the old order.
  assert.equal(after.headers['last-modified'], before.headers['last-modified']);
  for (const answer of [before, after]) assert.equal(answer.headers['cache-control'], 'no-store');
  // Lists, problems and the public sign-in routes alike.
  for (const [method, url, options] of [
    ['GET', `/api/v1/registries/${id}/upstreams`, { auth }],
    ['GET', '/api/v1/groups', { auth }],
    ['GET', '/api/v1/registries/999999', { auth }],
    ['GET', '/api/v1/groups', {}],
    ['GET', '/api/v1/session', {}],
    ['POST', '/api/v1/session', { body: { username: 'nobody', password: 'not a password' } }],
  ] as const) {
    const answer = await call(fixture.app, method, url, options);
    assert.equal(answer.headers['cache-control'], 'no-store', `${method} ${url} (${answer.status})`);
  }
});

test('cache entries: newest first, searched by path, paginated, deleted one at a time', async () => {
  const auth = ownerAuth();
  const made = await fixture.services.upstreams.create(SYSTEM, world.group.id, { name: 'entries', url: 'https://entries.example.com' });
  assert.ok(made.ok);
  const upstreamId = made.value.id;
  const db = fixture.database.db;
  const now = Date.now();
  const paths = ['/library/alpine/manifests/3.20', '/library/alpine/manifests/latest', '/library/nginx/manifests/1.27'];
  for (const [index, relativePath] of paths.entries()) {
    await db.insertInto('cache_entries').values({
      group_id: world.group.id, upstream_id: upstreamId, relative_path: relativePath, digest: `sha256:${String(index).repeat(64)}`, size: 10, content_type: 'application/vnd.oci.image.index.v1+json',
      upstream_etag: null, upstream_checked_at: now, downloaded_at: null, created_at: now + index, updated_at: now + index,
    }).execute();
  }
  const all = await call(fixture.app, 'GET', `/api/v1/upstreams/${upstreamId}/cache_entries`, { auth });
  assert.deepEqual(all.json.map((e: { relative_path: string }) => e.relative_path), [...paths].reverse(), 'newest first');
  assert.equal(all.json[0].status, 'default');
  const alpine = await call(fixture.app, 'GET', `/api/v1/upstreams/${upstreamId}/cache_entries?search=ALPINE&per_page=1`, { auth });
  assert.equal(alpine.headers['x-total'], '2');
  assert.deepEqual(alpine.json.map((e: { relative_path: string }) => e.relative_path), ['/library/alpine/manifests/latest']);
  const wildcard = await call(fixture.app, 'GET', `/api/v1/upstreams/${upstreamId}/cache_entries?search=${encodeURIComponent('%')}`, { auth });
  assert.equal(wildcard.json.length, 0, 'the search is a plain substring');

  const deleted = await call(fixture.app, 'DELETE', `/api/v1/cache_entries/${all.json[0].id}`, { auth });
  assert.equal(deleted.status, 204);
  assert.equal((await call(fixture.app, 'GET', `/api/v1/cache_entries/${all.json[0].id}`, { auth })).status, 404);
  const left = await call(fixture.app, 'GET', `/api/v1/upstreams/${upstreamId}/cache_entries`, { auth });
  assert.equal(left.headers['x-total'], '2');
  const purged = await call(fixture.app, 'DELETE', `/api/v1/upstreams/${upstreamId}/cache`, { auth });
  assert.deepEqual(purged.json, { marked_entries: 2 });
  assert.equal((await call(fixture.app, 'GET', `/api/v1/upstreams/${upstreamId}/cache_entries`, { auth })).json.length, 0);
});

test('If-Unmodified-Since on a delete: 412 when the resource changed after that date', async () => {
  const auth = ownerAuth();
  const registry = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/registries`, { auth, body: { name: 'guarded' } });
  const url = `/api/v1/registries/${registry.json.id}`;
  const lastModified = String(registry.headers['last-modified']);
  const old = new Date(Date.parse(lastModified) - 60_000).toUTCString();
  const refused = await call(fixture.app, 'DELETE', url, { auth, headers: { 'if-unmodified-since': old } });
  assert.equal(refused.status, 412);
  assert.match(String(refused.headers['content-type']), /^application\/problem\+json/);
  assert.equal((await call(fixture.app, 'GET', url, { auth })).status, 200, 'still there');
  const ignored = await call(fixture.app, 'DELETE', url, { auth, headers: { 'if-unmodified-since': 'yesterday-ish' } });
  assert.equal(ignored.status, 204, 'an unparseable date is ignored');

  const again = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/registries`, { auth, body: { name: 'guarded' } });
  const accepted = await call(fixture.app, 'DELETE', `/api/v1/registries/${again.json.id}`, { auth, headers: { 'if-unmodified-since': String(again.headers['last-modified']) } });
  assert.equal(accepted.status, 204);
});

test('the cleanup policy: created with defaults, changed, disabled, deleted; members read it', async () => {
  const auth = ownerAuth();
  const url = `/api/v1/groups/${world.group.id}/cleanup_policy`;
  assert.equal((await call(fixture.app, 'GET', url, { auth })).status, 404);
  const before = Date.now();
  const created = await call(fixture.app, 'PUT', url, { auth, body: {} });
  assert.equal(created.status, 201);
  assert.equal(created.json.enabled, true);
  assert.equal(created.json.keep_n_days_after_download, 30);
  assert.equal(created.json.cadence_days, 7);
  const week = 7 * 24 * 3600 * 1000;
  assert.ok(created.json.next_run_at >= before + week && created.json.next_run_at <= Date.now() + week, 'the first run is one cadence away');
  const changed = await call(fixture.app, 'PUT', url, { auth, body: { keep_n_days_after_download: 90, cadence_days: 1 } });
  assert.equal(changed.status, 200);
  assert.equal(changed.json.keep_n_days_after_download, 90);
  assert.ok(changed.json.next_run_at <= Date.now() + 24 * 3600 * 1000, 'a new cadence reschedules');
  const disabled = await call(fixture.app, 'PUT', url, { auth, body: { enabled: false } });
  assert.equal(disabled.json.next_run_at, null);
  assert.equal(disabled.json.keep_n_days_after_download, 90, 'fields left out keep their value');
  const read = await call(fixture.app, 'GET', url, { auth: bearer(world.users.guest.token) });
  assert.equal(read.status, 200);
  assert.equal(read.json.enabled, false);
  assert.equal((await call(fixture.app, 'DELETE', url, { auth })).status, 204);
  assert.equal((await call(fixture.app, 'GET', url, { auth })).status, 404);
  const events = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.id}/audit_events?per_page=100`, { auth });
  const actions = events.json.map((e: { action: string }) => e.action);
  for (const action of ['cleanup_policy.create', 'cleanup_policy.update', 'cleanup_policy.destroy']) assert.ok(actions.includes(action), action);
});

test('audit events say who changed what, for group owners and, instance-wide, for admins', async () => {
  const auth = ownerAuth();
  await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/registries`, { auth, body: { name: 'audited' } });
  const events = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.path}/audit_events?per_page=5`, { auth });
  assert.equal(events.status, 200);
  const event = events.json.find((e: { action: string }) => e.action === 'registry.create');
  assert.equal(event.actor_name, world.users.owner.username);
  assert.equal(event.actor_user_id, world.users.owner.id);
  assert.deepEqual(event.details.after, { name: 'audited', description: null, anonymous_pull: false, anonymous_networks: [], hostnames: [] });
  assert.ok(events.json[0].id > events.json[events.json.length - 1].id, 'newest first');

  const admin = bearer(world.users.admin.token);
  const created = await call(fixture.app, 'POST', '/api/v1/users', { auth: admin, body: { username: 'audited-user', password: 'a long enough password' } });
  assert.equal(created.status, 201);
  const instance = await call(fixture.app, 'GET', '/api/v1/audit_events', { auth: admin });
  assert.ok(instance.json.some((e: { action: string; target_id: number }) => e.action === 'user.create' && e.target_id === created.json.id));
  assert.ok(!JSON.stringify(instance.json).includes('a long enough password'));
});

test('connection tests of saved and unsaved upstreams report what the upstream answered', async () => {
  const auth = bearer(world.users.maintainer.token);
  const unsaved = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams/test`, { auth, body: { url: upstream.url, username: 'puller', password: 'pull-Secret-1' } });
  assert.equal(unsaved.status, 200);
  assert.equal(unsaved.json.success, true);
  assert.equal(unsaved.json.status, 404, 'the test image need not exist');
  const anonymous = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams/test`, { auth, body: { url: upstream.url } });
  assert.equal(anonymous.json.success, false);
  assert.equal(anonymous.json.status, 401);
  const badUrl = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams/test`, { auth, body: { url: 'https://user:pw@host.example.com' } });
  assert.equal(badUrl.status, 400);
  assert.ok(badUrl.json.errors.url);

  const saved = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { auth, body: { name: 'tested', url: upstream.url, username: 'puller', password: 'pull-Secret-1' } });
  const tested = await call(fixture.app, 'POST', `/api/v1/upstreams/${saved.json.id}/test`, { auth });
  assert.equal(tested.json.success, true);
  const before = upstream.requests.length;
  // Another URL is tried without the saved credentials: they belong to their host.
  const elsewhere = await call(fixture.app, 'POST', `/api/v1/upstreams/${saved.json.id}/test`, { auth, body: { url: `${upstream.url}/elsewhere` } });
  assert.equal(elsewhere.status, 200);
  assert.ok(upstream.requests.length > before, 'the other URL was asked');
  assert.ok(upstream.requests.slice(before).every((r) => r.headers.authorization === undefined));
  const reporter = await call(fixture.app, 'POST', `/api/v1/upstreams/${saved.json.id}/test`, { auth: bearer(world.users.reporter.token) });
  assert.equal(reporter.status, 403);
});

test('members: added by username, re-roled, removed; the last owner stays', async () => {
  const auth = ownerAuth();
  const admin = bearer(world.users.admin.token);
  const user = await call(fixture.app, 'POST', '/api/v1/users', { auth: admin, body: { username: 'newmember', password: 'a long enough password' } });
  const added = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/members`, { auth, body: { username: 'newmember', role: 'developer' } });
  assert.equal(added.status, 201);
  assert.equal(added.json.role, 'developer');
  assert.equal((await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/members`, { auth, body: { username: 'newmember', role: 'guest' } })).status, 409);
  const changed = await call(fixture.app, 'PATCH', `/api/v1/groups/${world.group.id}/members/${user.json.id}`, { auth, body: { role: 'maintainer' } });
  assert.equal(changed.json.role, 'maintainer');
  assert.equal((await call(fixture.app, 'DELETE', `/api/v1/groups/${world.group.id}/members/${user.json.id}`, { auth })).status, 204);
  const lastOwner = await call(fixture.app, 'DELETE', `/api/v1/groups/${world.group.id}/members/${world.users.owner.id}`, { auth });
  assert.equal(lastOwner.status, 409);
});

test('users: a blocked user is refused at once, and unblocked works again; groups list only what one may see', async () => {
  const admin = bearer(world.users.admin.token);
  const blocked = await call(fixture.app, 'POST', `/api/v1/users/${world.users.reporter.id}/block`, { auth: admin });
  assert.equal(blocked.json.blocked, true);
  assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { auth: bearer(world.users.reporter.token) })).status, 401);
  await call(fixture.app, 'POST', `/api/v1/users/${world.users.reporter.id}/unblock`, { auth: admin });
  assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { auth: bearer(world.users.reporter.token) })).status, 200);

  const mine = await call(fixture.app, 'POST', '/api/v1/groups', { auth: bearer(world.users.non_member.token), body: { path: 'outsiders', name: 'Outsiders' } });
  assert.equal(mine.status, 201);
  const outsiderGroups = await call(fixture.app, 'GET', '/api/v1/groups', { auth: bearer(world.users.non_member.token) });
  assert.deepEqual(outsiderGroups.json.map((g: { path: string }) => g.path), ['outsiders'], 'the creator owns it and sees only it');
  const adminGroups = await call(fixture.app, 'GET', '/api/v1/groups?per_page=100', { auth: admin });
  assert.ok(adminGroups.json.length >= 2);
});
