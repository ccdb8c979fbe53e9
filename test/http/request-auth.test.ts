import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from '../../src/services/authentication.ts';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import type { RegistryTokens } from '../../src/auth/registry-tokens.ts';
import { actorFor, bearerChallenge, jwtGrants, mayPull } from '../../src/http/request-auth.ts';
import { ROLES } from '../../src/db/schema.ts';
import { err } from '../../src/result.ts';
import { TokenService } from '../../src/services/tokens.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUser, userActor } from '../helpers/fixtures.ts';
import { newRegistryTokens, newSigningKeys, onApi } from '../helpers/identity.ts';

let database: TestDatabase;
let app: FastifyInstance;
let registryTokens: RegistryTokens;
let groupId: number;
let image: string;
let userId: number;

before(async () => {
  database = await createTestDatabase();
  registryTokens = newRegistryTokens(await newSigningKeys());
  const authenticator = new Authenticator({ db: database.db, registryTokens });
  const user = await insertUser(database.db);
  userId = user.id;
  const group = await insertGroup(database.db);
  groupId = group.id;
  image = `${group.path}/hub/library/alpine`;
  await insertMembership(database.db, group.id, user.id, 'guest');
  app = Fastify();
  // A stand-in for the /v2 handler: may this request pull the image?
  app.get('/probe', async (request) => {
    const actor = await actorFor(request, authenticator, 'registry');
    return { ok: actor.ok, kind: actor.ok ? actor.value.kind : null, mayPull: mayPull(actor, image, groupId) };
  });
  await app.ready();
});
after(async () => {
  await app.close();
  await database.destroy();
});

test('a JWT allows exactly the repositories it lists, and only while the subject may still read the group', async () => {
  const withAccess = (await registryTokens.issue(userActor(userId), [{ type: 'repository', name: image, actions: ['pull'] }])).token;
  const withoutAccess = (await registryTokens.issue(userActor(userId), [])).token;
  const probe = async (authorization?: string) => (await app.inject({ method: 'GET', url: '/probe', headers: authorization ? { authorization } : {} })).json();
  assert.deepEqual(await probe(`Bearer ${withAccess}`), { ok: true, kind: 'user', mayPull: true });
  assert.deepEqual(await probe(`Bearer ${withoutAccess}`), { ok: true, kind: 'user', mayPull: false });
  assert.deepEqual(await probe(), { ok: true, kind: 'anonymous', mayPull: false });
  assert.deepEqual(await probe('Bearer nonsense'), { ok: false, kind: null, mayPull: false });
  await database.db.deleteFrom('memberships').where('user_id', '=', userId).execute();
  assert.deepEqual(await probe(`Bearer ${withAccess}`), { ok: true, kind: 'user', mayPull: false }, 'removed from the group');
});

test('PRIVATE-TOKEN and Basic token credentials on /v2: the policy alone decides', async () => {
  const member = await insertUser(database.db);
  await insertMembership(database.db, groupId, member.id, 'reporter');
  const pat = await new TokenService({ db: database.db, changes: database.changes }).createPersonal(onApi(userActor(member.id)), { name: 'pull', scopes: ['read_virtual_registry'] });
  assert.ok(pat.ok);
  const viaHeader = await app.inject({ method: 'GET', url: '/probe', headers: { 'private-token': pat.value.token } });
  assert.deepEqual(viaHeader.json(), { ok: true, kind: 'user', mayPull: true });
  const viaBasic = await app.inject({ method: 'GET', url: '/probe', headers: { authorization: `Basic ${Buffer.from(`x:${pat.value.token}`).toString('base64')}` } });
  assert.deepEqual(viaBasic.json(), { ok: true, kind: 'user', mayPull: true });
});

test('jwtGrants checks the action and the exact name', () => {
  const actor: Actor = { ...userActor(1, [[groupId, ROLES.guest]]), registryAccess: [{ type: 'repository', name: 'acme/hub/alpine', actions: ['pull'] }] } as Actor;
  assert.equal(jwtGrants(actor, 'acme/hub/alpine', 'pull'), true);
  assert.equal(jwtGrants(actor, 'acme/hub/alpine', 'push'), false);
  assert.equal(jwtGrants(actor, 'acme/hub/alpine/extra', 'pull'), false);
  assert.equal(jwtGrants(userActor(1), 'acme/hub/alpine', 'pull'), true, 'not from a JWT');
  assert.equal(jwtGrants(err('unauthorized', 'no'), 'acme/hub/alpine', 'pull'), false);
  assert.equal(mayPull(ANONYMOUS, 'acme/hub/alpine', groupId), false);
});

test('the Bearer challenge names realm, service, and optionally scope and error', () => {
  assert.equal(bearerChallenge({ realm: 'https://cache.example.com/auth/token', service: 'manifold' }), 'Bearer realm="https://cache.example.com/auth/token",service="manifold"');
  assert.equal(
    bearerChallenge({ realm: 'http://127.0.0.1:5000/auth/token', service: 'manifold', scope: 'repository:acme/hub/alpine:pull', error: 'insufficient_scope' }),
    'Bearer realm="http://127.0.0.1:5000/auth/token",service="manifold",scope="repository:acme/hub/alpine:pull",error="insufficient_scope"',
  );
});
