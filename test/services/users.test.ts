import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { UserService } from '../../src/services/users.ts';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import { hashPassword, verifyPassword } from '../../src/auth/secrets.ts';
import { ROLES } from '../../src/db/schema.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUser, uniqueName, userActor } from '../helpers/fixtures.ts';
import { onApi } from '../helpers/identity.ts';

let database: TestDatabase;
let users: UserService;
let admin: ReturnType<typeof userActor>;

before(async () => {
  database = await createTestDatabase();
  users = new UserService({ db: database.db, changes: database.changes });
  const row = await insertUser(database.db, { admin: true });
  admin = onApi(userActor(row.id, [], { admin: true }));
});
after(() => database.destroy());

test('an admin creates a user: the password is stored only as a scrypt hash, never shown', async () => {
  const username = uniqueName('Alice.');
  const result = await users.create(admin, { username, password: 'correct horse battery', email: 'alice@example.com' });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.value.username, username);
  assert.equal(result.value.admin, false);
  assert.equal('password_hash' in result.value, false);
  const row = await database.db.selectFrom('users').selectAll().where('id', '=', result.value.id).executeTakeFirstOrThrow();
  assert.match(row.password_hash, /^scrypt\$/);
  assert.ok(await verifyPassword('correct horse battery', row.password_hash));
  const audit = await database.db.selectFrom('audit_events').selectAll().where('action', '=', 'user.create').where('target_id', '=', row.id).executeTakeFirstOrThrow();
  assert.equal(audit.actor_user_id, (admin as { userId: number }).userId);
  assert.ok(!audit.details.includes(row.password_hash) && !audit.details.includes('correct horse'));
});

test('bad input is refused with a message per field and writes nothing', async () => {
  const cases: [unknown, string[]][] = [
    [{ username: 'a', password: 'long enough password' }, ['username']],
    [{ username: 'bad name!', password: 'long enough password' }, ['username']],
    [{ username: 'x'.repeat(256), password: 'long enough password' }, ['username']],
    [{ username: uniqueName('ok'), password: 'short' }, ['password']],
    [{ username: uniqueName('ok'), password: 'mfpat_looks-like-a-token' }, ['password']],
    [{ username: uniqueName('ok'), password: 'long enough password', email: 'not-an-email' }, ['email']],
    [{ username: 7, password: 12 }, ['username', 'password']],
    [{}, ['username', 'password']],
  ];
  const before = await countRows(database.db);
  for (const [input, fields] of cases) {
    const result = await users.create(admin, input as never);
    assert.equal(result.ok, false, JSON.stringify(input));
    if (result.ok) continue;
    assert.equal(result.reason, 'invalid');
    assert.deepEqual(Object.keys(result.fields ?? {}).sort(), fields.sort(), JSON.stringify(input));
    for (const messages of Object.values(result.fields ?? {})) assert.ok(messages.length > 0 && messages.every((m) => m.length > 0));
  }
  assert.deepEqual(await countRows(database.db), before);
});

test('usernames are unique regardless of case', async () => {
  const existing = await insertUser(database.db, { username: uniqueName('Bob') });
  const before = await countRows(database.db);
  const result = await users.create(admin, { username: existing.username.toUpperCase(), password: 'another long password' });
  assert.equal(result.ok, false);
  assert.equal(!result.ok && result.reason, 'conflict');
  assert.deepEqual(!result.ok && Object.keys(result.fields ?? {}), ['username']);
  assert.deepEqual(await countRows(database.db), before);
});

test('only admins create, list, block and delete users', async () => {
  const plain = await insertUser(database.db);
  const actor = onApi(userActor(plain.id));
  const before = await countRows(database.db);
  const created = await users.create(actor, { username: uniqueName('x'), password: 'long enough password' });
  assert.equal(!created.ok && created.reason, 'forbidden');
  const anonymous = await users.create(ANONYMOUS, { username: uniqueName('x'), password: 'long enough password' });
  assert.equal(!anonymous.ok && anonymous.reason, 'unauthorized');
  assert.equal((await users.list(actor)).ok, false);
  const blocked = await users.block(actor, admin.kind === 'user' ? admin.userId : 0);
  assert.equal(!blocked.ok && blocked.reason, 'forbidden');
  const deleted = await users.delete(actor, plain.id);
  assert.equal(!deleted.ok && deleted.reason, 'forbidden');
  // An admin whose token only reads the API may not manage users either.
  const readOnlyAdmin = onApi(userActor((admin as { userId: number }).userId, [], { admin: true, scopes: ['read_api'] }));
  const viaToken = await users.block(readOnlyAdmin, plain.id);
  assert.equal(!viaToken.ok && viaToken.reason, 'forbidden');
  assert.deepEqual(await countRows(database.db), before);
});

