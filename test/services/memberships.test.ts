import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MembershipService } from '../../src/services/memberships.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { ROLES } from '../../src/db/schema.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUser, userActor } from '../helpers/fixtures.ts';
import { onApi } from '../helpers/identity.ts';

let database: TestDatabase;
let memberships: MembershipService;

before(async () => {
  database = await createTestDatabase();
  memberships = new MembershipService({ db: database.db, changes: database.changes });
});
after(() => database.destroy());

async function member(groupId: number, role: keyof typeof ROLES): Promise<Actor & { userId: number }> {
  const user = await insertUser(database.db);
  await insertMembership(database.db, groupId, user.id, role);
  return onApi(userActor(user.id, [[groupId, ROLES[role]]])) as Actor & { userId: number };
}

const levelOf = async (groupId: number, userId: number) =>
  (await database.db.selectFrom('memberships').select('access_level').where('group_id', '=', groupId).where('user_id', '=', userId).executeTakeFirst())?.access_level;

test('owners add members by username or id, change their role and remove them', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const alice = await insertUser(database.db);
  const bob = await insertUser(database.db);
  const added = await memberships.add(owner, { group_id: group.id, username: alice.username.toUpperCase(), role: 'developer' });
  assert.ok(added.ok, JSON.stringify(added));
  assert.deepEqual({ user_id: added.value.user_id, role: added.value.role, access_level: added.value.access_level }, { user_id: alice.id, role: 'developer', access_level: 30 });
  assert.ok((await memberships.add(owner, { group_id: String(group.id), user_id: bob.id, role: 'guest' })).ok);
  const changed = await memberships.changeRole(owner, { group_id: group.id, user_id: alice.id, role: 'maintainer' });
  assert.ok(changed.ok);
  assert.equal(await levelOf(group.id, alice.id), ROLES.maintainer);
  const removed = await memberships.remove(owner, { group_id: group.id, user_id: bob.id });
  assert.ok(removed.ok);
  assert.equal(await levelOf(group.id, bob.id), undefined);
  const list = await memberships.list(owner, { group_id: group.id });
  assert.ok(list.ok);
  assert.deepEqual(list.value.items.map((m) => [m.user_id, m.role]), [[owner.userId, 'owner'], [alice.id, 'maintainer']]);
  const actions = await database.db.selectFrom('audit_events').select('action').where('group_id', '=', group.id).orderBy('id').execute();
  assert.deepEqual(actions.map((a) => a.action), ['member.add', 'member.add', 'member.change_role', 'member.remove']);
});

test('bad input, duplicates and unknown users are refused and write nothing', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const existing = await member(group.id, 'guest');
  const before = await countRows(database.db);
  const badRole = await memberships.add(owner, { group_id: group.id, user_id: existing.userId, role: 'boss' as never });
  assert.deepEqual(!badRole.ok && Object.keys(badRole.fields ?? {}), ['role']);
  const noUser = await memberships.add(owner, { group_id: group.id, role: 'guest' });
  assert.deepEqual(!noUser.ok && Object.keys(noUser.fields ?? {}), ['user_id']);
  const duplicate = await memberships.add(owner, { group_id: group.id, user_id: existing.userId, role: 'developer' });
  assert.equal(!duplicate.ok && duplicate.reason, 'conflict');
  const unknown = await memberships.add(owner, { group_id: group.id, username: 'nobody-here', role: 'guest' });
  assert.equal(!unknown.ok && unknown.reason, 'not_found');
  const notMember = await memberships.changeRole(owner, { group_id: group.id, user_id: 999_999, role: 'guest' });
  assert.equal(!notMember.ok && notMember.reason, 'not_found');
  const badGroup = await memberships.add(owner, { group_id: 'x', user_id: existing.userId, role: 'guest' });
  assert.equal(!badGroup.ok && badGroup.reason, 'not_found');
  assert.deepEqual(await countRows(database.db), before);
});

test('only owners manage members; outsiders do not see the group', async () => {
  const group = await insertGroup(database.db);
  await member(group.id, 'owner');
  const maintainer = await member(group.id, 'maintainer');
  const guest = await member(group.id, 'guest');
  const outsider = onApi(userActor((await insertUser(database.db)).id));
  const target = await insertUser(database.db);
  const before = await countRows(database.db);
  const byMaintainer = await memberships.add(maintainer, { group_id: group.id, user_id: target.id, role: 'guest' });
  assert.equal(!byMaintainer.ok && byMaintainer.reason, 'forbidden');
  const byOutsider = await memberships.add(outsider, { group_id: group.id, user_id: target.id, role: 'guest' });
  assert.equal(!byOutsider.ok && byOutsider.reason, 'not_found');
  const promote = await memberships.changeRole(guest, { group_id: group.id, user_id: guest.userId, role: 'owner' });
  assert.equal(!promote.ok && promote.reason, 'forbidden');
  assert.deepEqual(await countRows(database.db), before);
  assert.ok((await memberships.list(guest, { group_id: group.id })).ok);
  const outsiderList = await memberships.list(outsider, { group_id: group.id });
  assert.equal(!outsiderList.ok && outsiderList.reason, 'not_found');
});

test('the last owner can be neither demoted nor removed', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const before = await countRows(database.db);
  const demote = await memberships.changeRole(owner, { group_id: group.id, user_id: owner.userId, role: 'maintainer' });
  assert.equal(!demote.ok && demote.reason, 'conflict');
  const remove = await memberships.remove(owner, { group_id: group.id, user_id: owner.userId });
  assert.equal(!remove.ok && remove.reason, 'conflict');
  assert.deepEqual(await countRows(database.db), before);
  assert.equal(await levelOf(group.id, owner.userId), ROLES.owner);
});

test('two owners demoting each other at once leave one owner', async () => {
  const group = await insertGroup(database.db);
  const first = await member(group.id, 'owner');
  const second = await member(group.id, 'owner');
  const results = await Promise.all([
    memberships.changeRole(first, { group_id: group.id, user_id: second.userId, role: 'developer' }),
    memberships.changeRole(second, { group_id: group.id, user_id: first.userId, role: 'developer' }),
  ]);
  assert.deepEqual(results.map((r) => r.ok).sort(), [false, true]);
  const owners = await database.db.selectFrom('memberships').select('user_id').where('group_id', '=', group.id).where('access_level', '=', ROLES.owner).execute();
  assert.equal(owners.length, 1);
});
