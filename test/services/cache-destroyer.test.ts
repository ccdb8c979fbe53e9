import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CacheDestroyer } from '../../src/services/cache-destroyer.ts';
import { CacheEntryService } from '../../src/services/cache-entries.ts';
import type { CacheEntryInput } from '../../src/services/cache-entries.ts';
import { FilesystemObjectStore } from '../../src/storage/filesystem.ts';
import type { ObjectInfo } from '../../src/storage/object-store.ts';
import { SYSTEM } from '../../src/auth/policy.ts';
import { CACHE_ENTRY_STATUS } from '../../src/db/schema.ts';
import { createTestDatabase, dialectUnderTest } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertUpstream } from '../helpers/fixtures.ts';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let database: TestDatabase;
let root: string;
let store: FilesystemObjectStore;
let entries: CacheEntryService;
let groupId: number;

before(async () => {
  database = await createTestDatabase();
  root = mkdtempSync(path.join(tmpdir(), 'manifold-destroy-'));
  store = new FilesystemObjectStore({ root });
  await store.init();
  entries = new CacheEntryService({ db: database.db, dialect: database.dialect, store, changes: database.changes });
  groupId = (await insertGroup(database.db)).id;
});

after(async () => {
  await database.destroy();
  rmSync(root, { recursive: true, force: true });
});

const destroyer = (options: { batchSize?: number; retryAfterMs?: number; db?: TestDatabase['db']; objectStore?: FilesystemObjectStore } = {}) =>
  new CacheDestroyer({ db: options.db ?? database.db, dialect: database.dialect, store: options.objectStore ?? store, batchSize: options.batchSize, retryAfterMs: options.retryAfterMs });

async function storeObject(bytes: Buffer = randomBytes(64)): Promise<string> {
  const writer = await store.createWriter(sha256(bytes));
  await writer.write(bytes);
  const result = await writer.commit(bytes.length);
  assert.ok(result.ok);
  return result.value.digest;
}

async function create(upstreamId: number, relativePath: string, digest: string): Promise<number> {
  const info = await store.stat(digest);
  assert.ok(info);
  const input: CacheEntryInput = { upstreamId, relativePath, digest, size: info.size, contentType: 'application/octet-stream', upstreamEtag: null };
  const result = await entries.createOrUpdate(SYSTEM, input);
  assert.ok(result.ok, JSON.stringify(result));
  return result.value.id;
}

const blob = (digest: string, image = 'library/alpine') => `/${image}/blobs/${digest}`;
const rowsOf = (upstreamId: number) => database.db.selectFrom('cache_entries').select(['id', 'relative_path', 'digest', 'status']).where('upstream_id', '=', upstreamId).execute();
const stored = async (digest: string) => (await store.stat(digest)) !== null;

