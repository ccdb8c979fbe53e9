// Bad input through the API: every create and update refuses it with 400 and messages per field, and
// writes nothing; malformed bodies, content types and ids are 4xx problems, never a 500.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../../src/auth/policy.ts';
import type { Db } from '../../../src/db/connect.ts';
import { bearer, call, createApiFixture, createWorld } from './app-fixture.ts';
import type { ApiFixture, World } from './app-fixture.ts';

const TABLES = ['users', 'groups', 'memberships', 'access_tokens', 'registries', 'upstreams', 'registry_upstreams', 'cache_entries', 'cleanup_policies', 'audit_events'] as const;

async function counts(db: Db): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const table of TABLES) {
    const { n } = await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    result[table] = Number(n);
  }
  return result;
}

let fixture: ApiFixture;
let world: World;
let registryId: number;
let fullRegistryId: number;
let upstreamId: number;
let linkId: number;
let spareUpstreamId: number;
const long = (n: number) => 'a'.repeat(n);

before(async () => {
  // Private addresses refused, as on a default instance.
  fixture = await createApiFixture({ allowPrivateUpstreams: false });
  world = await createWorld(fixture);
  const { registries, links } = fixture.services;
  const made = [];
  for (let i = 1; i <= 5; i++) {
    const created = await registries.create(SYSTEM, world.group.id, { name: `registry${i}` });
    assert.ok(created.ok);
    made.push(created.value.id);
  }
  [registryId, fullRegistryId] = made;
  const spare = await fixture.services.upstreams.create(SYSTEM, world.group.id, { name: 'spare', url: 'https://spare.example.com' });
  assert.ok(spare.ok);
  spareUpstreamId = spare.value.id;
  for (let i = 1; i <= 5; i++) {
    const linked = await links.createUpstreamForRegistry(SYSTEM, fullRegistryId, { name: `mirror${i}`, url: `https://mirror${i}.example.com` });
    assert.ok(linked.ok);
    if (i === 1) {
      upstreamId = linked.value.upstream_id;
      linkId = linked.value.id;
    }
  }
});
after(() => fixture.close());

interface Case {
  name: string;
  method: string;
  url: () => string;
  body?: unknown;
  /** The fields that must carry a message. */
  fields: string[];
  /** Who asks: the group's owner, or an admin for users. */
  as?: 'admin';
}

