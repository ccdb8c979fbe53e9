import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupService } from '../../src/services/groups.ts';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { CACHE_ENTRY_STATUS, ROLES } from '../../src/db/schema.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUpstream, insertUser, uniqueName, userActor } from '../helpers/fixtures.ts';
import { onApi } from '../helpers/identity.ts';

let database: TestDatabase;
let groups: GroupService;

before(async () => {
  database = await createTestDatabase();
  groups = new GroupService({ db: database.db, changes: database.changes });
});
after(() => database.destroy());

async function member(groupId: number, role: keyof typeof ROLES): Promise<Actor> {
  const user = await insertUser(database.db);
  await insertMembership(database.db, groupId, user.id, role);
  return onApi(userActor(user.id, [[groupId, ROLES[role]]]));
}

test('any active user creates a group and becomes its owner', async () => {
  const user = await insertUser(database.db);
  const path = uniqueName('acme-');
  const result = await groups.create(onApi(userActor(user.id)), { path, description: 'Our images' });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.value.path, path);
  assert.equal(result.value.name, path);
  const membership = await database.db.selectFrom('memberships').select(['user_id', 'access_level']).where('group_id', '=', result.value.id).execute();
  assert.deepEqual(membership.map((m) => ({ ...m })), [{ user_id: user.id, access_level: ROLES.owner }]);
  const audit = await database.db.selectFrom('audit_events').select(['action', 'actor_user_id']).where('group_id', '=', result.value.id).execute();
  assert.deepEqual(audit.map((a) => ({ ...a })), [{ action: 'group.create', actor_user_id: user.id }]);
});

test('a group path must be one image path component, at most 255 characters; bad input writes nothing', async () => {
  const actor = onApi(userActor((await insertUser(database.db)).id));
  const before = await countRows(database.db);
  for (const path of ['', 'Acme', 'acme/team', '-acme', 'acme-', 'a b', 'a'.repeat(256), 42]) {
    const result = await groups.create(actor, { path } as never);
    assert.equal(!result.ok && result.reason, 'invalid', `path ${JSON.stringify(path)}`);
    assert.deepEqual(!result.ok && Object.keys(result.fields ?? {}), ['path']);
  }
  const longName = await groups.create(actor, { path: uniqueName('ok'), name: 'n'.repeat(256) });
  assert.deepEqual(!longName.ok && Object.keys(longName.fields ?? {}), ['name']);
  assert.deepEqual(await countRows(database.db), before);
  assert.ok((await groups.create(actor, { path: 'a'.repeat(255) })).ok);
});

test('group paths are unique', async () => {
  const existing = await insertGroup(database.db);
  const actor = onApi(userActor((await insertUser(database.db)).id));
  const before = await countRows(database.db);
  const result = await groups.create(actor, { path: existing.path });
  assert.equal(!result.ok && result.reason, 'conflict');
  assert.deepEqual(!result.ok && Object.keys(result.fields ?? {}), ['path']);
  assert.deepEqual(await countRows(database.db), before);
});

test('anonymous callers and group tokens cannot create groups', async () => {
  const group = await insertGroup(database.db);
  const token: Actor = { kind: 'group_token', groupId: group.id, accessLevel: ROLES.owner, token: { id: 1, scopes: ['api'], expiresAt: null, revokedAt: null }, channel: 'api' };
  const before = await countRows(database.db);
  assert.equal((await groups.create(ANONYMOUS, { path: uniqueName('g') })).ok === false && 'refused', 'refused');
  const byToken = await groups.create(token, { path: uniqueName('g') });
  assert.equal(!byToken.ok && byToken.reason, 'forbidden');
  assert.deepEqual(await countRows(database.db), before);
});

