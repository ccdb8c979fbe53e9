import { after, before, describe, test } from 'node:test';
import { policyFromHours } from '../../src/services/freshness.ts';
import assert from 'node:assert/strict';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { CACHE_ENTRY_STATUS } from '../../src/db/schema.ts';
import type { Group } from '../../src/db/schema.ts';
import { RegistryService } from '../../src/services/registries.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { auditEvents, createServices, groupWithMembers, insertCacheEntry, LIMITS, orderOf } from '../helpers/virtual-registries.ts';
import { uniqueName } from '../helpers/fixtures.ts';
import type { Services } from '../helpers/virtual-registries.ts';

let database: TestDatabase;
let services: Services;
let group: Group;
let actors: Awaited<ReturnType<typeof groupWithMembers>>['actors'];
let maintainer: Actor;

before(async () => {
  database = await createTestDatabase();
  services = createServices(database.db);
  ({ group, actors } = await groupWithMembers(database.db));
  maintainer = actors.maintainer;
});

after(() => database.destroy());

/** A fresh group, so that tests of the per-group limit do not depend on each other. */
async function freshGroup() {
  return groupWithMembers(database.db);
}

async function createRegistry(groupId = group.id, actor = maintainer, name = uniqueName('reg')) {
  const result = await services.registries.create(actor, groupId, { name });
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
}

async function createUpstream(actor = maintainer, groupId = group.id, extra: { username?: string; password?: string } = {}) {
  const result = await services.upstreams.create(actor, groupId, { name: uniqueName('up'), url: `https://${uniqueName('r')}.example.com`, ...extra });
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
}

