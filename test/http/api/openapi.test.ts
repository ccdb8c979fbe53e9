// The OpenAPI document: valid OpenAPI 3, public, generated from the schemas that validate requests, and
// complete (every route of the API is in it). The reference page is served with it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { bearer, call, createApiFixture, createWorld } from './app-fixture.ts';
import type { ApiFixture, World } from './app-fixture.ts';

let fixture: ApiFixture;
let world: World;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a parsed JSON document
let document: any;

before(async () => {
  fixture = await createApiFixture();
  world = await createWorld(fixture);
  const response = await call(fixture.app, 'GET', '/api/v1/openapi.json');
  assert.equal(response.status, 200, 'the document needs no credentials');
  assert.match(String(response.headers['content-type']), /^application\/json/);
  document = response.json;
});
after(() => fixture.close());

test('the document validates as OpenAPI 3', async () => {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(document));
  assert.deepEqual(result.errors ?? [], [], 'no schema errors');
  assert.equal(result.valid, true);
  assert.match(validator.version, /^3\./);
});

test('every route of the API appears in the document with its method', () => {
  const documented = new Set<string>();
  for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path}`);
  }
  // The reference page's own files (HTML, scripts, the copy of this document it loads) are not API operations.
  const routes = fixture.apiRoutes().filter((route) => !route.startsWith('GET /api/v1/docs'));
  assert.ok(routes.length >= 50, `the API has its routes (${routes.length})`);
  const missing = routes.map((route) => route.replace(/:(\w+)/g, '{$1}')).filter((route) => !documented.has(route));
  assert.deepEqual(missing, []);
});

test('every $ref points at a schema of the document', () => {
  const refs = JSON.stringify(document).match(/"\$ref":"[^"]+"/g) ?? [];
  assert.ok(refs.length > 0);
  for (const ref of new Set(refs)) {
    const name = /#\/components\/schemas\/([^"]+)/.exec(ref)?.[1];
    assert.ok(name && document.components.schemas[name], `${ref} resolves`);
  }
});

test('the documented constraints are the ones that validate requests', async () => {
  const listGroups = document.paths['/api/v1/groups'].get;
  const perPage = listGroups.parameters.find((p: { name: string }) => p.name === 'per_page');
  assert.equal(perPage.schema.maximum, 100);
  assert.equal(perPage.in, 'query');
  // The same schema refuses what it documents.
  const refused = await call(fixture.app, 'GET', '/api/v1/groups?per_page=101', { auth: bearer(world.users.owner.token) });
  assert.equal(refused.status, 400);
  assert.deepEqual(refused.json.errors, { per_page: ['must be at most 100'] });

  const createRegistry = document.paths['/api/v1/groups/{id}/registries'].post;
  const body = createRegistry.requestBody.content['application/json'].schema;
  assert.deepEqual(body.required, ['name']);
  assert.equal(body.properties.name.maxLength, 255);
  assert.ok(createRegistry.responses['201'], 'the success is documented');
  assert.ok(createRegistry.responses['400'].content['application/problem+json'], 'errors are problem+json');

  const upstream = document.components.schemas.Upstream;
  assert.ok(upstream.properties.has_credentials);
  assert.equal(upstream.properties.password, undefined, 'the password is write-only');
  const createUpstream = document.paths['/api/v1/registries/{id}/upstreams'].post.requestBody.content['application/json'].schema;
  assert.ok(createUpstream.properties.password, 'but it can be given');
});

test('authentication is documented; the document and its page are public', async () => {
  assert.deepEqual(Object.keys(document.components.securitySchemes).sort(), ['basic', 'bearer', 'privateToken']);
  assert.equal(document.components.securitySchemes.privateToken.name, 'PRIVATE-TOKEN');
  assert.deepEqual(document.paths['/api/v1/openapi.json'].get.security, []);
  assert.ok(document.security.length > 0, 'everything else needs credentials');
  const page = await call(fixture.app, 'GET', '/api/v1/docs/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  assert.match(page.body, /swagger/i);
});
