// The database itself refuses what must never break (DESIGN §1), whatever the code above it does.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { createTestDatabase, dialectUnderTest } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertUpstream } from '../helpers/fixtures.ts';

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(() => database.destroy());

const now = Date.now();

async function registry(groupId: number, name: string) {
  return database.db.insertInto('registries').values({ group_id: groupId, name, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow();
}

test(`migrations create the whole data model (${dialectUnderTest})`, async () => {
  // On PostgreSQL the tables of this file's schema only (Kysely's introspection reads every schema).
  const listed = dialectUnderTest === 'postgres'
    ? sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema()`
    : sql<{ name: string }>`select name from sqlite_schema where type = 'table'`;
  const tables = (await listed.execute(database.db)).rows.map((t) => t.name);
  for (const table of ['users', 'groups', 'memberships', 'access_tokens', 'registries', 'upstreams', 'registry_upstreams', 'cache_entries', 'cleanup_policies', 'audit_events']) {
    assert.ok(tables.includes(table), `missing table ${table}`);
  }
  await database.migrate(); // running again is a no-op
});

test('registry names are unique within a group, not across groups', async () => {
  const a = await insertGroup(database.db);
  const b = await insertGroup(database.db);
  await registry(a.id, 'hub');
  await registry(b.id, 'hub');
  await assert.rejects(registry(a.id, 'hub'), /unique/i);
});

test('a registry links an upstream once, each position once, positions 1 to 20', async () => {
  const group = await insertGroup(database.db);
  const reg = await registry(group.id, 'links');
  const u1 = await insertUpstream(database.db, group.id);
  const u2 = await insertUpstream(database.db, group.id);
  const link = (upstreamId: number, position: number) =>
    database.db.insertInto('registry_upstreams').values({ group_id: group.id, registry_id: reg.id, upstream_id: upstreamId, position, created_at: now, updated_at: now }).execute();
  await link(u1.id, 1);
  await assert.rejects(link(u1.id, 2), /unique/i);
  await assert.rejects(link(u2.id, 1), /unique/i);
  await assert.rejects(link(u2.id, 0), /check/i);
  await assert.rejects(link(u2.id, 21), /check/i);
  await link(u2.id, 2);
});

test('upstream credentials are both set or both empty; cache validity is never negative', async () => {
  const group = await insertGroup(database.db);
  const values = { group_id: group.id, name: 'creds', url: 'https://r.example.com', cache_validity_hours: 1, created_at: now, updated_at: now };
  await assert.rejects(database.db.insertInto('upstreams').values({ ...values, username: 'alice' }).execute(), /check/i);
  await assert.rejects(database.db.insertInto('upstreams').values({ ...values, password_encrypted: 'v1:abc' }).execute(), /check/i);
  await assert.rejects(database.db.insertInto('upstreams').values({ ...values, username: '', password_encrypted: 'v1:abc' }).execute(), /check/i);
  await assert.rejects(database.db.insertInto('upstreams').values({ ...values, cache_validity_hours: -1 }).execute(), /check/i);
  await database.db.insertInto('upstreams').values({ ...values, username: 'alice', password_encrypted: 'v1:abc' }).execute();
  await database.db.insertInto('upstreams').values({ ...values, cache_validity_hours: 0 }).execute();
});

test('one live cache entry per (upstream, path); entries waiting for destruction do not count', async () => {
  const group = await insertGroup(database.db);
  const upstream = await insertUpstream(database.db, group.id);
  const entry = (status: 0 | 1 | 2 | 3 = 0) => database.db.insertInto('cache_entries').values({
    group_id: group.id, upstream_id: upstream.id, relative_path: '/library/alpine/manifests/3.20', digest: `sha256:${'a'.repeat(64)}`,
    size: 10, content_type: 'application/vnd.oci.image.index.v1+json', upstream_etag: null, upstream_checked_at: now, downloaded_at: null,
    status, created_at: now, updated_at: now,
  }).execute();
  await entry();
  await assert.rejects(entry(), /unique/i);
  await database.db.updateTable('cache_entries').set({ status: 2 }).where('upstream_id', '=', upstream.id).execute();
  await entry();
  await entry(2);
  const live = await database.db.selectFrom('cache_entries').select(sql<number>`count(*)`.as('n')).where('upstream_id', '=', upstream.id).where('status', '=', 0).executeTakeFirstOrThrow();
  assert.equal(Number(live.n), 1);
});
