// The console's session API as a browser uses it: sign in with a password or a token, the cookie's
// attributes, CSRF on every change, sign out, expiry (absolute and idle), and tokens unaffected.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, createApiFixture, createWorld, bearer, WORLD_PASSWORD } from './app-fixture.ts';
import type { ApiFixture, World } from './app-fixture.ts';

let fixture: ApiFixture;
let world: World;
let clock = Date.now();

before(async () => {
  fixture = await createApiFixture({ now: () => clock });
  world = await createWorld(fixture);
});
after(async () => {
  await fixture.close();
});

const HOUR = 60 * 60 * 1000;

async function signIn(body: Record<string, string>) {
  const response = await call(fixture.app, 'POST', '/api/v1/session', { body, headers: { 'x-requested-with': 'manifold-console' } });
  const setCookie = String(response.headers['set-cookie'] ?? '');
  const cookie = /manifold_session=([^;]*)/.exec(setCookie)?.[1];
  return { response, setCookie, cookie: cookie ? `manifold_session=${cookie}` : '', csrf: response.json?.csrf_token as string };
}

test('a password sign-in sets an HttpOnly, SameSite=Strict cookie limited to /api/v1 (not Secure on plain HTTP) and answers the CSRF token', async () => {
  const owner = world.users.owner;
  const { response, setCookie, cookie, csrf } = await signIn({ username: owner.username, password: WORLD_PASSWORD });
  assert.equal(response.status, 201, response.body);
  assert.equal(response.json.user.username, owner.username);
  assert.match(setCookie, /HttpOnly/i);
  assert.match(setCookie, /SameSite=Strict/i);
  assert.match(setCookie, /Path=\/api\/v1/);
  assert.match(setCookie, /Max-Age=\d+/);
  assert.doesNotMatch(setCookie, /Secure/i);
  assert.ok(csrf && csrf.length >= 40);
  assert.ok(!setCookie.includes(csrf), 'the CSRF token is not the cookie value');
  const me = await call(fixture.app, 'GET', '/api/v1/session', { headers: { cookie } });
  assert.equal(me.status, 200);
  assert.equal(me.json.csrf_token, csrf);
  assert.equal(me.json.scopes, null);
});