const G = () => world.group.id;
const cases: Case[] = [
  { name: 'group path not one path component', method: 'POST', url: () => '/api/v1/groups', body: { path: 'Bad Path!' }, fields: ['path'] },
  { name: 'group path overlong', method: 'POST', url: () => '/api/v1/groups', body: { path: long(256) }, fields: ['path'] },
  { name: 'group name overlong', method: 'POST', url: () => '/api/v1/groups', body: { path: 'fine', name: long(256) }, fields: ['name'] },
  { name: 'group update with an empty name', method: 'PATCH', url: () => `/api/v1/groups/${G()}`, body: { name: '  ' }, fields: ['name'] },
  { name: 'registry name with upper case', method: 'POST', url: () => `/api/v1/groups/${G()}/registries`, body: { name: 'Hub' }, fields: ['name'] },
  { name: 'registry name of two path components', method: 'POST', url: () => `/api/v1/groups/${G()}/registries`, body: { name: 'docker/hub' }, fields: ['name'] },
  { name: 'registry name empty', method: 'POST', url: () => `/api/v1/groups/${G()}/registries`, body: { name: '' }, fields: ['name'] },
  { name: 'registry name overlong', method: 'POST', url: () => `/api/v1/groups/${G()}/registries`, body: { name: long(256) }, fields: ['name'] },
  { name: 'a 6th registry', method: 'POST', url: () => `/api/v1/groups/${G()}/registries`, body: { name: 'sixth' }, fields: ['base'] },
  { name: 'registry renamed to a bad name', method: 'PATCH', url: () => `/api/v1/registries/${registryId}`, body: { name: '-hub' }, fields: ['name'] },
  { name: 'registry description overlong', method: 'PATCH', url: () => `/api/v1/registries/${registryId}`, body: { description: long(1025) }, fields: ['description'] },
  ...([
    ['a non-http URL', { url: 'ftp://registry.example.com' }, ['url']],
    ['a URL with credentials', { url: 'https://user:secret@registry.example.com' }, ['url']],
    ['a URL with a query', { url: 'https://registry.example.com/?tenant=1' }, ['url']],
    ['a URL with a fragment', { url: 'https://registry.example.com/#top' }, ['url']],
    ['a loopback address', { url: 'http://127.0.0.1:5000' }, ['url']],
    ['a private address', { url: 'http://10.1.2.3' }, ['url']],
    ['a link-local address', { url: 'http://169.254.169.254' }, ['url']],
    ['a local name', { url: 'http://registry.localhost' }, ['url']],
    ['a password without username', { url: 'https://registry.example.com', password: 'hunter22' }, ['username']],
    ['a username without password', { url: 'https://registry.example.com', username: 'bob' }, ['password']],
    ['a negative cache validity', { url: 'https://registry.example.com', cache_validity_hours: -1 }, ['cache_validity_hours']],
    ['a fractional cache validity', { url: 'https://registry.example.com', cache_validity_hours: 1.5 }, ['cache_validity_hours']],
    ['an overlong name', { url: 'https://registry.example.com', name: long(256) }, ['name']],
    ['a bad token URL', { url: 'https://registry.example.com', token_url: 'file:///etc/passwd' }, ['token_url']],
  ] as const).flatMap(([what, input, fields]): Case[] => [
    { name: `upstream of a registry with ${what}`, method: 'POST', url: () => `/api/v1/registries/${registryId}/upstreams`, body: { name: 'mirror', ...input }, fields: [...fields] },
    { name: `upstream of a group with ${what}`, method: 'POST', url: () => `/api/v1/groups/${G()}/upstreams`, body: { name: 'mirror', ...input }, fields: [...fields] },
  ]),
  { name: 'a 6th upstream of a registry', method: 'POST', url: () => `/api/v1/registries/${fullRegistryId}/upstreams`, body: { name: 'sixth', url: 'https://sixth.example.com' }, fields: ['base'] },
  { name: 'upstream changed to a bad URL', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { url: 'javascript:alert(1)' }, fields: ['url'] },
  { name: 'upstream given a password alone', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { password: 'hunter22' }, fields: ['username'] },
  { name: 'upstream cache validity over a year', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { cache_validity_hours: 9000 }, fields: ['cache_validity_hours'] },
  { name: 'a freshness rule with an upper-case repository pattern', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { freshness: { rules: [{ match: 'Library/*:latest', max_age: 300 }] } }, fields: ['freshness.rules.0.match'] },
  { name: 'a negative max_age and a fractional stale_while_revalidate', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { freshness: { max_age: -1, stale_while_revalidate: 1.5 } }, fields: ['freshness.max_age', 'freshness.stale_while_revalidate'] },
  { name: 'a negative cache over an hour', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { freshness: { negative_cache: 3601 } }, fields: ['freshness.negative_cache'] },
  { name: 'an unknown freshness setting', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { freshness: { maxage: 5 } }, fields: ['freshness'] },
  { name: 'a link with an upstream id that is not a number', method: 'POST', url: () => `/api/v1/registries/${registryId}/upstream_links`, body: { upstream_id: 'one' }, fields: ['upstream_id'] },
  { name: 'a 6th link of a registry', method: 'POST', url: () => `/api/v1/registries/${fullRegistryId}/upstream_links`, get body() { return { upstream_id: spareUpstreamId }; }, fields: ['base'] },
  { name: 'position 0', method: 'PATCH', url: () => `/api/v1/registry_upstreams/${linkId}`, body: { position: 0 }, fields: ['position'] },
  { name: 'a position past the last', method: 'PATCH', url: () => `/api/v1/registry_upstreams/${linkId}`, body: { position: 6 }, fields: ['position'] },
  { name: 'a position that is not a number', method: 'PATCH', url: () => `/api/v1/registry_upstreams/${linkId}`, body: { position: 'first' }, fields: ['position'] },
  { name: 'a user with a short name and password', method: 'POST', url: () => '/api/v1/users', body: { username: 'a', password: 'short' }, fields: ['username', 'password'], as: 'admin' },
  { name: 'a user with a bad email', method: 'POST', url: () => '/api/v1/users', body: { username: 'newbie', password: 'long enough password', email: 'not-an-email' }, fields: ['email'], as: 'admin' },
  { name: 'a token with an unknown scope', method: 'POST', url: () => '/api/v1/user/personal_access_tokens', body: { name: 'ci', scopes: ['root'] }, fields: ['scopes.0'] },
  { name: 'a token expiring in the past', method: 'POST', url: () => '/api/v1/user/personal_access_tokens', body: { name: 'ci', scopes: ['api'], expires_at: '2000-01-01' }, fields: ['expires_at'] },
  { name: 'a group token with an unknown role', method: 'POST', url: () => `/api/v1/groups/${G()}/access_tokens`, body: { name: 'bot', scopes: ['api'], role: 'king' }, fields: ['role'] },
  { name: 'a member with an unknown role', method: 'POST', url: () => `/api/v1/groups/${G()}/members`, body: { user_id: 1, role: 'king' }, fields: ['role'] },
  { name: 'a cleanup policy keeping 0 days', method: 'PUT', url: () => `/api/v1/groups/${G()}/cleanup_policy`, body: { keep_n_days_after_download: 0 }, fields: ['keep_n_days_after_download'] },
  { name: 'a cleanup policy keeping 366 days', method: 'PUT', url: () => `/api/v1/groups/${G()}/cleanup_policy`, body: { keep_n_days_after_download: 366 }, fields: ['keep_n_days_after_download'] },
  { name: 'a cleanup policy every 3 days', method: 'PUT', url: () => `/api/v1/groups/${G()}/cleanup_policy`, body: { cadence_days: 3 }, fields: ['cadence_days'] },
  // Free text refuses control characters (and bidi overrides in names): they forge lines in logs and lists.
  { name: 'a token name with a newline', method: 'POST', url: () => '/api/v1/user/personal_access_tokens', body: { name: 'ci\nadmin token', scopes: ['api'] }, fields: ['name'] },
  { name: 'a token name with an escape sequence', method: 'POST', url: () => '/api/v1/user/personal_access_tokens', body: { name: 'ci\u001b[31m', scopes: ['api'] }, fields: ['name'] },
  { name: 'a group token name with a NUL', method: 'POST', url: () => `/api/v1/groups/${G()}/access_tokens`, body: { name: 'bot\u0000', scopes: ['api'], role: 'developer' }, fields: ['name'] },
  { name: 'a deploy token name with a bidi override', method: 'POST', url: () => `/api/v1/groups/${G()}/deploy_tokens`, body: { name: 'deploy\u202egnp.exe' }, fields: ['name'] },
  { name: 'a group name with a C1 control', method: 'POST', url: () => '/api/v1/groups', body: { path: 'fine', name: 'Acme\u009b' }, fields: ['name'] },
  { name: 'a group description with a NUL', method: 'PATCH', url: () => `/api/v1/groups/${G()}`, body: { description: 'ours\u0000' }, fields: ['description'] },
  { name: 'a registry description with DEL', method: 'PATCH', url: () => `/api/v1/registries/${registryId}`, body: { description: 'hub\u007f' }, fields: ['description'] },
  { name: 'an upstream name with a carriage return', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { name: 'mirror\rforged' }, fields: ['name'] },
  { name: 'an upstream description with a bell', method: 'PATCH', url: () => `/api/v1/upstreams/${upstreamId}`, body: { description: 'mirror\u0007' }, fields: ['description'] },
  { name: 'a body that is not an object', method: 'POST', url: () => `/api/v1/groups/${G()}/registries`, body: ['hub'], fields: ['base'] },
];

