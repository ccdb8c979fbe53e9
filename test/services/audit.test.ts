import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuditService, recordAudit } from '../../src/services/audit.ts';
import { ANONYMOUS, SYSTEM } from '../../src/auth/policy.ts';
import { ROLES } from '../../src/db/schema.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertUser, userActor } from '../helpers/fixtures.ts';
import { onApi } from '../helpers/identity.ts';

let database: TestDatabase;
let audit: AuditService;

before(async () => {
  database = await createTestDatabase();
  audit = new AuditService({ db: database.db });
});
after(() => database.destroy());

test('recorded details never hold secrets, at any depth', async () => {
  const group = await insertGroup(database.db);
  const user = await insertUser(database.db);
  await recordAudit(database.db, onApi(userActor(user.id)), {
    groupId: group.id, action: 'upstream.update', targetType: 'upstream', targetId: 3,
    details: { before: { url: 'https://a.example', password_encrypted: 'c2VjcmV0' }, after: { url: 'https://b.example', password: 'hunter2hunter2', nested: [{ token_digest: 'abc', token: 'mfpat_x' }] } },
  });
  const row = await database.db.selectFrom('audit_events').selectAll().where('group_id', '=', group.id).executeTakeFirstOrThrow();
  assert.equal(row.actor_user_id, user.id);
  assert.equal(row.actor_name, `user${user.id}`);
  assert.deepEqual(JSON.parse(row.details), { before: { url: 'https://a.example' }, after: { url: 'https://b.example', nested: [{}] } });
});

test('owners and admins list a group\'s events, newest first; others may not', async () => {
  const group = await insertGroup(database.db);
  const owner = onApi(userActor((await insertUser(database.db)).id, [[group.id, ROLES.owner]]));
  const maintainer = onApi(userActor((await insertUser(database.db)).id, [[group.id, ROLES.maintainer]]));
  const outsider = onApi(userActor((await insertUser(database.db)).id));
  const admin = onApi(userActor((await insertUser(database.db, { admin: true })).id, [], { admin: true }));
  for (const action of ['a.one', 'a.two', 'a.three']) {
    await recordAudit(database.db, SYSTEM, { groupId: group.id, action, targetType: 'group', targetId: group.id });
  }
  await recordAudit(database.db, SYSTEM, { groupId: null, action: 'user.create', targetType: 'user', targetId: 1 });

  const page = await audit.list(owner, { group_id: group.id, per_page: 2 });
  assert.ok(page.ok);
  assert.deepEqual(page.value.items.map((e) => e.action), ['a.three', 'a.two']);
  assert.equal(page.value.total, 3);
  assert.equal(page.value.items[0].actor_name, 'system');
  const second = await audit.list(owner, { group_id: group.id, page: 2, per_page: 2 });
  assert.deepEqual(second.ok && second.value.items.map((e) => e.action), ['a.one']);

  assert.equal((await audit.list(maintainer, { group_id: group.id })).ok === false, true);
  const hidden = await audit.list(outsider, { group_id: group.id });
  assert.equal(!hidden.ok && hidden.reason, 'not_found');
  const anonymous = await audit.list(ANONYMOUS, { group_id: group.id });
  assert.equal(!anonymous.ok && anonymous.reason, 'unauthorized');
  assert.ok((await audit.list(admin, { group_id: group.id })).ok);

  const instance = await audit.list(admin, {});
  assert.deepEqual(instance.ok && instance.value.items.map((e) => e.action), ['user.create']);
  const instanceByOwner = await audit.list(owner, {});
  assert.equal(!instanceByOwner.ok && instanceByOwner.reason, 'forbidden');
});