describe('create, get, list, update', () => {
  test('creates a registry, records the event, and reads it back', async () => {
    const eventsBefore = (await auditEvents(database.db)).length;
    const created = await services.registries.create(maintainer, group.id, { name: 'hub', description: 'Docker Hub cache' });
    assert.ok(created.ok);
    assert.equal(created.value.name, 'hub');
    assert.equal(created.value.group_id, group.id);
    assert.equal(created.value.description, 'Docker Hub cache');
    const events = (await auditEvents(database.db)).slice(eventsBefore);
    assert.deepEqual(events.map((e) => [e.action, e.target_type, e.target_id]), [['registry.create', 'registry', created.value.id]]);
    const got = await services.registries.get(actors.guest, created.value.id);
    assert.deepEqual(got, created);
    const listed = await services.registries.list(actors.guest, group.id);
    assert.ok(listed.ok && listed.value.some((r) => r.id === created.value.id));
  });

  const badNames: [string, unknown][] = [
    ['two path components', 'a/b'],
    ['upper case', 'UPPER'],
    ['a leading dash', '-x'],
    ['a trailing separator', 'x.'],
    ['a space', 'my registry'],
    ['an empty name', ''],
    ['an overlong name', 'a'.repeat(256)],
    ['no name at all', undefined],
    ['a number', 5],
  ];
  for (const [what, name] of badNames) {
    test(`refuses a name with ${what}: invalid with a message on name, nothing written`, async () => {
      const before = await countRows(database.db);
      const result = await services.registries.create(maintainer, group.id, { name: name as string });
      assert.ok(!result.ok && result.reason === 'invalid', JSON.stringify(result));
      assert.ok(result.fields?.name?.length);
      assert.deepEqual(await countRows(database.db), before);
    });
  }

  test('refuses an overlong description', async () => {
    const before = await countRows(database.db);
    const result = await services.registries.create(maintainer, group.id, { name: uniqueName('reg'), description: 'd'.repeat(1025) });
    assert.ok(!result.ok && result.reason === 'invalid' && result.fields?.description);
    assert.deepEqual(await countRows(database.db), before);
  });

  test('accepts the longest allowed name', async () => {
    const name = `a${'b'.repeat(254)}`;
    assert.ok((await services.registries.create(maintainer, group.id, { name })).ok);
  });

  test('a name is unique in its group, not across groups', async () => {
    const { group: own, actors: people } = await freshGroup();
    await createRegistry(own.id, people.maintainer, 'hub');
    const before = await countRows(database.db);
    const again = await services.registries.create(people.maintainer, own.id, { name: 'hub' });
    assert.ok(!again.ok && again.reason === 'conflict');
    assert.deepEqual(await countRows(database.db), before);
    const { group: other, actors: others } = await freshGroup();
    assert.ok((await services.registries.create(others.maintainer, other.id, { name: 'hub' })).ok);
  });

  test(`refuses the registry after the ${LIMITS.registriesPerGroup}th of a group with limit_reached`, async () => {
    const { group: own, actors: people } = await freshGroup();
    for (let i = 0; i < LIMITS.registriesPerGroup; i++) await createRegistry(own.id, people.maintainer);
    const before = await countRows(database.db);
    const sixth = await services.registries.create(people.maintainer, own.id, { name: uniqueName('reg') });
    assert.ok(!sixth.ok && sixth.reason === 'limit_reached', JSON.stringify(sixth));
    assert.deepEqual(await countRows(database.db), before);
  });

  test('concurrent creations do not pass the limit', async () => {
    const { group: own, actors: people } = await freshGroup();
    const handles = Array.from({ length: 8 }, () => database.another({ poolSize: 1 }));
    const results = await Promise.all(handles.map((handle) => {
      const registries = new RegistryService({ db: handle.db, cipher: services.cipher, changes: handle.changes, limits: LIMITS });
      return registries.create(people.maintainer, own.id, { name: uniqueName('reg') });
    }));
    await Promise.all(handles.map((h) => h.close()));
    assert.equal(results.filter((r) => r.ok).length, LIMITS.registriesPerGroup);
    assert.ok(results.every((r) => r.ok || r.reason === 'limit_reached'), JSON.stringify(results.filter((r) => !r.ok)));
    const listed = await services.registries.list(people.guest, own.id);
    assert.ok(listed.ok && listed.value.length === LIMITS.registriesPerGroup);
  });

  test('update renames and describes; a taken or bad name is refused without a change', async () => {
    const { group: own, actors: people } = await freshGroup();
    const first = await createRegistry(own.id, people.maintainer, 'first');
    await createRegistry(own.id, people.maintainer, 'second');
    const renamed = await services.registries.update(people.maintainer, first.id, { name: 'renamed', description: 'now described' });
    assert.ok(renamed.ok);
    assert.equal(renamed.value.name, 'renamed');
    assert.equal(renamed.value.description, 'now described');
    const before = await countRows(database.db);
    const taken = await services.registries.update(people.maintainer, first.id, { name: 'second' });
    assert.ok(!taken.ok && taken.reason === 'conflict', JSON.stringify(taken));
    const bad = await services.registries.update(people.maintainer, first.id, { name: 'Bad/Name' });
    assert.ok(!bad.ok && bad.reason === 'invalid' && bad.fields?.name);
    assert.deepEqual(await countRows(database.db), before);
    const got = await services.registries.get(people.guest, first.id);
    assert.ok(got.ok && got.value.name === 'renamed');
    const event = (await auditEvents(database.db)).find((e) => e.action === 'registry.update' && e.target_id === first.id);
    assert.ok(event && event.details.includes('"first"') && event.details.includes('"renamed"'));
  });

  test('policy: outsiders get not_found, guests read but may not change, anonymous must authenticate', async () => {
    const registry = await createRegistry();
    const before = await countRows(database.db);
    const outsider = [
      await services.registries.get(actors.outsider, registry.id),
      await services.registries.list(actors.outsider, group.id),
      await services.registries.create(actors.outsider, group.id, { name: uniqueName('reg') }),
      await services.registries.update(actors.outsider, registry.id, { name: uniqueName('reg') }),
      await services.registries.destroy(actors.outsider, registry.id),
    ];
    for (const result of outsider) assert.ok(!result.ok && result.reason === 'not_found', JSON.stringify(result));
    const guest = [
      await services.registries.create(actors.developer, group.id, { name: uniqueName('reg') }),
      await services.registries.update(actors.guest, registry.id, { name: uniqueName('reg') }),
      await services.registries.destroy(actors.developer, registry.id),
    ];
    for (const result of guest) assert.ok(!result.ok && result.reason === 'forbidden', JSON.stringify(result));
    const anonymous = await services.registries.get(ANONYMOUS, registry.id);
    assert.ok(!anonymous.ok && anonymous.reason === 'unauthorized');
    const missing = await services.registries.get(maintainer, 987654321);
    assert.ok(!missing.ok && missing.reason === 'not_found');
    assert.deepEqual(await countRows(database.db), before);
  });
});

