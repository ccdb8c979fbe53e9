// An upstream's password goes in and never comes out: not in a response, a list, an audit event or a
// log line, whatever the route (create, update, show, list, registry show, connection tests, errors).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRegistry } from '../../helpers/fake-registry.ts';
import { bearer, call, createApiFixture, createWorld } from './app-fixture.ts';
import type { ApiFixture, Call, World } from './app-fixture.ts';

let fixture: ApiFixture;
let world: World;
let upstream: FakeRegistry;

before(async () => {
  upstream = await FakeRegistry.start({ auth: { kind: 'basic', username: 'puller', password: 'first-Secret-4f2a' } });
  fixture = await createApiFixture({ allowPrivateUpstreams: true });
  world = await createWorld(fixture);
});
after(async () => {
  await fixture.close();
  await upstream.close();
});

test('an upstream password never appears in any response, list, audit event or log line', async () => {
  const passwords = ['first-Secret-4f2a', 'second-Secret-9b1c', 'third-Secret-77de', 'unsaved-Secret-0c3e', 'refused-Secret-5a5a', 'override-Secret-e1e1'];
  const auth = bearer(world.users.owner.token);
  const G = world.group.id;
  const responses: Call[] = [];
  const send = async (method: string, url: string, body?: unknown) => {
    const response = await call(fixture.app, method, url, { auth, body });
    responses.push(response);
    return response;
  };

  const registry = await send('POST', `/api/v1/groups/${G}/registries`, { name: 'private' });
  assert.equal(registry.status, 201);
  const linked = await send('POST', `/api/v1/registries/${registry.json.id}/upstreams`, { name: 'vault', url: upstream.url, username: 'puller', password: passwords[0] });
  assert.equal(linked.status, 201);
  assert.equal(linked.json.upstream.has_credentials, true);
  const upstreamId = linked.json.upstream_id;
  const tested = await send('POST', `/api/v1/upstreams/${upstreamId}/test`);
  assert.equal(tested.status, 200, tested.body);
  assert.equal(tested.json.success, true, 'the stored password works against the upstream');
  const wrong = await send('POST', `/api/v1/upstreams/${upstreamId}/test`, { username: 'puller', password: passwords[5] });
  assert.equal(wrong.json.success, false);
  assert.equal(wrong.json.status, 401);

  const other = await send('POST', `/api/v1/groups/${G}/upstreams`, { name: 'other', url: `${upstream.url}/other`, username: 'puller', password: passwords[1] });
  assert.equal(other.status, 201);
  assert.equal((await send('PATCH', `/api/v1/upstreams/${other.json.id}`, { username: 'puller', password: passwords[2] })).status, 200);
  assert.equal((await send('POST', `/api/v1/groups/${G}/upstreams/test`, { url: upstream.url, username: 'puller', password: passwords[3] })).status, 200);
  assert.equal((await send('POST', `/api/v1/groups/${G}/upstreams`, { name: 'bad', url: 'ftp://nowhere', username: 'puller', password: passwords[4] })).status, 400);
  assert.equal((await send('POST', `/api/v1/groups/${G}/upstreams`, { name: 'bad', url: upstream.url, password: passwords[4] })).status, 400);

  await send('GET', `/api/v1/upstreams/${upstreamId}`);
  await send('GET', `/api/v1/upstreams/${other.json.id}`);
  await send('GET', `/api/v1/groups/${G}/upstreams`);
  await send('GET', `/api/v1/registries/${registry.json.id}`);
  await send('GET', `/api/v1/registries/${registry.json.id}/upstreams`);
  const events = await send('GET', `/api/v1/groups/${G}/audit_events?per_page=100`);
  assert.ok(events.json.some((event: { action: string }) => event.action === 'upstream.update'), 'the changes are audited');
  await send('DELETE', `/api/v1/upstreams/${other.json.id}`);

  const rows = await fixture.database.db.selectFrom('audit_events').select('details').execute();
  const places = {
    responses: responses.map((r) => `${JSON.stringify(r.headers)}\n${r.body}`).join('\n'),
    'audit events': rows.map((r) => r.details).join('\n'),
    log: fixture.logs(),
  };
  assert.ok(places.log.length > 0, 'the log was captured');
  for (const password of passwords) {
    for (const [place, text] of Object.entries(places)) assert.ok(!text.includes(password), `${password} is not in the ${place}`);
  }
  // Stored encrypted, not as it was given.
  const stored = await fixture.database.db.selectFrom('upstreams').select('password_encrypted').execute();
  assert.ok(stored.every((row) => row.password_encrypted === null || !passwords.some((p) => row.password_encrypted!.includes(p))));
});

test('an access token\'s plaintext is returned once, at creation, and appears nowhere else', async () => {
  const auth = bearer(world.users.maintainer.token);
  const created = await call(fixture.app, 'POST', '/api/v1/user/personal_access_tokens', { auth, body: { name: 'ci', scopes: ['read_api'] } });
  assert.equal(created.status, 201);
  const plaintext: string = created.json.token;
  assert.match(plaintext, /^mfpat_/);
  assert.equal(created.json.token_hint, plaintext.slice(0, created.json.token_hint.length));
  const usable = await call(fixture.app, 'GET', '/api/v1/user', { auth: { 'private-token': plaintext } });
  assert.equal(usable.status, 200);
  const listed = await call(fixture.app, 'GET', '/api/v1/user/personal_access_tokens', { auth });
  assert.ok(!listed.body.includes(plaintext));
  assert.ok(listed.json.every((token: Record<string, unknown>) => !('token' in token) && !('token_digest' in token)));
  assert.ok(!fixture.logs().includes(plaintext), 'not in the log either');
  assert.equal((await call(fixture.app, 'DELETE', `/api/v1/user/personal_access_tokens/${created.json.id}`, { auth })).status, 204);
  assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { auth: { 'private-token': plaintext } })).status, 401, 'a revoked token no longer works');
});
