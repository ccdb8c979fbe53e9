// The hourly traffic of registries (issue 20) on both databases: answers are merged in memory and written
// as upserts per (registry, hour); bytes count what a body passed on; the 24-hour window has every hour;
// only those who may read the registry see it; old hours are pruned.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { RegistryTraffic, RETENTION_HOURS } from '../../src/services/registry-traffic.ts';
import { createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup } from '../helpers/fixtures.ts';
import { apiActor } from '../http/api/app-fixture.ts';
import { SYSTEM } from '../../src/auth/policy.ts';

const HOUR = 60 * 60 * 1000;
let database: TestDatabase;
let groupId: number;
let registryId: number;
let clock = Math.floor(Date.now() / HOUR) * HOUR + 10 * 60 * 1000;

before(async () => {
  database = await createTestDatabase();
  groupId = (await insertGroup(database.db)).id;
  const now = Date.now();
  registryId = (await database.db.insertInto('registries').values({ group_id: groupId, name: 'hub', description: null, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow()).id;
});
after(() => database.destroy());

const traffic = () => new RegistryTraffic({ db: database.db, flushIntervalMs: 60_000, now: () => clock });

/** Reads a body to its end, as the HTTP layer does after the pull answered. */
async function drain(body: Readable): Promise<void> {
  for await (const _chunk of body) { /* the client reads it */ }
}

test('hits and misses are merged in memory and written as one upsert per flush; bytes count once the body closes', async () => {
  const counts = traffic();
  const hitBody = Readable.from([Buffer.alloc(1000)]);
  const missBody = Readable.from([Buffer.alloc(500)]);
  const abandoned = Readable.from([Buffer.alloc(4000)]);
  counts.record(registryId, { cache: 'hit', size: 1000, range: null, body: hitBody });
  counts.record(registryId, { cache: 'revalidated', size: 10, range: null, body: null });
  counts.record(registryId, { cache: 'miss', size: 500, range: null, body: missBody });
  counts.record(registryId, { cache: 'upstream_head', size: 7, range: null, body: null });
  counts.record(registryId, { cache: 'miss', size: 4000, range: null, body: abandoned });
  await Promise.all([drain(hitBody), drain(missBody)]);
  abandoned.destroy(); // the client went away before reading: no bytes
  await new Promise((resolve) => setImmediate(resolve));
  const first = await counts.flush();
  assert.ok(first.writes <= 2, `one upsert (and at most one prune): ${first.writes}`);
  // A second batch in the same hour adds to the row.
  counts.record(registryId, { cache: 'stale', size: 3, range: null, body: null });
  await counts.flush();
  const rows = await database.db.selectFrom('registry_traffic').selectAll().where('registry_id', '=', registryId).execute();
  assert.equal(rows.length, 1);
  assert.deepEqual({ hits: Number(rows[0].hits), misses: Number(rows[0].misses), fromCache: Number(rows[0].bytes_from_cache), fromUpstream: Number(rows[0].bytes_from_upstream) },
    { hits: 3, misses: 3, fromCache: 1000, fromUpstream: 500 });
  assert.equal(Number(rows[0].hour) % HOUR, 0);
});

test('statistics: every hour of the window, totals and the hit ratio; a later hour is a new row', async () => {
  const counts = traffic();
  clock += HOUR;
  counts.record(registryId, { cache: 'hit', size: 1, range: null, body: null });
  await counts.flush();
  const stats = await counts.statistics(SYSTEM, registryId, 24);
  assert.ok(stats.ok, stats.ok ? '' : stats.message);
  assert.equal(stats.value.hours.length, 24);
  assert.deepEqual(stats.value.hours.slice(-2).map((hour) => hour.hits), [3, 1]);
  assert.equal(stats.value.hits, 4);
  assert.equal(stats.value.misses, 3);
  assert.equal(stats.value.hit_ratio, 4 / 7);
  assert.equal(stats.value.bytes_from_cache, 1000);
  const lastHour = await counts.statistics(SYSTEM, registryId, 1);
  assert.ok(lastHour.ok);
  assert.equal(lastHour.value.hits, 1);
});

test('only those who may read the registry see its statistics', async () => {
  const counts = traffic();
  const outsider = await counts.statistics(apiActor({ id: 999_999, username: 'nobody' }), registryId, 24);
  assert.equal(outsider.ok ? 'ok' : outsider.reason, 'not_found');
  const guest = await counts.statistics(apiActor({ id: 999_998, username: 'guest' }, [[groupId, 10]]), registryId, 24);
  assert.ok(guest.ok);
});

test('counts of a deleted registry are dropped, not an error; hours older than the retention are pruned', async () => {
  const counts = traffic();
  const now = Date.now();
  const doomed = (await database.db.insertInto('registries').values({ group_id: groupId, name: 'doomed', description: null, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow()).id;
  counts.record(doomed, { cache: 'hit', size: 1, range: null, body: null });
  await database.db.deleteFrom('registries').where('id', '=', doomed).execute();
  await counts.flush();
  const old = Math.floor(clock / HOUR) * HOUR - (RETENTION_HOURS + 2) * HOUR;
  await database.db.insertInto('registry_traffic').values({ registry_id: registryId, hour: old, hits: 1, misses: 0, bytes_from_cache: 0, bytes_from_upstream: 0 }).execute();
  clock += HOUR; // a new hour: the next flush prunes
  await counts.flush();
  const left = await database.db.selectFrom('registry_traffic').select('hour').where('registry_id', '=', registryId).execute();
  assert.ok(left.every((row) => Number(row.hour) > old), 'the old hour is gone');
  assert.equal(left.length, 2);
});
