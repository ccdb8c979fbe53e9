import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator, LAST_USED_INTERVAL_MS, PASSWORD_CACHE_MS } from '../../src/services/authentication.ts';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { hashPassword, verifyPassword } from '../../src/auth/secrets.ts';
import { ROLES } from '../../src/db/schema.ts';
import { TokenService } from '../../src/services/tokens.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUser, userActor } from '../helpers/fixtures.ts';
import { newRegistryTokens, newSigningKeys, onApi } from '../helpers/identity.ts';
import type { RegistryTokens } from '../../src/auth/registry-tokens.ts';

const PASSWORD = 'a long enough password';
let database: TestDatabase;
let registryTokens: RegistryTokens;
let tokens: TokenService;
let passwordHash: string;
let clock = Date.now();
let verifications = 0;
let auth: Authenticator;

const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

before(async () => {
  database = await createTestDatabase();
  registryTokens = newRegistryTokens(await newSigningKeys());
  tokens = new TokenService({ db: database.db, changes: database.changes });
  passwordHash = await hashPassword(PASSWORD);
  auth = new Authenticator({
    db: database.db,
    registryTokens,
    now: () => clock,
    verifyPassword: async (password, stored) => {
      verifications++;
      return verifyPassword(password, stored);
    },
  });
});
after(() => database.destroy());

async function userWithPassword(options: { blocked?: boolean; admin?: boolean } = {}) {
  const user = await insertUser(database.db, options);
  await database.db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', user.id).execute();
  return user;
}

function refusedAlike(results: { ok: boolean; reason?: string; message?: string }[]) {
  for (const result of results) {
    assert.equal(result.ok, false);
    assert.equal(result.reason, 'unauthorized');
  }
  assert.equal(new Set(results.map((r) => r.message)).size, 1, 'every refusal reads the same');
}

test('no credentials is the anonymous actor', async () => {
  const result = await auth.authenticate({}, 'registry');
  assert.ok(result.ok);
  assert.deepEqual(result.value, ANONYMOUS);
});

test('Basic username:password gives the user with memberships; bad or blocked credentials are refused alike', async () => {
  const user = await userWithPassword();
  const group = await insertGroup(database.db);
  await insertMembership(database.db, group.id, user.id, 'developer');
  const result = await auth.authenticate({ authorization: basic(user.username.toUpperCase(), PASSWORD) }, 'api');
  assert.ok(result.ok);
  assert.equal(result.value.kind, 'user');
  if (result.value.kind !== 'user') return;
  assert.equal(result.value.userId, user.id);
  assert.equal(result.value.channel, 'api');
  assert.equal(result.value.token, null);
  assert.deepEqual([...result.value.memberships], [[group.id, ROLES.developer]]);

  const blocked = await userWithPassword({ blocked: true });
  refusedAlike([
    await auth.authenticate({ authorization: basic(user.username, 'the wrong password') }, 'api'),
    await auth.authenticate({ authorization: basic('nobody-at-all', PASSWORD) }, 'api'),
    await auth.authenticate({ authorization: basic(blocked.username, PASSWORD) }, 'api'),
    await auth.authenticate({ authorization: basic(user.username, '') }, 'api'),
    await auth.authenticate({ authorization: 'Basic !!!' }, 'api'),
    await auth.authenticate({ authorization: 'Basic' }, 'api'),
    await auth.authenticate({ authorization: 'Digest abc' }, 'api'),
    await auth.authenticate({ authorization: 'Bearer not-a-token' }, 'api'),
    await auth.authenticate({ username: user.username, password: 'the wrong password' }, 'registry'),
  ]);
});

