import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CacheEntryService } from '../../src/services/cache-entries.ts';
import type { CacheEntryInput } from '../../src/services/cache-entries.ts';
import { FilesystemObjectStore } from '../../src/storage/filesystem.ts';
import { ANONYMOUS, SYSTEM } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { CACHE_ENTRY_STATUS, ROLES } from '../../src/db/schema.ts';
import type { Db } from '../../src/db/connect.ts';
import { createTestDatabase, dialectUnderTest } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertMembership, insertUpstream, insertUser, userActor } from '../helpers/fixtures.ts';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let database: TestDatabase;
let root: string;
let store: FilesystemObjectStore;
let service: CacheEntryService;
let groupId: number;

before(async () => {
  database = await createTestDatabase();
  root = mkdtempSync(path.join(tmpdir(), 'manifold-entries-'));
  store = new FilesystemObjectStore({ root });
  await store.init();
  service = new CacheEntryService({ db: database.db, dialect: database.dialect, store, changes: database.changes });
  groupId = (await insertGroup(database.db)).id;
});

after(async () => {
  await database.destroy();
  rmSync(root, { recursive: true, force: true });
});

async function storeObject(bytes: Buffer = randomBytes(64)): Promise<{ digest: string; size: number }> {
  const writer = await store.createWriter(sha256(bytes));
  await writer.write(bytes);
  const result = await writer.commit(bytes.length);
  assert.ok(result.ok);
  return result.value;
}

async function blobInput(upstreamId: number, image = 'library/alpine'): Promise<CacheEntryInput> {
  const object = await storeObject();
  return { upstreamId, relativePath: `/${image}/blobs/${object.digest}`, digest: object.digest, size: object.size, contentType: 'application/octet-stream', upstreamEtag: null };
}

async function insertRegistry(db: Db, group: number, upstreamIds: number[]): Promise<number> {
  const now = Date.now();
  const registry = await db.insertInto('registries').values({ group_id: group, name: `registry${randomBytes(4).toString('hex')}`, description: null, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow();
  for (const [index, upstreamId] of upstreamIds.entries()) {
    await db.insertInto('registry_upstreams').values({ group_id: group, registry_id: registry.id, upstream_id: upstreamId, position: index + 1, created_at: now, updated_at: now }).execute();
  }
  return registry.id;
}

/** Each input through its own service on its own database connection, all at once. */
async function concurrently(inputs: CacheEntryInput[]) {
  const handles = inputs.map(() => database.another(dialectUnderTest === 'postgres' ? { poolSize: 1 } : undefined));
  try {
    return await Promise.all(handles.map((handle, i) => new CacheEntryService({ db: handle.db, dialect: handle.dialect, store, changes: handle.changes }).createOrUpdate(SYSTEM, inputs[i])));
  } finally {
    await Promise.all(handles.map((handle) => handle.close()));
  }
}

const entriesOf = (upstreamId: number) => database.db.selectFrom('cache_entries').selectAll().where('upstream_id', '=', upstreamId).orderBy('id').execute();

describe('create or update', () => {
  test('creates a live entry, then refreshes its values in place', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const first = await storeObject(Buffer.from('{"v":1}'));
    const second = await storeObject(Buffer.from('{"v":22}'));
    const path = '/library/alpine/manifests/3.20';
    const created = await service.createOrUpdate(SYSTEM, { upstreamId: upstream.id, relativePath: path, digest: first.digest, size: first.size, contentType: 'application/vnd.oci.image.index.v1+json', upstreamEtag: '"a"', checkedAt: 1000 });
    assert.ok(created.ok);
    assert.equal(created.value.group_id, groupId);
    assert.equal(created.value.status, CACHE_ENTRY_STATUS.default);
    assert.equal(created.value.upstream_checked_at, 1000);

    const updated = await service.createOrUpdate(SYSTEM, { upstreamId: upstream.id, relativePath: path, digest: second.digest, size: second.size, contentType: 'application/vnd.oci.image.manifest.v1+json', upstreamEtag: '"b"', checkedAt: 2000 });
    assert.ok(updated.ok);
    assert.equal(updated.value.id, created.value.id);
    const rows = await entriesOf(upstream.id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].digest, second.digest);
    assert.equal(rows[0].size, second.size);
    assert.equal(rows[0].content_type, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(rows[0].upstream_etag, '"b"');
    assert.equal(rows[0].upstream_checked_at, 2000);
  });

  test('64 concurrent calls for one path, each on its own connection, leave one live row with one call\'s values', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const objects = [await storeObject(), await storeObject()];
    const path = '/library/nginx/manifests/latest';
    const inputs: CacheEntryInput[] = Array.from({ length: 64 }, (_, i) => ({
      upstreamId: upstream.id,
      relativePath: path,
      digest: objects[i % 2].digest,
      size: objects[i % 2].size,
      contentType: `application/vnd.test.${i}+json`,
      upstreamEtag: `"etag-${i}"`,
      checkedAt: 10_000 + i,
    }));
    const results = await concurrently(inputs);
    assert.deepEqual(results.filter((r) => !r.ok), [], 'no call failed');

    const rows = await entriesOf(upstream.id);
    assert.equal(rows.length, 1);
    const winner = inputs.find((input) => input.upstreamEtag === rows[0].upstream_etag);
    assert.ok(winner, 'the row carries one call\'s etag');
    assert.equal(rows[0].digest, winner.digest);
    assert.equal(rows[0].content_type, winner.contentType);
    assert.equal(rows[0].upstream_checked_at, winner.checkedAt);
    assert.equal(rows[0].status, CACHE_ENTRY_STATUS.default);
  });

  test('64 concurrent calls for 64 paths leave 64 rows', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const inputs = await Promise.all(Array.from({ length: 64 }, (_, i) => blobInput(upstream.id, `team/image${i}`)));
    const results = await concurrently(inputs);
    assert.deepEqual(results.filter((r) => !r.ok), []);
    const rows = await entriesOf(upstream.id);
    assert.equal(rows.length, 64);
    assert.deepEqual(new Set(rows.map((r) => r.relative_path)), new Set(inputs.map((i) => i.relativePath)));
  });

  test('a manifest by digest and a tag pointing at it are two entries', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const object = await storeObject(Buffer.from('{"manifest":true}'));
    const values = { upstreamId: upstream.id, digest: object.digest, size: object.size, contentType: 'application/vnd.oci.image.manifest.v1+json', upstreamEtag: null };
    assert.ok((await service.createOrUpdate(SYSTEM, { ...values, relativePath: '/app/manifests/v1' })).ok);
    assert.ok((await service.createOrUpdate(SYSTEM, { ...values, relativePath: `/app/manifests/${object.digest}` })).ok);
    assert.equal((await entriesOf(upstream.id)).length, 2);
  });
});