test('users see themselves; other users are not found unless one is an admin', async () => {
  const me = await insertUser(database.db);
  const other = await insertUser(database.db);
  const actor = onApi(userActor(me.id));
  const self = await users.get(actor, me.id);
  assert.ok(self.ok);
  assert.equal(self.value.username, me.username);
  const hidden = await users.get(actor, other.id);
  assert.equal(!hidden.ok && hidden.reason, 'not_found');
  assert.ok((await users.get(admin, other.id)).ok);
  assert.equal(!(await users.get(admin, 'abc')).ok, true);
  const page = await users.list(admin, { page: 1, per_page: 2 });
  assert.ok(page.ok);
  assert.equal(page.value.items.length, 2);
  assert.ok(page.value.total >= 3);
  const badPage = await users.list(admin, { per_page: 1000 });
  assert.deepEqual(!badPage.ok && Object.keys(badPage.fields ?? {}), ['per_page']);
});

test('block and unblock; an admin cannot block or delete themselves', async () => {
  const target = await insertUser(database.db);
  const blocked = await users.block(admin, target.id);
  assert.ok(blocked.ok);
  assert.equal(blocked.value.blocked, true);
  assert.equal((await database.db.selectFrom('users').select('blocked').where('id', '=', target.id).executeTakeFirstOrThrow()).blocked, 1);
  const unblocked = await users.unblock(admin, target.id);
  assert.ok(unblocked.ok);
  assert.equal(unblocked.value.blocked, false);
  const adminId = (admin as { userId: number }).userId;
  const before = await countRows(database.db);
  const self = await users.block(admin, adminId);
  assert.equal(!self.ok && self.reason, 'invalid');
  const deleteSelf = await users.delete(admin, adminId);
  assert.equal(!deleteSelf.ok && deleteSelf.reason, 'invalid');
  const missing = await users.block(admin, 999_999);
  assert.equal(!missing.ok && missing.reason, 'not_found');
  assert.deepEqual(await countRows(database.db), before);
});

test('deleting a user: refused while they are the last owner of a group, then their memberships go with them', async () => {
  const owner = await insertUser(database.db);
  const group = await insertGroup(database.db);
  await insertMembership(database.db, group.id, owner.id, 'owner');
  const before = await countRows(database.db);
  const refused = await users.delete(admin, owner.id);
  assert.equal(!refused.ok && refused.reason, 'conflict');
  assert.deepEqual(await countRows(database.db), before);

  const second = await insertUser(database.db);
  await insertMembership(database.db, group.id, second.id, 'owner');
  const deleted = await users.delete(admin, owner.id);
  assert.ok(deleted.ok, JSON.stringify(deleted));
  assert.equal(await database.db.selectFrom('users').select('id').where('id', '=', owner.id).executeTakeFirst(), undefined);
  const memberships = await database.db.selectFrom('memberships').select(['user_id', 'access_level']).where('group_id', '=', group.id).execute();
  assert.deepEqual(memberships.map((m) => ({ ...m })), [{ user_id: second.id, access_level: ROLES.owner }]);
});

test('users change their own password, giving the current one', async () => {
  const me = await insertUser(database.db);
  await database.db.updateTable('users').set({ password_hash: await hashPassword('the old password') }).where('id', '=', me.id).execute();
  const actor = onApi(userActor(me.id));
  const before = await countRows(database.db);
  const wrong = await users.changePassword(actor, { current_password: 'not the password', new_password: 'the new password!' });
  assert.deepEqual(!wrong.ok && Object.keys(wrong.fields ?? {}), ['current_password']);
  const short = await users.changePassword(actor, { current_password: 'the old password', new_password: 'short' });
  assert.deepEqual(!short.ok && Object.keys(short.fields ?? {}), ['new_password']);
  const viaReadToken = await users.changePassword(onApi(userActor(me.id, [], { scopes: ['read_api'] })), { current_password: 'the old password', new_password: 'the new password!' });
  assert.equal(!viaReadToken.ok && viaReadToken.reason, 'forbidden');
  assert.deepEqual(await countRows(database.db), before);

  const changed = await users.changePassword(actor, { current_password: 'the old password', new_password: 'the new password!' });
  assert.ok(changed.ok);
  const row = await database.db.selectFrom('users').select('password_hash').where('id', '=', me.id).executeTakeFirstOrThrow();
  assert.ok(await verifyPassword('the new password!', row.password_hash));
  assert.equal(await verifyPassword('the old password', row.password_hash), false);
});