test('a successful password check is remembered briefly; a changed password or a block takes effect at once', async () => {
  const user = await userWithPassword();
  const header = basic(user.username, PASSWORD);
  verifications = 0;
  for (let i = 0; i < 5; i++) assert.ok((await auth.authenticate({ authorization: header }, 'registry')).ok);
  assert.equal(verifications, 1, 'scrypt ran once for five requests');
  assert.equal((await auth.authenticate({ authorization: basic(user.username, 'the wrong password') }, 'registry')).ok, false);
  assert.equal((await auth.authenticate({ authorization: basic(user.username, 'the wrong password') }, 'registry')).ok, false);
  assert.equal(verifications, 3, 'failures are never remembered');

  clock += PASSWORD_CACHE_MS + 1;
  assert.ok((await auth.authenticate({ authorization: header }, 'registry')).ok);
  assert.equal(verifications, 4, 'checked again once the entry is old');

  await database.db.updateTable('users').set({ blocked: 1 }).where('id', '=', user.id).execute();
  assert.equal((await auth.authenticate({ authorization: header }, 'registry')).ok, false, 'blocked while cached');
  await database.db.updateTable('users').set({ blocked: 0, password_hash: await hashPassword('a different password') }).where('id', '=', user.id).execute();
  assert.equal((await auth.authenticate({ authorization: header }, 'registry')).ok, false, 'old password after a change');
});

test('personal tokens authenticate as Bearer, PRIVATE-TOKEN and Basic password; with their scopes', async () => {
  const user = await userWithPassword();
  const created = await tokens.createPersonal(onApi(userActor(user.id)), { name: 'ci', scopes: ['read_api'] });
  assert.ok(created.ok);
  const plaintext = created.value.token;
  for (const credentials of [{ authorization: `Bearer ${plaintext}` }, { privateToken: plaintext }, { authorization: basic('anything', plaintext) }]) {
    const result = await auth.authenticate(credentials, 'api');
    assert.ok(result.ok, JSON.stringify(Object.keys(credentials)));
    assert.equal(result.value.kind, 'user');
    if (result.value.kind !== 'user') continue;
    assert.equal(result.value.userId, user.id);
    assert.deepEqual(result.value.token && { id: result.value.token.id, scopes: result.value.token.scopes }, { id: created.value.id, scopes: ['read_api'] });
  }
  refusedAlike([
    await auth.authenticate({ privateToken: plaintext.slice(0, -1) + (plaintext.endsWith('A') ? 'B' : 'A') }, 'api'),
    await auth.authenticate({ privateToken: 'mfpat_unknown' }, 'api'),
    await auth.authenticate({ privateToken: 'no-prefix' }, 'api'),
  ]);
});

test('revoked and expired tokens, and tokens of blocked users, do not authenticate', async () => {
  // The token service checks expiry against real time: start this test's clock there.
  clock = Date.now();
  const user = await userWithPassword();
  const actor = onApi(userActor(user.id));
  const revoked = await tokens.createPersonal(actor, { name: 'old', scopes: ['api'] });
  const expiring = await tokens.createPersonal(actor, { name: 'short', scopes: ['api'], expires_at: clock + 60_000 });
  const blockedOwner = await userWithPassword();
  const ofBlocked = await tokens.createPersonal(onApi(userActor(blockedOwner.id)), { name: 'x', scopes: ['api'] });
  assert.ok(revoked.ok && expiring.ok && ofBlocked.ok);
  assert.ok((await auth.authenticate({ privateToken: expiring.value.token }, 'api')).ok);
  assert.ok((await tokens.revoke(actor, { id: revoked.value.id })).ok);
  await database.db.updateTable('users').set({ blocked: 1 }).where('id', '=', blockedOwner.id).execute();
  const later = clock;
  clock += 120_000;
  try {
    refusedAlike([
      await auth.authenticate({ privateToken: revoked.value.token }, 'api'),
      await auth.authenticate({ privateToken: expiring.value.token }, 'api'),
      await auth.authenticate({ authorization: `Bearer ${ofBlocked.value.token}` }, 'registry'),
    ]);
  } finally {
    clock = later;
  }
});