describe('create or update refuses', () => {
  let upstreamId: number;
  let input: CacheEntryInput;
  before(async () => {
    upstreamId = (await insertUpstream(database.db, groupId)).id;
    input = await blobInput(upstreamId);
  });

  const assertNothingWritten = async () => assert.deepEqual(await entriesOf(upstreamId), []);

  test('callers without read_virtual_registry on the upstream\'s group: unauthorized', async () => {
    const otherGroup = await insertGroup(database.db);
    const user = await insertUser(database.db);
    await insertMembership(database.db, otherGroup.id, user.id, 'owner');
    const token = { id: 1, scopes: ['read_virtual_registry' as const], expiresAt: null, revokedAt: null };
    const callers: Actor[] = [
      ANONYMOUS,
      userActor(user.id, [[otherGroup.id, ROLES.owner]]),
      { kind: 'deploy_token', groupId: otherGroup.id, token, channel: 'registry' },
      { ...userActor(user.id, [[groupId, ROLES.guest]]), blocked: true } as Actor,
      { kind: 'deploy_token', groupId, token: { ...token, revokedAt: 1 }, channel: 'registry' },
    ];
    for (const actor of callers) {
      const result = await service.createOrUpdate(actor, input);
      assert.equal(!result.ok && result.reason, 'unauthorized', `${actor.kind} is refused`);
    }
    const missing = await service.createOrUpdate(ANONYMOUS, { ...input, upstreamId: 999_999 });
    assert.equal(!missing.ok && missing.reason, 'unauthorized', 'a missing upstream is not revealed');
    await assertNothingWritten();
  });

  test('a missing upstream, to the system: not_found', async () => {
    const result = await service.createOrUpdate(SYSTEM, { ...input, upstreamId: 999_999 });
    assert.equal(!result.ok && result.reason, 'not_found');
  });

  test('a missing path: path_not_present', async () => {
    const result = await service.createOrUpdate(SYSTEM, { ...input, relativePath: '' });
    assert.equal(!result.ok && result.reason, 'path_not_present');
    await assertNothingWritten();
  });

  test('an object that is not stored: object_not_present', async () => {
    const digest = sha256(randomBytes(32));
    const result = await service.createOrUpdate(SYSTEM, { ...input, digest, relativePath: `/library/alpine/blobs/${digest}` });
    assert.equal(!result.ok && result.reason, 'object_not_present');
    await assertNothingWritten();
  });

  test('malformed input: invalid, with the fields', async () => {
    const other = await storeObject();
    const cases: Array<[Partial<CacheEntryInput>, string]> = [
      [{ relativePath: `/library/alpine/blobs/${other.digest}` }, 'relativePath'],
      [{ relativePath: `/library/alpine/manifests/${other.digest}` }, 'relativePath'],
      [{ relativePath: `/Library/alpine/blobs/${input.digest}` }, 'relativePath'],
      [{ relativePath: '/library/alpine/tags/list' }, 'relativePath'],
      [{ relativePath: 'library/alpine/manifests/latest' }, 'relativePath'],
      [{ relativePath: '/library/alpine/manifests/bad:tag' }, 'relativePath'],
      [{ digest: `md5:${'a'.repeat(32)}` }, 'digest'],
      [{ size: -1 }, 'size'],
      [{ size: input.size + 1 }, 'size'],
      [{ contentType: '' }, 'contentType'],
    ];
    for (const [change, field] of cases) {
      const result = await service.createOrUpdate(SYSTEM, { ...input, ...change });
      assert.equal(!result.ok && result.reason, 'invalid', JSON.stringify(change));
      assert.ok(!result.ok && result.fields?.[field], `${JSON.stringify(change)} names ${field}`);
    }
    await assertNothingWritten();
  });

  test('a group member with at least guest access, or a deploy token of the group, may write', async () => {
    const user = await insertUser(database.db);
    await insertMembership(database.db, groupId, user.id, 'guest');
    const guest = await service.createOrUpdate(userActor(user.id, [[groupId, ROLES.guest]]), input);
    assert.ok(guest.ok);
    const token = { id: 2, scopes: ['read_virtual_registry' as const], expiresAt: null, revokedAt: null };
    const deploy = await service.createOrUpdate({ kind: 'deploy_token', groupId, token, channel: 'registry' }, input);
    assert.ok(deploy.ok);
    assert.equal((await entriesOf(upstreamId)).length, 1);
  });

  test('what the database refuses: persistence_error with its cause', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const entry = await blobInput(upstream.id);
    assert.ok((await service.createOrUpdate(SYSTEM, entry)).ok, 'remembers the upstream\'s group');
    await database.db.deleteFrom('upstreams').where('id', '=', upstream.id).execute();
    const result = await service.createOrUpdate(SYSTEM, { ...entry, relativePath: '/library/alpine/manifests/latest' });
    assert.equal(!result.ok && result.reason, 'persistence_error');
    assert.ok(!result.ok && result.cause instanceof Error);
  });
});

