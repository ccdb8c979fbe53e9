// A database that goes away inside a write transaction, for the services that write users, groups,
// memberships, tokens and cache entries, and for the destroy worker: each write answers the `unavailable`
// result (the API's 503 with Retry-After) instead of throwing, and nothing of the change is left behind
// (the transaction rolled back, no audit event). The outage is injected by a Kysely plugin that fails the first write statement with the error
// the driver of the database under test gives when the server goes away: PostgreSQL's 57P01
// (pg_terminate_backend), SQLite's SQLITE_BUSY (a file locked past the busy timeout).
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { SYSTEM } from '../../src/auth/policy.ts';
import type { Db } from '../../src/db/connect.ts';
import { CACHE_ENTRY_STATUS, ROLES } from '../../src/db/schema.ts';
import type { Result } from '../../src/result.ts';
import { CacheDestroyer } from '../../src/services/cache-destroyer.ts';
import { CacheEntryService } from '../../src/services/cache-entries.ts';
import { GroupService } from '../../src/services/groups.ts';
import { MembershipService } from '../../src/services/memberships.ts';
import { TokenService } from '../../src/services/tokens.ts';
import { UserService } from '../../src/services/users.ts';
import { FilesystemObjectStore } from '../../src/storage/filesystem.ts';
import { createTestDatabase, dialectUnderTest } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUpstream, insertUser, uniqueName, userActor } from '../helpers/fixtures.ts';

/** The error the driver under test throws when the database goes away mid-transaction. */
function outageError(): Error {
  return dialectUnderTest === 'postgres'
    ? Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01', severity: 'FATAL' })
    : Object.assign(new Error('database is locked'), { code: 'ERR_SQLITE_ERROR', errcode: 5 });
}