test('every create and update refuses bad input with 400 and messages per field, and writes nothing', async () => {
  const before = await counts(fixture.database.db);
  const failures: string[] = [];
  for (const c of cases) {
    const response = await call(fixture.app, c.method, c.url(), { auth: bearer(world.users[c.as ?? 'owner'].token), body: c.body });
    const fields = Object.keys(response.json?.errors ?? {});
    const ok = response.status === 400 && /^application\/problem\+json/.test(String(response.headers['content-type']))
      && c.fields.every((field) => fields.includes(field) && response.json.errors[field].every((m: unknown) => typeof m === 'string' && m.length > 0));
    if (!ok) failures.push(`${c.name}: ${response.status} ${response.body}`);
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(await counts(fixture.database.db), before, 'nothing was written');
});

test('malformed JSON, a wrong content type, a missing body and non-numeric ids are 4xx problems, never a 500', async () => {
  const auth = bearer(world.users.owner.token);
  const malformed = await call(fixture.app, 'POST', `/api/v1/groups/${G()}/registries`, { auth, rawBody: '{"name": "hub",', headers: { 'content-type': 'application/json' } });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.detail, 'the body is not valid JSON');
  const xml = await call(fixture.app, 'POST', `/api/v1/groups/${G()}/registries`, { auth, rawBody: '<name>hub</name>', headers: { 'content-type': 'application/xml' } });
  assert.equal(xml.status, 415);
  assert.match(String(xml.headers['content-type']), /^application\/problem\+json/);
  const missing = await call(fixture.app, 'POST', `/api/v1/groups/${G()}/registries`, { auth });
  assert.equal(missing.status, 400);
  for (const url of ['/api/v1/registries/abc', '/api/v1/registries/-1', '/api/v1/registries/1.5', '/api/v1/upstreams/0', '/api/v1/users/NaN']) {
    const response = await call(fixture.app, 'GET', url, { auth: bearer(world.users.admin.token) });
    assert.equal(response.status, 400, url);
    assert.deepEqual(Object.keys(response.json.errors), ['id']);
  }
  for (const query of ['per_page=0', 'per_page=101', 'page=0', 'page=x']) {
    const response = await call(fixture.app, 'GET', `/api/v1/groups?${query}`, { auth });
    assert.equal(response.status, 400, query);
  }
  // A group path with a NUL (PostgreSQL refuses it in text: a 500 once, found by the fuzz test) is not found.
  const nul = await call(fixture.app, 'GET', '/api/v1/groups/a%00b', { auth });
  assert.equal(nul.status, 404, nul.body);
  const unknownRoute = await call(fixture.app, 'GET', '/api/v1/no/such/thing', { auth });
  assert.equal(unknownRoute.status, 404);
  assert.match(String(unknownRoute.headers['content-type']), /^application\/problem\+json/);
});

test('descriptions keep line breaks and tabs, names keep any printable text', async () => {
  const auth = bearer(world.users.owner.token);
  const described = await call(fixture.app, 'PATCH', `/api/v1/registries/${registryId}`, { auth, body: { description: 'line one\n\tline two\r\n' } });
  assert.equal(described.status, 200, described.body);
  assert.equal(described.json.description, 'line one\n\tline two\r\n');
  const token = await call(fixture.app, 'POST', '/api/v1/user/personal_access_tokens', { auth, body: { name: 'Überprüfung – CI ✓ 日本', scopes: ['read_api'] } });
  assert.equal(token.status, 201, token.body);
  assert.equal(token.json.name, 'Überprüfung – CI ✓ 日本');
});

test('a name already taken is a 409 conflict with the field named', async () => {
  const response = await call(fixture.app, 'PATCH', `/api/v1/registries/${registryId}`, { auth: bearer(world.users.owner.token), body: { name: 'registry3' } });
  assert.equal(response.status, 409);
  assert.ok(response.json.errors.name);
});
