// The storage quotas against the database (both dialects): which entries an eviction chooses (least
// recently pulled first, an object shared by two entries freed only with both, the grace period), a
// group's quota evicting only that group's entries and recording the run, and who may set a quota.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SYSTEM } from '../../src/auth/policy.ts';
import { Evictor } from '../../src/services/eviction.ts';
import { GroupService } from '../../src/services/groups.ts';
import { StorageQuota } from '../../src/services/storage-quota.ts';
import type { QuotaSettings } from '../../src/services/storage-quota.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertUpstream, userActor } from '../helpers/fixtures.ts';
import { groupWithMembers } from '../helpers/virtual-registries.ts';

const HOUR = 60 * 60 * 1000;
let database: TestDatabase;

before(async () => {
  database = await createTestDatabase();
});
after(async () => {
  await database.destroy();
});
beforeEach(async () => {
  await database.db.deleteFrom('cache_entries').execute();
});

const digestOf = () => `sha256:${randomBytes(32).toString('hex')}`;

/** A live entry last pulled `pulledAgoMs` ago (created an hour before that). */
async function entry(groupId: number, upstreamId: number, size: number, pulledAgoMs: number, digest = digestOf()): Promise<number> {
  const now = Date.now();
  const row = await database.db.insertInto('cache_entries').values({
    group_id: groupId, upstream_id: upstreamId, relative_path: `/img/blobs/${digest}/${randomBytes(4).toString('hex')}`, digest, size,
    content_type: 'application/octet-stream', upstream_etag: null, upstream_checked_at: now, downloaded_at: now - pulledAgoMs,
    created_at: now - pulledAgoMs - HOUR, updated_at: now,
  }).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

async function liveIds(): Promise<number[]> {
  return (await database.db.selectFrom('cache_entries').select('id').where('status', '=', 0).orderBy('id').execute()).map((row) => row.id);
}

function quota(settings: Partial<QuotaSettings>, graceMs = 0) {
  const destroyed: number[] = [];
  const evictor = new Evictor({ db: database.db, graceMs });
  const check = new StorageQuota({
    db: database.db, dialect: database.dialect, evictor,
    destroyer: { runOnce: async () => { destroyed.push(1); return { entries: 0, objects: 0, errors: 0 }; } },
    settings: { maxBytes: 0, highWatermarkPercent: 90, lowWatermarkPercent: 80, ...settings }, intervalMs: 60_000,
  });
  return { check, evictor, destroyed };
}

describe('eviction under the instance quota', () => {
  test('evicts least recently pulled first; an object shared by two entries counts as freed only once both go', async () => {
    const group = await insertGroup(database.db);
    const one = await insertUpstream(database.db, group.id);
    const two = await insertUpstream(database.db, group.id);
    const shared = digestOf();
    const oldestShared = await entry(group.id, one.id, 400, 4 * HOUR, shared);
    const middle = await entry(group.id, one.id, 400, 3 * HOUR);
    const newerShared = await entry(group.id, two.id, 400, 2 * HOUR, shared);
    const newest = await entry(group.id, two.id, 300, HOUR);
    const { check, evictor, destroyed } = quota({ maxBytes: 1000 });
    assert.deepEqual(await evictor.stored(), { bytes: 1100, entries: 4 }, 'the shared object counts once');

    const result = await check.check();
    // 1100 > 900: free 300. The oldest entry's object is still used by another entry; the middle one frees 400.
    assert.equal(result.storedBytes, 1100);
    assert.equal(result.evictedEntries, 2);
    assert.deepEqual(await liveIds(), [newerShared, newest].sort((a, b) => a - b));
    assert.ok(![oldestShared, middle].some((id) => id === newerShared));
    assert.equal(destroyed.length, 1, 'the destroyer runs after an eviction');
    assert.deepEqual(await evictor.stored(), { bytes: 700, entries: 2 });

    const runs = await database.db.selectFrom('cleanup_runs').selectAll().where('group_id', '=', group.id).execute();
    assert.equal(runs.length, 1);
    assert.equal(runs[0].reason, 'instance_quota');
    assert.equal(Number(runs[0].deleted_entries), 2);
    assert.equal(Number(runs[0].deleted_bytes), 800);
    const evictions = await database.db.selectFrom('upstream_evictions').selectAll().where('upstream_id', '=', one.id).execute();
    assert.equal(Number(evictions[0].entries), 2);

    // Under the high watermark nothing more happens.
    assert.equal((await check.check()).evictedEntries, 0);
  });

  test('entries younger than the grace period are never evicted, whatever the quota', async () => {
    const group = await insertGroup(database.db);
    const upstream = await insertUpstream(database.db, group.id);
    const now = Date.now();
    await database.db.insertInto('cache_entries').values({
      group_id: group.id, upstream_id: upstream.id, relative_path: '/img/blobs/young', digest: digestOf(), size: 5000,
      content_type: 'application/octet-stream', upstream_etag: null, upstream_checked_at: now, downloaded_at: null, created_at: now, updated_at: now,
    }).execute();
    const { check } = quota({ maxBytes: 1000 }, 60_000);
    const result = await check.check();
    assert.equal(result.storedBytes, 5000);
    assert.equal(result.evictedEntries, 0);
    assert.equal((await liveIds()).length, 1);
  });

  test('admits refuses a blob larger than the low watermark of the instance or of its group', async () => {
    const group = await insertGroup(database.db);
    await database.db.updateTable('groups').set({ storage_quota_bytes: 2_000_000 }).where('id', '=', group.id).execute();
    const { check } = quota({ maxBytes: 10_000_000 });
    await check.check();
    assert.equal(check.admits(7_900_000, 999_999), true);
    assert.equal(check.admits(8_000_001, 999_999), false, 'over 80 % of the instance');
    assert.equal(check.admits(1_600_000, group.id), true);
    assert.equal(check.admits(1_600_001, group.id), false, 'over 80 % of the group\'s quota');
  });
});

describe('a group\'s quota', () => {
  test('evicts that group\'s least recently pulled entries only, and records the run', async () => {
    const full = await insertGroup(database.db);
    const other = await insertGroup(database.db);
    const upstream = await insertUpstream(database.db, full.id);
    const otherUpstream = await insertUpstream(database.db, other.id);
    const MiB = 1024 * 1024;
    await database.db.updateTable('groups').set({ storage_quota_bytes: 2 * MiB }).where('id', '=', full.id).execute();
    const ids = [];
    for (let age = 6; age >= 1; age--) ids.push(await entry(full.id, upstream.id, 400 * 1024, age * HOUR));
    const untouched = await entry(other.id, otherUpstream.id, 5 * MiB, 10 * HOUR);
    const { check } = quota({});
    const result = await check.check();
    // 2400 KiB > 90 % of 2 MiB: free down to 80 % (1638.4 KiB), 761.6 KiB: the 2 oldest (800 KiB).
    assert.equal(result.evictedEntries, 2);
    assert.deepEqual(await liveIds(), [...ids.slice(2), untouched].sort((a, b) => a - b));
    const runs = await database.db.selectFrom('cleanup_runs').selectAll().where('group_id', 'in', [full.id, other.id]).execute();
    assert.deepEqual(runs.map((run) => [run.group_id, run.reason, Number(run.deleted_entries), Number(run.deleted_bytes)]), [[full.id, 'group_quota', 2, 2 * 400 * 1024]]);
  });

  test('only instance admins set it; owners may not raise their own', async () => {
    const groups = new GroupService({ db: database.db, changes: database.changes });
    const { group, actors } = await groupWithMembers(database.db);
    const refused = await groups.update(actors.owner, group.id, { storage_quota_bytes: 10 * 1024 * 1024 });
    assert.equal(refused.ok, false);
    assert.equal(!refused.ok && refused.reason, 'forbidden');
    const admin = userActor(0, [], { admin: true, channel: 'api' });
    const set = await groups.update(admin, group.id, { storage_quota_bytes: 10 * 1024 * 1024 });
    assert.ok(set.ok);
    assert.equal(set.value.storage_quota_bytes, 10 * 1024 * 1024);
    const invalid = await groups.update(SYSTEM, group.id, { storage_quota_bytes: 5 });
    assert.equal(!invalid.ok && invalid.reason, 'invalid');
    // An owner may still change the name while the quota stays as it is.
    assert.ok((await groups.update(actors.owner, group.id, { name: 'renamed', storage_quota_bytes: 10 * 1024 * 1024 })).ok);
  });
});