describe('destroy', () => {
  test('deletes the registry and its exclusive upstreams, keeps shared ones, and marks the exclusive ones\' entries', async () => {
    const { group: own, actors: people } = await freshGroup();
    const doomed = await createRegistry(own.id, people.maintainer);
    const survivor = await createRegistry(own.id, people.maintainer);
    const exclusive = await createUpstream(people.maintainer, own.id);
    const shared = await createUpstream(people.maintainer, own.id);
    const unlinked = await createUpstream(people.maintainer, own.id);
    const survivorOnly = await createUpstream(people.maintainer, own.id);
    for (const id of [exclusive.id, shared.id]) assert.ok((await services.links.link(people.maintainer, doomed.id, id)).ok);
    for (const id of [survivorOnly.id, shared.id]) assert.ok((await services.links.link(people.maintainer, survivor.id, id)).ok);
    const exclusiveLive = [await insertCacheEntry(database.db, own.id, exclusive.id), await insertCacheEntry(database.db, own.id, exclusive.id)];
    const exclusiveErrored = await insertCacheEntry(database.db, own.id, exclusive.id, CACHE_ENTRY_STATUS.error);
    const sharedLive = await insertCacheEntry(database.db, own.id, shared.id);

    const result = await services.registries.destroy(people.maintainer, doomed.id);
    assert.ok(result.ok, JSON.stringify(result));
    assert.deepEqual(result.value.destroyed_upstream_ids, [exclusive.id]);
    assert.equal(result.value.marked_entries, 2);

    const remaining = await database.db.selectFrom('upstreams').select('id').where('group_id', '=', own.id).orderBy('id').execute();
    assert.deepEqual(remaining.map((r) => r.id), [shared.id, unlinked.id, survivorOnly.id]);
    assert.equal(await database.db.selectFrom('registries').select('id').where('id', '=', doomed.id).executeTakeFirst(), undefined);
    assert.deepEqual(await orderOf(database.db, survivor.id), [survivorOnly.id, shared.id]);

    const entries = await database.db.selectFrom('cache_entries').select(['id', 'status', 'upstream_id'])
      .where('id', 'in', [...exclusiveLive, exclusiveErrored, sharedLive]).orderBy('id').execute();
    assert.deepEqual(entries.map((e) => ({ ...e })), [
      { id: exclusiveLive[0], status: CACHE_ENTRY_STATUS.pending_destruction, upstream_id: null },
      { id: exclusiveLive[1], status: CACHE_ENTRY_STATUS.pending_destruction, upstream_id: null },
      { id: exclusiveErrored, status: CACHE_ENTRY_STATUS.error, upstream_id: null },
      { id: sharedLive, status: CACHE_ENTRY_STATUS.default, upstream_id: shared.id },
    ]);
    const events = (await auditEvents(database.db)).filter((e) => e.group_id === own.id).map((e) => [e.action, e.target_id]);
    assert.deepEqual(events.slice(-2), [['upstream.destroy', exclusive.id], ['registry.destroy', doomed.id]]);

    const again = await services.registries.destroy(people.maintainer, doomed.id);
    assert.ok(!again.ok && again.reason === 'not_found');
  });

  test('two registries sharing an upstream: the second destroy takes it', async () => {
    const { group: own, actors: people } = await freshGroup();
    const first = await createRegistry(own.id, people.maintainer);
    const second = await createRegistry(own.id, people.maintainer);
    const shared = await createUpstream(people.maintainer, own.id);
    for (const registry of [first, second]) assert.ok((await services.links.link(people.maintainer, registry.id, shared.id)).ok);
    const one = await services.registries.destroy(people.maintainer, first.id);
    assert.ok(one.ok && one.value.destroyed_upstream_ids.length === 0);
    const two = await services.registries.destroy(people.maintainer, second.id);
    assert.ok(two.ok);
    assert.deepEqual(two.value.destroyed_upstream_ids, [shared.id]);
  });
});