describe('lookups', () => {
  let upstreamA: number;
  let upstreamB: number;
  let upstreamC: number;
  let registryId: number;
  before(async () => {
    upstreamA = (await insertUpstream(database.db, groupId, { cacheValidityHours: 1 })).id;
    upstreamB = (await insertUpstream(database.db, groupId, { cacheValidityHours: 0 })).id;
    upstreamC = (await insertUpstream(database.db, groupId)).id;
    // Positions: B first, then A; C is not linked.
    registryId = await insertRegistry(database.db, groupId, [upstreamB, upstreamA]);
  });

  test('findLive: the live entry of one upstream and path only', async () => {
    const input = await blobInput(upstreamA, 'find/live');
    const created = await service.createOrUpdate(SYSTEM, input);
    assert.ok(created.ok);
    assert.equal((await service.findLive(upstreamA, input.relativePath))?.id, created.value.id);
    assert.equal(await service.findLive(upstreamB, input.relativePath), null);
    assert.ok((await service.markEntryForDestruction(SYSTEM, created.value.id)).ok);
    assert.equal(await service.findLive(upstreamA, input.relativePath), null);
  });

  test('findLiveByDigest: any live entry of the upstreams with that digest', async () => {
    const object = await storeObject(Buffer.from('{"by":"digest"}'));
    const tag = await service.createOrUpdate(SYSTEM, { upstreamId: upstreamA, relativePath: '/digest/app/manifests/v2', digest: object.digest, size: object.size, contentType: 'application/json', upstreamEtag: null });
    assert.ok(tag.ok);
    assert.equal((await service.findLiveByDigest([upstreamB, upstreamA], object.digest))?.id, tag.value.id, 'a tag entry with the digest counts');
    assert.equal(await service.findLiveByDigest([upstreamB, upstreamC], object.digest), null, 'other upstreams do not');
    assert.equal(await service.findLiveByDigest([], object.digest), null);
    assert.equal(await service.findLiveByDigest([upstreamA], 'sha256:not-a-digest'), null);
    await store.delete(object.digest);
    // Whether the object is whole is the pull path's check (serveStored), which refetches it (self-repair).
    assert.equal((await service.findLiveByDigest([upstreamA], object.digest))?.id, tag.value.id, 'the entry is found when its object is gone');
  });

  test('findLiveForPath: live entries of the registry\'s upstreams by position', async () => {
    const object = await storeObject(Buffer.from('{"for":"path"}'));
    const values = { relativePath: '/path/app/manifests/stable', digest: object.digest, size: object.size, contentType: 'application/json', upstreamEtag: null };
    for (const upstreamId of [upstreamA, upstreamC, upstreamB]) assert.ok((await service.createOrUpdate(SYSTEM, { ...values, upstreamId })).ok);
    const found = await service.findLiveForPath(registryId, values.relativePath);
    assert.deepEqual(found.map((e) => [e.upstream_id, e.position]), [[upstreamB, 1], [upstreamA, 2]]);
    assert.deepEqual(await service.findLiveForPath(registryId, '/path/app/manifests/other'), []);
  });

  test('touchChecked: refreshes upstream_checked_at', async () => {
    const input = await blobInput(upstreamA, 'touch/me');
    const created = await service.createOrUpdate(SYSTEM, { ...input, checkedAt: 5 });
    assert.ok(created.ok);
    await service.touchChecked(created.value.id, 123_456);
    assert.equal((await service.findLive(upstreamA, input.relativePath))?.upstream_checked_at, 123_456);
  });
});