test('behind TLS (here: a trusted proxy that says X-Forwarded-Proto: https) the cookie is also Secure', async () => {
  const proxied = await createApiFixture({ database: fixture.database, trustProxy: true });
  try {
    const owner = world.users.owner;
    const response = await call(proxied.app, 'POST', '/api/v1/session', { body: { username: owner.username, password: WORLD_PASSWORD }, headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(response.status, 201);
    assert.match(String(response.headers['set-cookie']), /;\s*Secure/i);
  } finally {
    await proxied.close();
  }
});

test('a wrong password is a 401 with the message under the password field and no Basic challenge for the console', async () => {
  const { response } = await signIn({ username: world.users.owner.username, password: 'not the password' });
  assert.equal(response.status, 401);
  assert.deepEqual(response.json.errors, { password: ['wrong username or password'] });
  assert.equal(response.headers['www-authenticate'], undefined);
  const missing = await signIn({ username: '' });
  assert.equal(missing.response.status, 400);
  assert.deepEqual(Object.keys(missing.response.json.errors).sort(), ['password', 'username']);
});

test('a change with the session cookie needs the CSRF token: without it (or with a wrong one) 403, with it done', async () => {
  const { cookie, csrf } = await signIn({ username: world.users.owner.username, password: WORLD_PASSWORD });
  const body = { name: 'csrf-probe', url: 'https://csrf.example.com' };
  const without = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { headers: { cookie }, body });
  assert.equal(without.status, 403);
  assert.match(without.json.detail, /X-CSRF-Token/i);
  const wrong = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { headers: { cookie, 'x-csrf-token': csrf.slice(1) + 'A' }, body });
  assert.equal(wrong.status, 403);
  const listed = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.id}/upstreams?search=csrf-probe`, { headers: { cookie } });
  assert.equal(listed.json.length, 0, 'the refused requests changed nothing');
  const done = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { headers: { cookie, 'x-csrf-token': csrf }, body });
  assert.equal(done.status, 201, done.body);
  // Tokens are not ambient credentials: no CSRF token needed, as before.
  const byToken = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { auth: bearer(world.users.owner.token), body: { name: 'by-token', url: 'https://by-token.example.com' } });
  assert.equal(byToken.status, 201);
});

test('after sign-out the session cookie is refused (401), and sign-out itself needs the CSRF token', async () => {
  const { cookie, csrf } = await signIn({ username: world.users.owner.username, password: WORLD_PASSWORD });
  assert.equal((await call(fixture.app, 'DELETE', '/api/v1/session', { headers: { cookie } })).status, 403);
  const out = await call(fixture.app, 'DELETE', '/api/v1/session', { headers: { cookie, 'x-csrf-token': csrf } });
  assert.equal(out.status, 204);
  assert.match(String(out.headers['set-cookie']), /manifold_session=;/);
  const after = await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie } });
  assert.equal(after.status, 401);
  assert.equal(after.headers['www-authenticate'], undefined, 'no browser password dialog for the console');
  assert.equal((await call(fixture.app, 'GET', '/api/v1/session', { headers: { cookie } })).status, 401);
});

test('a session ends when unused for the idle timeout, and after its lifetime however much it is used', async () => {
  const start = clock;
  try {
    const idle = await signIn({ username: world.users.owner.username, password: WORLD_PASSWORD });
    clock += 30 * 60 * 1000;
    assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: idle.cookie } })).status, 200);
    clock += 59 * 60 * 1000; // 59 min after the last use
    assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: idle.cookie } })).status, 200);
    clock += 61 * 60 * 1000;
    assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: idle.cookie } })).status, 401);

    const busy = await signIn({ username: world.users.owner.username, password: WORLD_PASSWORD });
    for (let hours = 0; hours < 12; hours++) {
      assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: busy.cookie } })).status, 200, `after ${hours} h`);
      clock += 50 * 60 * 1000;
      assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: busy.cookie } })).status, 200);
      clock += 10 * 60 * 1000;
    }
    assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: busy.cookie } })).status, 401, 'past its 12 h lifetime');
  } finally {
    clock = start + 48 * HOUR; // later tests sign in afresh
  }
});

test('a token sign-in keeps the token\'s limits: a read_api session reads but cannot change; revoking the token ends the session', async () => {
  const readOnly = await signIn({ token: world.readApiToken });
  assert.equal(readOnly.response.status, 201, readOnly.response.body);
  assert.deepEqual(readOnly.response.json.scopes, ['read_api']);
  assert.equal((await call(fixture.app, 'GET', `/api/v1/groups/${world.group.id}/registries`, { headers: { cookie: readOnly.cookie } })).status, 200);
  const change = await call(fixture.app, 'POST', `/api/v1/groups/${world.group.id}/upstreams`, { headers: { cookie: readOnly.cookie, 'x-csrf-token': readOnly.csrf }, body: { name: 'nope', url: 'https://nope.example.com' } });
  assert.equal(change.status, 403);

  const created = await call(fixture.app, 'POST', '/api/v1/user/personal_access_tokens', { auth: bearer(world.users.developer.token), body: { name: 'console', scopes: ['api'] } });
  const session = await signIn({ token: created.json.token });
  assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: session.cookie } })).json.username, world.users.developer.username);
  await call(fixture.app, 'DELETE', `/api/v1/user/personal_access_tokens/${created.json.id}`, { auth: bearer(world.users.developer.token) });
  assert.equal((await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie: session.cookie } })).status, 401);

  const deploy = await signIn({ token: world.deployToken });
  assert.equal(deploy.response.status, 403);
  assert.ok(deploy.response.json.errors.token);
  assert.equal((await signIn({ token: 'mfpat_wrong' })).response.status, 401);
});

test('with other credentials present the session cookie is ignored: a wrong token is refused', async () => {
  const { cookie } = await signIn({ username: world.users.owner.username, password: WORLD_PASSWORD });
  const wrongToken = await call(fixture.app, 'GET', '/api/v1/user', { headers: { cookie, authorization: 'Bearer mfpat_wrong' } });
  assert.equal(wrongToken.status, 401);
});
