import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { TokenService } from '../../src/services/tokens.ts';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { ROLES } from '../../src/db/schema.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUser, userActor } from '../helpers/fixtures.ts';
import { onApi } from '../helpers/identity.ts';

let database: TestDatabase;
let tokens: TokenService;
const DAY = 24 * 60 * 60 * 1000;

before(async () => {
  database = await createTestDatabase();
  tokens = new TokenService({ db: database.db, changes: database.changes });
});
after(() => database.destroy());

async function member(groupId: number, role: keyof typeof ROLES): Promise<Actor & { userId: number }> {
  const user = await insertUser(database.db);
  await insertMembership(database.db, groupId, user.id, role);
  return onApi(userActor(user.id, [[groupId, ROLES[role]]])) as Actor & { userId: number };
}

const tokenRow = (id: number) => database.db.selectFrom('access_tokens').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

test('a personal token: plaintext shown once with its prefix, only its SHA-256 stored', async () => {
  const user = await insertUser(database.db);
  const actor = onApi(userActor(user.id));
  const expires = new Date(Date.now() + 30 * DAY).toISOString();
  const created = await tokens.createPersonal(actor, { name: 'ci', scopes: ['read_virtual_registry', 'read_api', 'read_api'], expires_at: expires });
  assert.ok(created.ok, JSON.stringify(created));
  const plaintext = created.value.token;
  assert.match(plaintext, /^mfpat_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.value.token_hint, plaintext.slice(0, 10));
  assert.deepEqual(created.value.scopes, ['read_api', 'read_virtual_registry']);
  assert.equal(created.value.expires_at, Date.parse(expires));
  const row = await tokenRow(created.value.id);
  assert.equal(row.kind, 'personal');
  assert.equal(row.user_id, user.id);
  assert.equal(row.token_digest, createHash('sha256').update(plaintext).digest('hex'));
  assert.ok(!Object.values(row).some((value) => value === plaintext), 'the plaintext is not stored');

  const listed = await tokens.listPersonal(actor);
  assert.ok(listed.ok);
  assert.equal(listed.value.items.length, 1);
  const shown = JSON.stringify(listed.value);
  assert.ok(!shown.includes(plaintext) && !shown.includes(row.token_digest));
  assert.equal(listed.value.items[0].token_hint, plaintext.slice(0, 10));
  assert.equal('token' in listed.value.items[0], false);

  const audit = await database.db.selectFrom('audit_events').select('details').where('action', '=', 'token.create').where('target_id', '=', row.id).executeTakeFirstOrThrow();
  assert.ok(!audit.details.includes(plaintext) && !audit.details.includes(row.token_digest));
});

test('bad token input is refused with a message per field and writes nothing', async () => {
  const user = await insertUser(database.db);
  const actor = onApi(userActor(user.id));
  const cases: [unknown, string[]][] = [
    [{ name: '', scopes: ['api'] }, ['name']],
    [{ name: 'x', scopes: [] }, ['scopes']],
    [{ name: 'x', scopes: ['write_everything'] }, ['scopes.0']],
    [{ name: 'x', scopes: 'api' }, ['scopes']],
    [{ name: 'x', scopes: ['api'], expires_at: new Date(Date.now() - DAY).toISOString() }, ['expires_at']],
    [{ name: 'x', scopes: ['api'], expires_at: Date.now() + 400 * DAY }, ['expires_at']],
    [{ name: 'x', scopes: ['api'], expires_at: 'next tuesday' }, ['expires_at']],
    // Control characters in a name forge lines wherever it is shown (logs, lists, audit events).
    [{ name: 'ci\nadmin', scopes: ['api'] }, ['name']],
    [{ name: 'ci\u0000', scopes: ['api'] }, ['name']],
    [{ name: 'ci\u001b[2J', scopes: ['api'] }, ['name']],
  ];
  const before = await countRows(database.db);
  for (const [input, fields] of cases) {
    const result = await tokens.createPersonal(actor, input as never);
    assert.equal(!result.ok && result.reason, 'invalid', JSON.stringify(input));
    assert.deepEqual(!result.ok && Object.keys(result.fields ?? {}), fields, JSON.stringify(input));
  }
  assert.deepEqual(await countRows(database.db), before);
});

test('personal tokens belong to users: anonymous, group tokens and narrower tokens may not create them', async () => {
  const group = await insertGroup(database.db);
  const user = await insertUser(database.db);
  const before = await countRows(database.db);
  const anonymous = await tokens.createPersonal(ANONYMOUS, { name: 'x', scopes: ['api'] });
  assert.equal(!anonymous.ok && anonymous.reason, 'unauthorized');
  const groupToken: Actor = { kind: 'group_token', groupId: group.id, accessLevel: ROLES.owner, token: { id: 1, scopes: ['api'], expiresAt: null, revokedAt: null }, channel: 'api' };
  assert.equal((await tokens.createPersonal(groupToken, { name: 'x', scopes: ['api'] })).ok, false);
  const readOnly = onApi(userActor(user.id, [], { scopes: ['read_api'] }));
  const viaReadToken = await tokens.createPersonal(readOnly, { name: 'x', scopes: ['api'] });
  assert.equal(!viaReadToken.ok && viaReadToken.reason, 'forbidden');
  assert.deepEqual(await countRows(database.db), before);
  assert.ok((await tokens.listPersonal(readOnly)).ok, 'read_api may list');
  assert.ok((await tokens.createPersonal(onApi(userActor(user.id, [], { scopes: ['api'] })), { name: 'x', scopes: ['read_api'] })).ok);
});

