import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from '../../src/services/authentication.ts';
import type { RegistryTokens } from '../../src/auth/registry-tokens.ts';
import { hashPassword } from '../../src/auth/secrets.ts';
import { tokenRoutes } from '../../src/http/token-endpoint.ts';
import { TokenService } from '../../src/services/tokens.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUser, userActor } from '../helpers/fixtures.ts';
import { newRegistryTokens, newSigningKeys, onApi } from '../helpers/identity.ts';

const PASSWORD = 'a long enough password';
let database: TestDatabase;
let app: FastifyInstance;
let registryTokens: RegistryTokens;
let username: string;
let outsiderName: string;
let mine: string;
let theirs: string;
let patPlaintext: string;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

before(async () => {
  database = await createTestDatabase();
  registryTokens = newRegistryTokens(await newSigningKeys(), { ttlSeconds: 300 });
  const hash = await hashPassword(PASSWORD);
  const user = await insertUser(database.db);
  const outsider = await insertUser(database.db);
  await database.db.updateTable('users').set({ password_hash: hash }).where('id', 'in', [user.id, outsider.id]).execute();
  username = user.username;
  outsiderName = outsider.username;
  const group = await insertGroup(database.db);
  const other = await insertGroup(database.db);
  await insertMembership(database.db, group.id, user.id, 'guest');
  mine = `${group.path}/hub/library/alpine`;
  theirs = `${other.path}/hub/library/alpine`;
  const pat = await new TokenService({ db: database.db, changes: database.changes }).createPersonal(onApi(userActor(user.id)), { name: 'ci', scopes: ['read_virtual_registry'] });
  assert.ok(pat.ok);
  patPlaintext = pat.value.token;

  app = Fastify();
  tokenRoutes(app, {
    authenticator: new Authenticator({ db: database.db, registryTokens }),
    registryTokens,
    resolveGroupId: async (path) => (await database.db.selectFrom('groups').select('id').where('path', '=', path).executeTakeFirst())?.id ?? null,
  });
  await app.ready();
});
after(async () => {
  await app.close();
  await database.destroy();
});

async function accessOf(token: string) {
  const verified = await registryTokens.verify(token);
  assert.ok(verified.ok);
  return verified.value.access;
}

test('GET with Basic credentials and two scope parameters grants pull on the member group only', async () => {
  const response = await app.inject({
    method: 'GET',
    url: `/auth/token?service=registry.test&account=${username}&scope=${encodeURIComponent(`repository:${mine}:pull,push`)}&scope=${encodeURIComponent(`repository:${theirs}:pull`)}`,
    headers: { authorization: basic(username, PASSWORD) },
  });
  assert.equal(response.statusCode, 200, response.body);
  assert.equal(response.headers['cache-control'], 'no-store');
  const body = response.json();
  assert.equal(body.token, body.access_token);
  assert.equal(body.expires_in, 300);
  assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
  assert.deepEqual(await accessOf(body.token), [{ type: 'repository', name: mine, actions: ['pull'] }]);
});

test('a personal token works as the Basic password', async () => {
  const response = await app.inject({ method: 'GET', url: `/auth/token?service=registry.test&scope=repository:${mine}:pull`, headers: { authorization: basic('anything', patPlaintext) } });
  assert.equal(response.statusCode, 200);
  assert.deepEqual(await accessOf(response.json().token), [{ type: 'repository', name: mine, actions: ['pull'] }]);
});

test('a non-member asking for pull gets a token with an empty access list', async () => {
  const response = await app.inject({ method: 'GET', url: `/auth/token?service=registry.test&scope=repository:${mine}:pull`, headers: { authorization: basic(outsiderName, PASSWORD) } });
  assert.equal(response.statusCode, 200);
  assert.deepEqual(await accessOf(response.json().token), []);
});

test('anonymous callers get a token without access', async () => {
  const response = await app.inject({ method: 'GET', url: `/auth/token?service=registry.test&scope=repository:${mine}:pull` });
  assert.equal(response.statusCode, 200);
  const verified = await registryTokens.verify(response.json().token);
  assert.ok(verified.ok);
  assert.deepEqual(verified.value, { subject: { kind: 'anonymous' }, access: [] });
});

test('bad credentials get 401 with an OCI error body, and no token', async () => {
  for (const authorization of [basic(username, 'the wrong password'), basic('nobody-here', PASSWORD), 'Bearer eyJhbGciOiJFUzI1NiJ9.e30.x', basic('x', 'mfpat_nope')]) {
    const response = await app.inject({ method: 'GET', url: `/auth/token?service=registry.test&scope=repository:${mine}:pull`, headers: { authorization } });
    assert.equal(response.statusCode, 401, authorization);
    const body = response.json();
    assert.equal(body.errors[0].code, 'UNAUTHORIZED');
    assert.equal(body.token, undefined);
    assert.match(String(response.headers['www-authenticate']), /^Basic realm=/);
  }
});

test('POST: the OAuth2 password grant answers access_token, expires_in, scope and issued_at', async () => {
  const form = new URLSearchParams({
    grant_type: 'password', service: 'registry.test', client_id: 'docker', username, password: PASSWORD,
    scope: `repository:${mine}:pull repository:${theirs}:pull`,
  });
  const response = await app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form.toString() });
  assert.equal(response.statusCode, 200, response.body);
  const body = response.json();
  assert.equal(body.expires_in, 300);
  assert.equal(body.scope, `repository:${mine}:pull`);
  assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
  assert.deepEqual(await accessOf(body.access_token), [{ type: 'repository', name: mine, actions: ['pull'] }]);
});

test('POST: refresh tokens are not supported, bad credentials are 401', async () => {
  const post = (fields: Record<string, string>) => app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(fields).toString() });
  const refresh = await post({ grant_type: 'refresh_token', refresh_token: 'abc', service: 'registry.test', client_id: 'docker' });
  assert.equal(refresh.statusCode, 400);
  assert.equal(refresh.json().error, 'unsupported_grant_type');
  const missing = await post({ service: 'registry.test' });
  assert.equal(missing.statusCode, 400);
  assert.equal(missing.json().error, 'invalid_request');
  const wrong = await post({ grant_type: 'password', username, password: 'the wrong password', service: 'registry.test', client_id: 'docker' });
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.json().errors[0].code, 'UNAUTHORIZED');
});