test('members see their groups; others do not know they exist', async () => {
  const mine = await insertGroup(database.db);
  const theirs = await insertGroup(database.db);
  const guest = await member(mine.id, 'guest');
  const listed = await groups.list(guest);
  assert.ok(listed.ok);
  assert.deepEqual(listed.value.items.map((g) => g.id), [mine.id]);
  assert.equal(listed.value.total, 1);
  assert.ok((await groups.get(guest, mine.id)).ok);
  assert.ok((await groups.getByPath(guest, mine.path)).ok);
  const hidden = await groups.get(guest, theirs.id);
  assert.equal(!hidden.ok && hidden.reason, 'not_found');
  const hiddenByPath = await groups.getByPath(guest, theirs.path);
  assert.equal(!hiddenByPath.ok && hiddenByPath.reason, 'not_found');
  const unknown = await groups.getByPath(guest, 'no-such-group');
  assert.equal(!unknown.ok && unknown.reason, 'not_found');
  const anonymous = await groups.get(ANONYMOUS, mine.id);
  assert.equal(!anonymous.ok && anonymous.reason, 'unauthorized');

  const admin = onApi(userActor((await insertUser(database.db, { admin: true })).id, [], { admin: true }));
  const all = await groups.list(admin, { per_page: 100 });
  assert.ok(all.ok);
  assert.ok(all.value.items.some((g) => g.id === theirs.id) && all.value.items.some((g) => g.id === mine.id));

  // A token that may only pull does not read the API: the group is seen but not readable there.
  const pullOnly = onApi(userActor((guest as { userId: number }).userId, [[mine.id, ROLES.guest]], { scopes: ['read_virtual_registry'] }));
  const refused = await groups.get(pullOnly, mine.id);
  assert.equal(!refused.ok && refused.reason, 'forbidden');
  const none = await groups.list(pullOnly);
  assert.deepEqual(none.ok && none.value.items, []);
});

test('owners update name and description; maintainers may not; bad input writes nothing', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const maintainer = await member(group.id, 'maintainer');
  const before = await countRows(database.db);
  const forbidden = await groups.update(maintainer, group.id, { name: 'Renamed' });
  assert.equal(!forbidden.ok && forbidden.reason, 'forbidden');
  const invalid = await groups.update(owner, group.id, { name: '', description: 'd'.repeat(3000) });
  assert.deepEqual(!invalid.ok && Object.keys(invalid.fields ?? {}).sort(), ['description', 'name']);
  assert.deepEqual(await countRows(database.db), before);
  const updated = await groups.update(owner, group.id, { name: 'Renamed', description: null });
  assert.ok(updated.ok);
  assert.equal(updated.value.name, 'Renamed');
  assert.equal(updated.value.path, group.path);
  const audit = await database.db.selectFrom('audit_events').select('details').where('group_id', '=', group.id).where('action', '=', 'group.update').executeTakeFirstOrThrow();
  assert.deepEqual(JSON.parse(audit.details), { before: { name: group.name, description: null }, after: { name: 'Renamed', description: null } });
});

test('owners delete a group: its members go, its cache entries are marked for destruction', async () => {
  const group = await insertGroup(database.db);
  const owner = await member(group.id, 'owner');
  const maintainer = await member(group.id, 'maintainer');
  const outsider = onApi(userActor((await insertUser(database.db)).id));
  const upstream = await insertUpstream(database.db, group.id);
  const now = Date.now();
  await database.db.insertInto('cache_entries').values({
    group_id: group.id, upstream_id: upstream.id, relative_path: '/library/alpine/manifests/3.20', digest: 'sha256:' + 'a'.repeat(64),
    size: 10, content_type: 'application/vnd.oci.image.manifest.v1+json', upstream_etag: null, upstream_checked_at: now, downloaded_at: null, created_at: now, updated_at: now,
  }).execute();
  assert.equal(!(await groups.delete(maintainer, group.id)).ok, true);
  const hidden = await groups.delete(outsider, group.id);
  assert.equal(!hidden.ok && hidden.reason, 'not_found');
  const deleted = await groups.delete(owner, group.id);
  assert.ok(deleted.ok);
  assert.equal(await database.db.selectFrom('groups').select('id').where('id', '=', group.id).executeTakeFirst(), undefined);
  assert.equal((await database.db.selectFrom('memberships').select('id').where('group_id', '=', group.id).execute()).length, 0);
  const entries = await database.db.selectFrom('cache_entries').select('status').where('group_id', '=', group.id).execute();
  assert.deepEqual(entries.map((e) => e.status), [CACHE_ENTRY_STATUS.pending_destruction]);
});