test('group tokens (owners only) carry a role and scopes', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const maintainer = await member(group.id, 'maintainer');
  const outsider = onApi(userActor((await insertUser(database.db)).id));
  const before = await countRows(database.db);
  const byMaintainer = await tokens.createGroupToken(maintainer, { group_id: group.id, name: 'bot', role: 'developer', scopes: ['api'] });
  assert.equal(!byMaintainer.ok && byMaintainer.reason, 'forbidden');
  const byOutsider = await tokens.createGroupToken(outsider, { group_id: group.id, name: 'bot', role: 'developer', scopes: ['api'] });
  assert.equal(!byOutsider.ok && byOutsider.reason, 'not_found');
  const badRole = await tokens.createGroupToken(owner, { group_id: group.id, name: 'bot', role: 'robot' as never, scopes: ['api'] });
  assert.deepEqual(!badRole.ok && Object.keys(badRole.fields ?? {}), ['role']);
  assert.deepEqual(await countRows(database.db), before);

  const created = await tokens.createGroupToken(owner, { group_id: group.id, name: 'bot', role: 'developer', scopes: ['read_virtual_registry'] });
  assert.ok(created.ok);
  assert.match(created.value.token, /^mfgat_/);
  assert.deepEqual([created.value.kind, created.value.role, created.value.group_id, created.value.user_id], ['group', 'developer', group.id, null]);
  const row = await tokenRow(created.value.id);
  assert.equal(row.access_level, ROLES.developer);
  const listed = await tokens.listGroupTokens(owner, { group_id: group.id });
  assert.deepEqual(listed.ok && listed.value.items.map((t) => t.id), [created.value.id]);
  assert.equal((await tokens.listGroupTokens(maintainer, { group_id: group.id })).ok, false);
});

test('deploy tokens pull only', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const before = await countRows(database.db);
  const withApi = await tokens.createDeployToken(owner, { group_id: group.id, name: 'k8s', scopes: ['api'] as never });
  assert.deepEqual(!withApi.ok && Object.keys(withApi.fields ?? {}), ['scopes.0']);
  assert.deepEqual(await countRows(database.db), before);
  const created = await tokens.createDeployToken(owner, { group_id: group.id, name: 'k8s' });
  assert.ok(created.ok);
  assert.match(created.value.token, /^mfdt_/);
  assert.deepEqual(created.value.scopes, ['read_virtual_registry']);
  assert.equal((await tokenRow(created.value.id)).kind, 'deploy');
  const listed = await tokens.listDeployTokens(owner, { group_id: group.id });
  assert.deepEqual(listed.ok && listed.value.items.map((t) => t.kind), ['deploy']);
});

test('revoking sets revoked_at; one cannot revoke what one may not manage', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const developer = await member(group.id, 'developer');
  const personal = await tokens.createPersonal(developer, { name: 'mine', scopes: ['api'] });
  const deploy = await tokens.createDeployToken(owner, { group_id: group.id, name: 'k8s' });
  assert.ok(personal.ok && deploy.ok);

  const before = await countRows(database.db);
  const othersToken = await tokens.revoke(owner, { id: personal.value.id });
  assert.equal(!othersToken.ok && othersToken.reason, 'not_found');
  const notOwner = await tokens.revoke(developer, { id: deploy.value.id });
  assert.equal(!notOwner.ok && notOwner.reason, 'forbidden');
  const wrongKind = await tokens.revoke(owner, { id: deploy.value.id, kind: 'group' });
  assert.equal(!wrongKind.ok && wrongKind.reason, 'not_found');
  assert.deepEqual(await countRows(database.db), before);

  const revoked = await tokens.revoke(developer, { id: personal.value.id });
  assert.ok(revoked.ok);
  assert.equal(revoked.value.active, false);
  assert.notEqual((await tokenRow(personal.value.id)).revoked_at, null);
  const revokedDeploy = await tokens.revoke(owner, { id: deploy.value.id, kind: 'deploy', group_id: group.id });
  assert.ok(revokedDeploy.ok);
  assert.notEqual((await tokenRow(deploy.value.id)).revoked_at, null);
  const events = await database.db.selectFrom('audit_events').select(['action', 'details']).where('action', '=', 'token.revoke').execute();
  assert.equal(events.length, 2);
  assert.ok(events.every((e) => !e.details.includes(personal.value.token) && !e.details.includes('token_digest')));
});