/** Fails the first INSERT, UPDATE or DELETE after `arm()`: the services write only inside transactions. */
class OutageOnWrite implements KyselyPlugin {
  armed = false;
  failures = 0;

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const kind = args.node.kind;
    if (this.armed && (kind === 'InsertQueryNode' || kind === 'UpdateQueryNode' || kind === 'DeleteQueryNode')) {
      this.armed = false;
      this.failures += 1;
      throw outageError();
    }
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

function assertUnavailable(result: Result<unknown>, what: string): void {
  assert.equal(result.ok, false, `${what} must fail while the database is away`);
  if (result.ok) return;
  assert.equal(result.reason, 'unavailable', `${what}: ${result.message}`);
  assert.match(result.message, /the database is unavailable/);
}

describe(`an outage inside a write transaction (${dialectUnderTest})`, () => {
  let database: TestDatabase;
  let db: Db;
  const outage = new OutageOnWrite();
  let users: UserService;
  let groups: GroupService;
  let memberships: MembershipService;
  let tokens: TokenService;
  let objectsDir: string;
  let store: FilesystemObjectStore;
  let entries: CacheEntryService;
  let destroyer: CacheDestroyer;
  let auditEvents: () => Promise<number>;

  before(async () => {
    database = await createTestDatabase();
    db = database.db;
    const failing = db.withPlugin(outage);
    users = new UserService({ db: failing, changes: database.changes });
    groups = new GroupService({ db: failing, changes: database.changes });
    memberships = new MembershipService({ db: failing, changes: database.changes });
    tokens = new TokenService({ db: failing, changes: database.changes });
    objectsDir = mkdtempSync(path.join(tmpdir(), 'manifold-outage-objects-'));
    store = new FilesystemObjectStore({ root: objectsDir });
    await store.init();
    entries = new CacheEntryService({ db: failing, dialect: database.dialect, store, changes: database.changes });
    destroyer = new CacheDestroyer({ db: failing, dialect: database.dialect, store });
    auditEvents = async () => Number((await db.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  });
  after(async () => {
    await database?.destroy();
    if (objectsDir) rmSync(objectsDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    outage.armed = false;
  });

  /** Runs `write` with the outage armed: it must answer `unavailable`, hit the injected fault, and record no event. */
  async function duringOutage(what: string, write: () => Promise<Result<unknown>>): Promise<void> {
    const events = await auditEvents();
    const failuresBefore = outage.failures;
    outage.armed = true;
    const result = await write();
    assert.equal(outage.failures, failuresBefore + 1, `${what} reached a write statement`);
    assertUnavailable(result, what);
    assert.equal(await auditEvents(), events, `${what}: no audit event of a change that did not happen`);
  }

  it('users: create, block, change password and delete answer unavailable and change nothing', async () => {
    const username = uniqueName('outage');
    await duringOutage('user create', () => users.create(SYSTEM, { username, password: 'a long enough password' }));
    assert.equal(await db.selectFrom('users').select('id').where('username', '=', username).executeTakeFirst(), undefined, 'no user was created');

    const target = await insertUser(db);
    await duringOutage('user block', () => users.block(SYSTEM, target.id));
    assert.equal((await db.selectFrom('users').select('blocked').where('id', '=', target.id).executeTakeFirstOrThrow()).blocked, 0, 'the user is not blocked');

    await duringOutage('user delete', () => users.delete(SYSTEM, target.id));
    assert.ok(await db.selectFrom('users').select('id').where('id', '=', target.id).executeTakeFirst(), 'the user still exists');

    const created = await users.create(SYSTEM, { username: uniqueName('self'), password: 'the first password' });
    assert.ok(created.ok, 'without the outage the same service writes');
    const self = userActor(created.value.id, [], { channel: 'api' });
    const hashBefore = (await db.selectFrom('users').select('password_hash').where('id', '=', created.value.id).executeTakeFirstOrThrow()).password_hash;
    await duringOutage('password change', () => users.changePassword(self, { current_password: 'the first password', new_password: 'the second password' }));
    assert.equal((await db.selectFrom('users').select('password_hash').where('id', '=', created.value.id).executeTakeFirstOrThrow()).password_hash, hashBefore, 'the password is unchanged');
  });

  it('groups: create, update and delete answer unavailable and change nothing', async () => {
    const owner = await insertUser(db);
    const path = uniqueName('outage');
    await duringOutage('group create', () => groups.create(userActor(owner.id), { path }));
    assert.equal(await db.selectFrom('groups').select('id').where('path', '=', path).executeTakeFirst(), undefined, 'no group was created');
    assert.equal(await db.selectFrom('memberships').select('id').where('user_id', '=', owner.id).executeTakeFirst(), undefined, 'and no owner membership');

    const group = await insertGroup(db);
    await duringOutage('group update', () => groups.update(SYSTEM, group.id, { name: 'renamed during the outage' }));
    assert.notEqual((await db.selectFrom('groups').select('name').where('id', '=', group.id).executeTakeFirstOrThrow()).name, 'renamed during the outage');

    await duringOutage('group delete', () => groups.delete(SYSTEM, group.id));
    assert.ok(await db.selectFrom('groups').select('id').where('id', '=', group.id).executeTakeFirst(), 'the group still exists');
  });

  it('memberships: add, change role and remove answer unavailable and change nothing', async () => {
    const group = await insertGroup(db);
    const owner = await insertUser(db);
    const member = await insertUser(db);
    await insertMembership(db, group.id, owner.id, 'owner');
    const newcomer = await insertUser(db);
    await duringOutage('member add', () => memberships.add(SYSTEM, { group_id: group.id, user_id: newcomer.id, role: 'developer' }));
    assert.equal(await db.selectFrom('memberships').select('id').where('user_id', '=', newcomer.id).executeTakeFirst(), undefined, 'no membership was added');

    await insertMembership(db, group.id, member.id, 'developer');
    await duringOutage('member role change', () => memberships.changeRole(SYSTEM, { group_id: group.id, user_id: member.id, role: 'maintainer' }));
    const role = await db.selectFrom('memberships').select('access_level').where('group_id', '=', group.id).where('user_id', '=', member.id).executeTakeFirstOrThrow();
    assert.equal(role.access_level, ROLES.developer, 'the role is unchanged');

    await duringOutage('member remove', () => memberships.remove(SYSTEM, { group_id: group.id, user_id: member.id }));
    assert.ok(await db.selectFrom('memberships').select('id').where('group_id', '=', group.id).where('user_id', '=', member.id).executeTakeFirst(), 'the member is still there');
  });

  it('tokens: personal, group and deploy token creation and revocation answer unavailable and change nothing', async () => {
    const group = await insertGroup(db);
    const user = await insertUser(db);
    const tokenCount = async () => Number((await db.selectFrom('access_tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const before = await tokenCount();
    await duringOutage('personal token create', () => tokens.createPersonal(userActor(user.id, [], { channel: 'api' }), { name: 'laptop', scopes: ['api'] }));
    await duringOutage('group token create', () => tokens.createGroupToken(SYSTEM, { group_id: group.id, name: 'robot', role: 'developer', scopes: ['api'] }));
    await duringOutage('deploy token create', () => tokens.createDeployToken(SYSTEM, { group_id: group.id, name: 'deploy' }));
    assert.equal(await tokenCount(), before, 'no token was created');

    const created = await tokens.createDeployToken(SYSTEM, { group_id: group.id, name: 'kept' });
    assert.ok(created.ok, 'without the outage the same service writes');
    await duringOutage('token revoke', () => tokens.revoke(SYSTEM, { id: created.value.id }));
    assert.equal((await db.selectFrom('access_tokens').select('revoked_at').where('id', '=', created.value.id).executeTakeFirstOrThrow()).revoked_at, null, 'the token is not revoked');
  });

  it('cache entries: recording a filled object answers unavailable and records no entry', async () => {
    const group = await insertGroup(db);
    const upstream = await insertUpstream(db, group.id);
    const bytes = randomBytes(64);
    const writer = await store.createWriter(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    await writer.write(bytes);
    const object = await writer.commit(bytes.length);
    assert.ok(object.ok);
    const relativePath = `/library/alpine/blobs/${object.value.digest}`;
    await duringOutage('cache entry upsert', () => entries.createOrUpdate(SYSTEM, {
      upstreamId: upstream.id, relativePath, digest: object.value.digest, size: object.value.size, contentType: 'application/octet-stream', upstreamEtag: null,
    }));
    assert.equal(await db.selectFrom('cache_entries').select('id').where('relative_path', '=', relativePath).executeTakeFirst(), undefined, 'no entry was recorded');
  });

  it('the destroy worker: a batch that meets the outage counts an error and leaves its rows for the next run', async () => {
    const group = await insertGroup(db);
    const upstream = await insertUpstream(db, group.id);
    const now = Date.now();
    const digest = `sha256:${randomBytes(32).toString('hex')}`;
    const row = await db.insertInto('cache_entries').values({
      group_id: group.id, upstream_id: upstream.id, relative_path: `/library/gone/blobs/${digest}`, digest, size: 1, content_type: 'application/octet-stream',
      upstream_etag: null, upstream_checked_at: now, downloaded_at: null, downloads_count: 0, status: CACHE_ENTRY_STATUS.pending_destruction, created_at: now, updated_at: now,
    }).returning('id').executeTakeFirstOrThrow();
    outage.armed = true;
    const run = await destroyer.runOnce();
    assert.equal(outage.failures > 0 && !outage.armed, true, 'the batch reached a write statement');
    assert.equal(run.errors, 1, 'the failed batch is counted');
    assert.equal(run.entries, 0);
    const left = await db.selectFrom('cache_entries').select('status').where('id', '=', row.id).executeTakeFirst();
    assert.equal(left?.status, CACHE_ENTRY_STATUS.pending_destruction, 'the row waits for the next run');
    const retried = await destroyer.runOnce();
    assert.equal(retried.errors, 0, 'the next run, with the database back, destroys it');
    assert.equal(await db.selectFrom('cache_entries').select('id').where('id', '=', row.id).executeTakeFirst(), undefined);
  });
});