describe('findForPull', () => {
  test('returns the group, the registry and its upstreams by position with decrypted credentials', async () => {
    const { group: own, actors: people } = await freshGroup();
    const registry = await createRegistry(own.id, people.maintainer, 'hub');
    const second = await createUpstream(people.maintainer, own.id, { username: 'robot', password: 'pull-secret' });
    const first = await createUpstream(people.maintainer, own.id);
    for (const id of [second.id, first.id]) assert.ok((await services.links.link(people.maintainer, registry.id, id)).ok);
    const [firstLink] = (await services.links.listForRegistry(people.maintainer, registry.id) as { ok: true; value: { id: number }[] }).value;
    assert.ok((await services.links.move(people.maintainer, firstLink.id, 2)).ok);

    const found = await services.registries.findForPull(own.path, 'hub');
    assert.deepEqual(found, {
      group: { id: own.id, path: own.path },
      registry: { id: registry.id, name: 'hub', anonymousPull: false, anonymousNetworks: [] },
      upstreams: [
        { id: first.id, name: first.name, url: first.url, username: null, password: null, tokenUrl: null, cacheValidityHours: 24, freshness: policyFromHours(24), position: 1 },
        { id: second.id, name: second.name, url: second.url, username: 'robot', password: 'pull-secret', tokenUrl: null, cacheValidityHours: 24, freshness: policyFromHours(24), position: 2 },
      ],
    });
    assert.equal(await services.registries.findForPull(own.path, 'nope'), null);
    assert.equal(await services.registries.findForPull('no-such-group', 'hub'), null);
  });

  test('a registry without upstreams has an empty list', async () => {
    const { group: own, actors: people } = await freshGroup();
    await createRegistry(own.id, people.maintainer, 'empty');
    const found = await services.registries.findForPull(own.path, 'empty');
    assert.ok(found);
    assert.deepEqual(found.upstreams, []);
  });

  test('asks the database once per lookup, remembers it, and forgets it when the services change something', async () => {
    const { group: own, actors: people } = await freshGroup();
    let queries = 0;
    const counted = database.db.withPlugin({
      transformQuery: (args) => {
        queries += 1;
        return args.node;
      },
      transformResult: async (args) => args.result,
    });
    const wired = createServices(counted, { cipher: services.cipher, pullCacheTtlMs: 60_000 });
    const registry = await createRegistry(own.id, people.maintainer, 'cached');
    const upstream = await createUpstream(people.maintainer, own.id);

    queries = 0;
    const before = await wired.registries.findForPull(own.path, 'cached');
    assert.ok(before && before.upstreams.length === 0);
    assert.ok(queries <= 2, `${queries} queries`);
    queries = 0;
    assert.equal(await wired.registries.findForPull(own.path, 'cached'), before);
    assert.equal(queries, 0, 'remembered');

    // A change made elsewhere (another replica) is seen once the memory expires; a change made through
    // these services is seen at once.
    assert.ok((await wired.links.link(people.maintainer, registry.id, upstream.id)).ok);
    const linked = await wired.registries.findForPull(own.path, 'cached');
    assert.deepEqual(linked?.upstreams.map((u) => u.id), [upstream.id]);
    assert.ok((await wired.upstreams.update(people.maintainer, upstream.id, { cache_validity_hours: 0 })).ok);
    assert.equal((await wired.registries.findForPull(own.path, 'cached'))?.upstreams[0].cacheValidityHours, 0);
    assert.ok((await wired.registries.update(people.maintainer, registry.id, { name: 'renamed' })).ok);
    assert.equal(await wired.registries.findForPull(own.path, 'cached'), null);
    assert.ok(await wired.registries.findForPull(own.path, 'renamed'));
  });
});