describe('the destroy worker', () => {
  test('deletes an upstream\'s marked rows and exactly the objects no live entry uses', async () => {
    const upstreamA = (await insertUpstream(database.db, groupId)).id;
    const upstreamB = (await insertUpstream(database.db, groupId)).id;
    const [refilled, onlyA1, onlyA2, shared] = [await storeObject(), await storeObject(), await storeObject(), await storeObject()];
    const manifest = await storeObject(Buffer.from('{"tagged":1}'));
    await create(upstreamA, blob(refilled), refilled);
    await create(upstreamA, blob(onlyA1), onlyA1);
    await create(upstreamA, blob(onlyA2), onlyA2);
    await create(upstreamA, blob(shared), shared);
    await create(upstreamA, '/library/alpine/manifests/latest', manifest);
    await create(upstreamB, blob(shared, 'other/image'), shared);
    // Another upstream's tag entry names the manifest digest: it is live too.
    await create(upstreamB, '/other/image/manifests/v1', manifest);

    const marked = await entries.markUpstreamForDestruction(SYSTEM, upstreamA);
    assert.deepEqual(marked, { ok: true, value: { marked: 5 } });
    // Filled again at once, while the marked row still waits for the worker.
    const again = await create(upstreamA, blob(refilled), refilled);

    const run = await destroyer().runOnce();
    assert.deepEqual(run, { entries: 5, objects: 2, errors: 0 });
    assert.deepEqual((await rowsOf(upstreamA)).map((r) => [r.id, r.status]), [[again, CACHE_ENTRY_STATUS.default]]);
    assert.equal((await rowsOf(upstreamB)).length, 2);
    assert.equal(await stored(onlyA1), false);
    assert.equal(await stored(onlyA2), false);
    assert.equal(await stored(refilled), true, 'the refilled entry uses it');
    assert.equal(await stored(shared), true, 'another upstream\'s entry uses it');
    assert.equal(await stored(manifest), true, 'another upstream\'s tag uses it');
    assert.deepEqual(await destroyer().runOnce(), { entries: 0, objects: 0, errors: 0 }, 'nothing left to do');
  });

  test('two workers at once delete each row once', async () => {
    const upstream = (await insertUpstream(database.db, groupId)).id;
    const digests = await Promise.all(Array.from({ length: 120 }, () => storeObject()));
    for (const [i, digest] of digests.entries()) await create(upstream, blob(digest, `many/image${i % 7}`), digest);
    assert.deepEqual(await entries.markUpstreamForDestruction(SYSTEM, upstream), { ok: true, value: { marked: 120 } });

    const first = database.another();
    const second = database.another();
    const runs = await Promise.all([
      destroyer({ db: first.db, batchSize: 7 }).runOnce(),
      destroyer({ db: second.db, batchSize: 7 }).runOnce(),
    ]);
    assert.equal(runs[0].entries + runs[1].entries, 120);
    assert.equal(runs[0].errors + runs[1].errors, 0);
    assert.deepEqual(await rowsOf(upstream), []);
    for (const digest of digests) assert.equal(await stored(digest), false);
    await Promise.all([first.close(), second.close()]);
  });

  test('deletes the entries of a deleted upstream', async () => {
    const upstream = (await insertUpstream(database.db, groupId)).id;
    const digest = await storeObject();
    const id = await create(upstream, blob(digest), digest);
    await database.db.deleteFrom('upstreams').where('id', '=', upstream).execute();
    assert.equal((await database.db.selectFrom('cache_entries').select('upstream_id').where('id', '=', id).executeTakeFirstOrThrow()).upstream_id, null);
    const run = await destroyer().runOnce();
    assert.deepEqual(run, { entries: 1, objects: 1, errors: 0 });
    assert.equal(await stored(digest), false);
  });

  test('an object that cannot be deleted keeps its rows with status error, and a later run retries them', async () => {
    const upstream = (await insertUpstream(database.db, groupId)).id;
    const failing = await storeObject();
    const fine = await storeObject();
    await create(upstream, blob(failing), failing);
    await create(upstream, blob(fine), fine);
    await entries.markUpstreamForDestruction(SYSTEM, upstream);

    const broken = new (class extends FilesystemObjectStore {
      override async delete(digest: string): Promise<void> {
        if (digest === failing) throw new Error('permission denied');
        return super.delete(digest);
      }
    })({ root });
    const run = await destroyer({ objectStore: broken, retryAfterMs: 0 }).runOnce();
    assert.deepEqual(run, { entries: 1, objects: 1, errors: 1 });
    assert.deepEqual((await rowsOf(upstream)).map((r) => [r.digest, r.status]), [[failing, CACHE_ENTRY_STATUS.error]]);
    assert.equal(await stored(failing), true);

    await new Promise((resolve) => setTimeout(resolve, 5)); // let the error's time pass
    assert.deepEqual(await destroyer({ retryAfterMs: 60_000 }).runOnce(), { entries: 0, objects: 0, errors: 0 }, 'not retried too soon');
    assert.deepEqual(await destroyer({ retryAfterMs: 0 }).runOnce(), { entries: 1, objects: 1, errors: 0 });
    assert.deepEqual(await rowsOf(upstream), []);
    assert.equal(await stored(failing), false);
  });

  test('an entry created for the object while the worker wants to delete it keeps the object', async () => {
    const upstream = (await insertUpstream(database.db, groupId)).id;
    const digest = await storeObject();
    await create(upstream, blob(digest), digest);
    await entries.markUpstreamForDestruction(SYSTEM, upstream);

    // A fill for the same digest has checked the object and is about to write its entry.
    const entered = Promise.withResolvers<void>();
    const proceed = Promise.withResolvers<void>();
    const pausing = new (class extends FilesystemObjectStore {
      override async stat(value: string): Promise<ObjectInfo | null> {
        entered.resolve();
        await proceed.promise;
        return super.stat(value);
      }
    })({ root });
    const fills = new CacheEntryService({ db: database.db, dialect: database.dialect, store: pausing, changes: database.changes });
    const info = (await store.stat(digest))!;
    const fill = fills.createOrUpdate(SYSTEM, { upstreamId: upstream, relativePath: blob(digest, 'refill/image'), digest, size: info.size, contentType: 'application/octet-stream', upstreamEtag: null });
    await entered.promise;
    const worker = destroyer({ db: dialectUnderTest === 'postgres' ? database.db : undefined }).runOnce();
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the worker reach the digest lock
    proceed.resolve();
    const [filled, run] = await Promise.all([fill, worker]);

    assert.ok(filled.ok);
    assert.deepEqual(run, { entries: 1, objects: 0, errors: 0 });
    assert.equal(await stored(digest), true, 'the new live entry still has its object');
    assert.deepEqual((await rowsOf(upstream)).map((r) => r.status), [CACHE_ENTRY_STATUS.default]);
  });

  test('an entry for an object the worker already deleted is refused', async () => {
    const upstream = (await insertUpstream(database.db, groupId)).id;
    const digest = await storeObject();
    const info = (await store.stat(digest))!;
    await create(upstream, blob(digest), digest);
    await entries.markUpstreamForDestruction(SYSTEM, upstream);
    assert.deepEqual(await destroyer().runOnce(), { entries: 1, objects: 1, errors: 0 });
    const late = await entries.createOrUpdate(SYSTEM, { upstreamId: upstream, relativePath: blob(digest), digest, size: info.size, contentType: 'application/octet-stream', upstreamEtag: null });
    assert.equal(!late.ok && late.reason, 'object_not_present');
  });

  test('start runs the worker on its interval and stop waits for it', async () => {
    const upstream = (await insertUpstream(database.db, groupId)).id;
    const digest = await storeObject();
    await create(upstream, blob(digest), digest);
    await entries.markUpstreamForDestruction(SYSTEM, upstream);
    const worker = new CacheDestroyer({ db: database.db, dialect: database.dialect, store, intervalMs: 10 });
    worker.start();
    for (let i = 0; i < 200 && (await rowsOf(upstream)).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    await worker.stop();
    assert.deepEqual(await rowsOf(upstream), []);
    assert.equal(await stored(digest), false);
  });
});