describe('marking for destruction', () => {
  test('an upstream\'s entries are marked at once and new entries for the same paths can be created', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const inputs = await Promise.all(Array.from({ length: 25 }, (_, i) => blobInput(upstream.id, `purge/image${i}`)));
    for (const input of inputs) assert.ok((await service.createOrUpdate(SYSTEM, input)).ok);
    const marked = await service.markUpstreamForDestruction(SYSTEM, upstream.id);
    assert.deepEqual(marked, { ok: true, value: { marked: 25 } });
    for (const input of inputs) assert.equal(await service.findLive(upstream.id, input.relativePath), null);
    for (const input of inputs) assert.ok((await service.createOrUpdate(SYSTEM, input)).ok, 'recreated while the old row waits');
    const rows = await entriesOf(upstream.id);
    assert.equal(rows.filter((r) => r.status === CACHE_ENTRY_STATUS.pending_destruction).length, 25);
    assert.equal(rows.filter((r) => r.status === CACHE_ENTRY_STATUS.default).length, 25);
  });

  test('a registry marks only the entries of the upstreams no other registry uses', async () => {
    const own = await insertUpstream(database.db, groupId);
    const shared = await insertUpstream(database.db, groupId);
    const registry = await insertRegistry(database.db, groupId, [own.id, shared.id]);
    await insertRegistry(database.db, groupId, [shared.id]);
    const ownEntry = await blobInput(own.id);
    const sharedEntry = await blobInput(shared.id);
    assert.ok((await service.createOrUpdate(SYSTEM, ownEntry)).ok);
    assert.ok((await service.createOrUpdate(SYSTEM, sharedEntry)).ok);
    assert.deepEqual(await service.markRegistryForDestruction(SYSTEM, registry), { ok: true, value: { marked: 1 } });
    assert.equal(await service.findLive(own.id, ownEntry.relativePath), null);
    assert.ok(await service.findLive(shared.id, sharedEntry.relativePath));
  });

  test('only maintainers and above may mark; those who cannot see the group get not_found', async () => {
    const upstream = await insertUpstream(database.db, groupId);
    const created = await service.createOrUpdate(SYSTEM, await blobInput(upstream.id));
    assert.ok(created.ok);
    const registry = await insertRegistry(database.db, groupId, [upstream.id]);
    const guest = userActor(1, [[groupId, ROLES.guest]], { channel: 'api' });
    const stranger = userActor(2, [], { channel: 'api' });
    const maintainer = userActor(3, [[groupId, ROLES.maintainer]], { channel: 'api' });
    assert.equal((await service.markEntryForDestruction(guest, created.value.id) as { reason?: string }).reason, 'unauthorized');
    assert.equal((await service.markUpstreamForDestruction(guest, upstream.id) as { reason?: string }).reason, 'unauthorized');
    assert.equal((await service.markRegistryForDestruction(guest, registry) as { reason?: string }).reason, 'unauthorized');
    assert.equal((await service.markEntryForDestruction(stranger, created.value.id) as { reason?: string }).reason, 'not_found');
    assert.equal((await service.markUpstreamForDestruction(stranger, upstream.id) as { reason?: string }).reason, 'not_found');
    assert.equal((await service.markRegistryForDestruction(stranger, registry) as { reason?: string }).reason, 'not_found');
    assert.equal((await service.markEntryForDestruction(maintainer, 999_999) as { reason?: string }).reason, 'not_found');
    assert.ok(await service.findLive(upstream.id, created.value.relative_path), 'nothing was marked');
    assert.ok((await service.markEntryForDestruction(maintainer, created.value.id)).ok);
    assert.equal(await service.findLive(upstream.id, created.value.relative_path), null);
  });
});