test('group and deploy tokens authenticate as their group', async () => {
  const group = await insertGroup(database.db);
  const owner = onApi(userActor((await insertUser(database.db)).id, [[group.id, ROLES.owner]]));
  await insertMembership(database.db, group.id, (owner as { userId: number }).userId, 'owner');
  const bot = await tokens.createGroupToken(owner, { group_id: group.id, name: 'bot', role: 'maintainer', scopes: ['api'] });
  const deploy = await tokens.createDeployToken(owner, { group_id: group.id, name: 'k8s' });
  assert.ok(bot.ok && deploy.ok);
  const asBot = await auth.authenticate({ authorization: `Bearer ${bot.value.token}` }, 'api');
  assert.ok(asBot.ok);
  assert.deepEqual(asBot.value.kind === 'group_token' && [asBot.value.groupId, asBot.value.accessLevel, asBot.value.token.scopes], [group.id, ROLES.maintainer, ['api']]);
  const asDeploy = await auth.authenticate({ authorization: basic('deployer', deploy.value.token) }, 'registry');
  assert.ok(asDeploy.ok);
  assert.deepEqual(asDeploy.value.kind === 'deploy_token' && [asDeploy.value.groupId, asDeploy.value.channel], [group.id, 'registry']);
});

test('last_used_at is set on use, but written at most once a minute', async () => {
  const user = await userWithPassword();
  const created = await tokens.createPersonal(onApi(userActor(user.id)), { name: 'ci', scopes: ['api'] });
  assert.ok(created.ok);
  const lastUsed = async () => (await database.db.selectFrom('access_tokens').select('last_used_at').where('id', '=', created.value.id).executeTakeFirstOrThrow()).last_used_at;
  assert.equal(await lastUsed(), null);
  const start = clock;
  try {
    assert.ok((await auth.authenticate({ privateToken: created.value.token }, 'api')).ok);
    assert.equal(await lastUsed(), start);
    clock = start + 1000;
    assert.ok((await auth.authenticate({ privateToken: created.value.token }, 'api')).ok);
    clock = start + LAST_USED_INTERVAL_MS - 1;
    assert.ok((await auth.authenticate({ privateToken: created.value.token }, 'api')).ok);
    assert.equal(await lastUsed(), start, 'not rewritten within the minute');
    clock = start + LAST_USED_INTERVAL_MS + 5;
    assert.ok((await auth.authenticate({ privateToken: created.value.token }, 'api')).ok);
    assert.equal(await lastUsed(), start + LAST_USED_INTERVAL_MS + 5);
  } finally {
    clock = start;
  }
});

test('registry JWTs authenticate on the registry channel only, re-reading their subject', async () => {
  const user = await userWithPassword();
  const group = await insertGroup(database.db);
  await insertMembership(database.db, group.id, user.id, 'guest');
  const access = [{ type: 'repository' as const, name: `${group.path}/hub/library/alpine`, actions: ['pull'] }];
  const jwt = (await registryTokens.issue(userActor(user.id), access)).token;
  const result = await auth.authenticate({ authorization: `Bearer ${jwt}` }, 'registry');
  assert.ok(result.ok);
  const actor = result.value as Extract<Actor, { kind: 'user' }>;
  assert.equal(actor.userId, user.id);
  assert.deepEqual(actor.registryAccess, access);
  assert.deepEqual([...actor.memberships], [[group.id, ROLES.guest]]);
  assert.equal((await auth.authenticate({ authorization: `Bearer ${jwt}` }, 'api')).ok, false);

  const pat = await tokens.createPersonal(onApi(userActor(user.id)), { name: 'pull', scopes: ['read_virtual_registry'] });
  assert.ok(pat.ok);
  const viaPat = await auth.authenticate({ privateToken: pat.value.token }, 'registry');
  assert.ok(viaPat.ok);
  const patJwt = (await registryTokens.issue(viaPat.value, access)).token;
  assert.ok((await auth.authenticate({ authorization: `Bearer ${patJwt}` }, 'registry')).ok);
  await tokens.revoke(onApi(userActor(user.id)), { id: pat.value.id });
  await database.db.updateTable('users').set({ blocked: 1 }).where('id', '=', user.id).execute();
  refusedAlike([
    await auth.authenticate({ authorization: `Bearer ${patJwt}` }, 'registry'),
    await auth.authenticate({ authorization: `Bearer ${jwt}` }, 'registry'),
    await auth.authenticate({ authorization: `Bearer ${jwt.slice(0, -4)}AAAA` }, 'registry'),
  ]);
});
