import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kysely, PostgresDialect } from 'kysely';
import { DownloadCounter } from '../../src/services/download-counter.ts';
import type { Database } from '../../src/db/schema.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertUpstream } from '../helpers/fixtures.ts';

let database: TestDatabase;
let groupId: number;
let upstreamId: number;
let counter = 0;

before(async () => {
  database = await createTestDatabase();
  groupId = (await insertGroup(database.db)).id;
  upstreamId = (await insertUpstream(database.db, groupId)).id;
});

after(() => database.destroy());

async function insertEntry(downloadedAt: number | null = null, downloads = 0): Promise<number> {
  const now = Date.now();
  const row = await database.db.insertInto('cache_entries').values({
    group_id: groupId,
    upstream_id: upstreamId,
    relative_path: `/counted/image/manifests/v${++counter}`,
    digest: `sha256:${'c'.repeat(64)}`,
    size: 1,
    content_type: 'application/json',
    upstream_etag: null,
    upstream_checked_at: now,
    downloaded_at: downloadedAt,
    downloads_count: downloads,
    created_at: now,
    updated_at: now,
  }).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

const entry = async (id: number) => ({ ...(await database.db.selectFrom('cache_entries').select(['downloads_count', 'downloaded_at']).where('id', '=', id).executeTakeFirstOrThrow()) });

test('1,000 downloads of one entry become downloads_count 1,000 in far fewer than 1,000 writes', async () => {
  const id = await insertEntry();
  const downloads = new DownloadCounter({ db: database.db, flushIntervalMs: 60_000 });
  for (let i = 0; i < 1000; i++) downloads.record(id, 1_000_000 + i);
  assert.deepEqual(await entry(id), { downloads_count: 0, downloaded_at: null }, 'nothing written before the flush');
  const { writes } = await downloads.flush();
  assert.ok(writes <= 2, `${writes} writes`);
  assert.deepEqual(await entry(id), { downloads_count: 1000, downloaded_at: 1_000_999 });
  assert.deepEqual(await downloads.flush(), { writes: 0 }, 'an empty buffer writes nothing');
});

test('many entries are merged per entry, added to their counts, and keep the latest download time', async () => {
  const older = await insertEntry(5_000, 7);
  const newer = await insertEntry(9_000_000, 3);
  const many = await Promise.all(Array.from({ length: 1500 }, () => insertEntry()));
  const downloads = new DownloadCounter({ db: database.db, flushIntervalMs: 60_000 });
  downloads.record(older, 6_000);
  downloads.record(older, 5_500);
  downloads.record(newer, 8_000);
  for (const id of many) {
    downloads.record(id, 42);
    downloads.record(id, 41);
  }
  const { writes } = await downloads.flush();
  assert.ok(writes < 10, `${writes} writes for 1,502 entries`);
  assert.deepEqual(await entry(older), { downloads_count: 9, downloaded_at: 6_000 });
  assert.deepEqual(await entry(newer), { downloads_count: 4, downloaded_at: 9_000_000 }, 'an older download does not move the time back');
  const counted = await database.db.selectFrom('cache_entries').select(['downloads_count', 'downloaded_at']).where('id', 'in', many).execute();
  assert.ok(counted.every((row) => row.downloads_count === 2 && row.downloaded_at === 42));
});

test('downloads of an entry deleted meanwhile are dropped without an error', async () => {
  const id = await insertEntry();
  const downloads = new DownloadCounter({ db: database.db, flushIntervalMs: 60_000 });
  downloads.record(id);
  await database.db.deleteFrom('cache_entries').where('id', '=', id).execute();
  assert.deepEqual(await downloads.flush(), { writes: 1 });
});

test('stop writes what is left; the timer flushes on its own', async () => {
  const id = await insertEntry();
  const downloads = new DownloadCounter({ db: database.db, flushIntervalMs: 20 });
  downloads.start();
  downloads.record(id);
  for (let i = 0; i < 100 && (await entry(id)).downloads_count === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal((await entry(id)).downloads_count, 1, 'the timer flushed');
  downloads.record(id);
  downloads.record(id);
  await downloads.stop();
  assert.equal((await entry(id)).downloads_count, 3);
});

test('a failed flush keeps the downloads for the next one', async () => {
  const id = await insertEntry();
  // A database that refuses every query.
  const unreachable = new Kysely<Database>({ dialect: new PostgresDialect({ pool: async () => { throw new Error('database unreachable'); } }) });
  const downloads = new DownloadCounter({ db: unreachable, flushIntervalMs: 60_000 });
  for (let i = 0; i < 5; i++) downloads.record(id, 100 + i);
  await assert.rejects(downloads.flush(), /unreachable/);
  assert.equal(downloads.pendingEntries, 1, 'the downloads are still buffered');
  assert.equal((await entry(id)).downloads_count, 0);
});
