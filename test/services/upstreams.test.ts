import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ANONYMOUS, SYSTEM } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import { CACHE_ENTRY_STATUS } from '../../src/db/schema.ts';
import type { Group } from '../../src/db/schema.ts';
import { UpstreamService } from '../../src/services/upstreams.ts';
import type { UpstreamInput } from '../../src/services/upstreams.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { auditEvents, createServices, groupWithMembers, insertCacheEntry, orderOf } from '../helpers/virtual-registries.ts';
import { uniqueName } from '../helpers/fixtures.ts';
import type { Services } from '../helpers/virtual-registries.ts';

const PASSWORD = 'pa55-Very-Secret-Upstream-Password';

let database: TestDatabase;
let services: Services;
/** Private upstreams refused, as on a default instance. */
let strict: UpstreamService;
let group: Group;
let actors: Awaited<ReturnType<typeof groupWithMembers>>['actors'];
let maintainer: Actor;

before(async () => {
  database = await createTestDatabase();
  services = createServices(database.db);
  strict = new UpstreamService({ db: database.db, cipher: services.cipher, changes: services.changes, allowPrivate: false });
  ({ group, actors } = await groupWithMembers(database.db));
  maintainer = actors.maintainer;
});

after(() => database.destroy());

const newUrl = () => `https://${uniqueName('registry')}.example.com`;

async function create(input: Partial<UpstreamInput> = {}, actor: Actor = maintainer) {
  const result = await services.upstreams.create(actor, group.id, { name: uniqueName('upstream'), url: newUrl(), ...input });
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
}

async function storedRow(id: number) {
  return database.db.selectFrom('upstreams').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

describe('create', () => {
  test('stores a normalised upstream with defaults and records an audit event', async () => {
    const eventsBefore = (await auditEvents(database.db)).length;
    const upstream = await create({ url: 'HTTPS://Mirror.Example.COM:443/v2/', description: 'the mirror' });
    assert.equal(upstream.url, 'https://mirror.example.com');
    assert.equal(upstream.group_id, group.id);
    assert.equal(upstream.cache_validity_hours, 24);
    assert.equal(upstream.has_credentials, false);
    assert.equal(upstream.username, null);
    assert.equal(upstream.token_url, null);
    assert.equal(upstream.description, 'the mirror');
    const events = (await auditEvents(database.db)).slice(eventsBefore);
    assert.deepEqual(events.map((e) => [e.action, e.target_id, e.group_id]), [['upstream.create', upstream.id, group.id]]);
  });

  test('encrypts the password: the column holds ciphertext that decrypts back, and no result shows it', async () => {
    const upstream = await create({ username: 'robot', password: PASSWORD, token_url: 'https://auth.example.com/token', cache_validity_hours: 0 });
    assert.equal(upstream.has_credentials, true);
    assert.equal(upstream.username, 'robot');
    assert.equal(upstream.cache_validity_hours, 0);
    assert.equal(upstream.token_url, 'https://auth.example.com/token');
    assert.ok(!JSON.stringify(upstream).includes(PASSWORD));
    assert.ok(!('password' in upstream) && !('password_encrypted' in upstream));
    const row = await storedRow(upstream.id);
    assert.ok(row.password_encrypted);
    assert.notEqual(row.password_encrypted, PASSWORD);
    assert.ok(!row.password_encrypted.includes(PASSWORD));
    assert.equal(services.cipher.decrypt(row.password_encrypted), PASSWORD);
    const got = await services.upstreams.get(maintainer, upstream.id);
    assert.ok(got.ok);
    assert.ok(!JSON.stringify(got).includes(PASSWORD) && !JSON.stringify(got).includes(row.password_encrypted));
    const listed = await services.upstreams.list(maintainer, group.id);
    assert.ok(!JSON.stringify(listed).includes(PASSWORD) && !JSON.stringify(listed).includes(row.password_encrypted));
  });

  const invalidInputs: [string, Partial<UpstreamInput> & Record<string, unknown>, string][] = [
    ['an empty name', { name: '  ' }, 'name'],
    ['an overlong name', { name: 'n'.repeat(256) }, 'name'],
    ['a name that is not a string', { name: 42 as unknown as string }, 'name'],
    ['an overlong description', { description: 'd'.repeat(1025) }, 'description'],
    ['no URL', { url: undefined as unknown as string }, 'url'],
    ['a malformed URL', { url: 'registry.example.com' }, 'url'],
    ['a non-http(s) URL', { url: 'ftp://registry.example.com' }, 'url'],
    ['a URL with credentials', { url: 'https://user:secret@registry.example.com' }, 'url'],
    ['a URL with a query', { url: 'https://registry.example.com/?tenant=1' }, 'url'],
    ['a URL with a fragment', { url: 'https://registry.example.com/#x' }, 'url'],
    ['an overlong URL', { url: `https://registry.example.com/${'p'.repeat(2050)}` }, 'url'],
    ['a password without a username', { password: PASSWORD }, 'username'],
    ['a username without a password', { username: 'robot' }, 'password'],
    ['an empty username', { username: '', password: PASSWORD }, 'username'],
    ['a negative cache validity', { cache_validity_hours: -1 }, 'cache_validity_hours'],
    ['a cache validity over a year', { cache_validity_hours: 8761 }, 'cache_validity_hours'],
    ['a fractional cache validity', { cache_validity_hours: 1.5 }, 'cache_validity_hours'],
    ['a token URL with a query', { token_url: 'https://auth.example.com/token?x=1' }, 'token_url'],
  ];
  for (const [what, input, field] of invalidInputs) {
    test(`refuses ${what} with a message on ${field} and writes nothing`, async () => {
      const before = await countRows(database.db);
      const result = await services.upstreams.create(maintainer, group.id, { name: uniqueName('upstream'), url: newUrl(), ...input });
      assert.equal(result.ok, false);
      if (result.ok) return;
      assert.equal(result.reason, 'invalid');
      assert.ok(result.fields?.[field]?.length, `fields: ${JSON.stringify(result.fields)}`);
      assert.ok(!JSON.stringify(result).includes(PASSWORD));
      assert.deepEqual(await countRows(database.db), before);
    });
  }

  for (const url of ['https://10.0.0.1', 'https://127.0.0.1:5000', 'https://[::1]', 'http://169.254.169.254', 'https://localhost:5000']) {
    test(`refuses the private address ${url} unless private upstreams are allowed`, async () => {
      const before = await countRows(database.db);
      const refused = await strict.create(maintainer, group.id, { name: uniqueName('upstream'), url });
      assert.equal(refused.ok, false);
      if (!refused.ok) {
        assert.equal(refused.reason, 'invalid');
        assert.match(refused.fields?.url?.[0] ?? '', /internal host/);
      }
      const tokenRefused = await strict.create(maintainer, group.id, { name: uniqueName('upstream'), url: 'https://8.8.8.8', token_url: `${url}/token` });
      assert.ok(!tokenRefused.ok && tokenRefused.fields?.token_url, JSON.stringify(tokenRefused));
      assert.deepEqual(await countRows(database.db), before);
      assert.equal((await services.upstreams.create(maintainer, group.id, { name: uniqueName('upstream'), url })).ok, true, 'allowed when private upstreams are');
    });
  }

  test('reports every invalid field at once', async () => {
    const result = await services.upstreams.create(maintainer, group.id, { name: '', url: 'ftp://x', password: PASSWORD, cache_validity_hours: -5 });
    assert.ok(!result.ok);
    assert.deepEqual(Object.keys(result.fields ?? {}).sort(), ['cache_validity_hours', 'name', 'url', 'username']);
  });

  test('the same URL with the same credentials twice in a group is a conflict; other credentials are another upstream', async () => {
    const url = newUrl();
    await create({ url });
    const before = await countRows(database.db);
    const again = await services.upstreams.create(maintainer, group.id, { name: uniqueName('upstream'), url: `${url}/v2/` });
    assert.ok(!again.ok && again.reason === 'conflict', JSON.stringify(again));
    await create({ url, username: 'robot', password: PASSWORD });
    const sameCredentials = await services.upstreams.create(maintainer, group.id, { name: uniqueName('upstream'), url, username: 'robot', password: PASSWORD });
    assert.ok(!sameCredentials.ok && sameCredentials.reason === 'conflict');
    assert.ok(!JSON.stringify(sameCredentials).includes(PASSWORD));
    assert.equal((await countRows(database.db)).upstreams, before.upstreams + 1);
    await create({ url, username: 'robot', password: `${PASSWORD}-other` });
    await create({ url, username: 'other-robot', password: PASSWORD });
    const otherGroup = await groupWithMembers(database.db);
    assert.ok((await services.upstreams.create(otherGroup.actors.maintainer, otherGroup.group.id, { name: 'x', url })).ok, 'another group may have it');
  });

  test('who may not see the group gets not_found, who may see it but not create gets forbidden', async () => {
    const before = await countRows(database.db);
    const input = { name: uniqueName('upstream'), url: newUrl() };
    const outsider = await services.upstreams.create(actors.outsider, group.id, input);
    assert.ok(!outsider.ok && outsider.reason === 'not_found');
    const unknownGroup = await services.upstreams.create(SYSTEM, 987654, input);
    assert.ok(!unknownGroup.ok && unknownGroup.reason === 'not_found');
    for (const role of ['guest', 'reporter', 'developer'] as const) {
      const refused = await services.upstreams.create(actors[role], group.id, input);
      assert.ok(!refused.ok && refused.reason === 'forbidden', role);
    }
    const anonymous = await services.upstreams.create(ANONYMOUS, group.id, input);
    assert.ok(!anonymous.ok && anonymous.reason === 'unauthorized');
    assert.deepEqual(await countRows(database.db), before);
    assert.ok((await services.upstreams.create(actors.owner, group.id, input)).ok);
  });
});

describe('get and list', () => {
  test('guests read; outsiders get not_found', async () => {
    const upstream = await create();
    const guest = await services.upstreams.get(actors.guest, upstream.id);
    assert.ok(guest.ok);
    assert.deepEqual(guest.value, upstream);
    const outsider = await services.upstreams.get(actors.outsider, upstream.id);
    assert.ok(!outsider.ok && outsider.reason === 'not_found');
    const missing = await services.upstreams.get(maintainer, 99999999);
    assert.ok(!missing.ok && missing.reason === 'not_found');
    const listed = await services.upstreams.list(actors.outsider, group.id);
    assert.ok(!listed.ok && listed.reason === 'not_found');
  });

  test('searches names case-insensitively, as plain text, and paginates with a total', async () => {
    const { group: own, actors: people } = await groupWithMembers(database.db);
    const make = (name: string) => services.upstreams.create(people.maintainer, own.id, { name, url: newUrl() });
    for (const name of ['Docker Hub', 'docker mirror', 'GHCR', 'quay_io', 'quayXio', '100% private']) assert.ok((await make(name)).ok);
    const search = async (term: string) => {
      const page = await services.upstreams.list(people.guest, own.id, { search: term });
      assert.ok(page.ok);
      return page.value.items.map((u) => u.name);
    };
    assert.deepEqual(await search('DOCKER'), ['Docker Hub', 'docker mirror']);
    assert.deepEqual(await search('quay_'), ['quay_io']);
    assert.deepEqual(await search('%'), ['100% private']);
    const first = await services.upstreams.list(people.guest, own.id, { page: 1, per_page: 4 });
    const second = await services.upstreams.list(people.guest, own.id, { page: 2, per_page: 4 });
    assert.ok(first.ok && second.ok);
    assert.equal(first.value.total, 6);
    assert.equal(second.value.total, 6);
    assert.equal(first.value.items.length, 4);
    assert.deepEqual(second.value.items.map((u) => u.name), ['quayXio', '100% private']);
    const bad = await services.upstreams.list(people.guest, own.id, { per_page: 101 });
    assert.ok(!bad.ok && bad.reason === 'invalid' && bad.fields?.per_page);
  });
});

describe('update', () => {
  test('changes fields and records before and after without the password', async () => {
    const upstream = await create({ username: 'robot', password: PASSWORD });
    const eventsBefore = (await auditEvents(database.db)).length;
    const updated = await services.upstreams.update(maintainer, upstream.id, { name: 'renamed', cache_validity_hours: 6, description: null });
    assert.ok(updated.ok);
    assert.equal(updated.value.name, 'renamed');
    assert.equal(updated.value.cache_validity_hours, 6);
    assert.equal(updated.value.has_credentials, true, 'credentials stay when the URL stays');
    assert.equal(updated.value.username, 'robot');
    const [event] = (await auditEvents(database.db)).slice(eventsBefore);
    assert.equal(event.action, 'upstream.update');
    assert.ok(event.details.includes('renamed'));
    assert.ok(!event.details.includes(PASSWORD));
  });

  test('a changed URL clears the credentials unless both are given again', async () => {
    const upstream = await create({ username: 'robot', password: PASSWORD });
    const moved = await services.upstreams.update(maintainer, upstream.id, { url: newUrl() });
    assert.ok(moved.ok);
    assert.equal(moved.value.has_credentials, false);
    assert.equal(moved.value.username, null);
    const row = await storedRow(upstream.id);
    assert.equal(row.username, null);
    assert.equal(row.password_encrypted, null);

    const withCredentials = await services.upstreams.update(maintainer, upstream.id, { url: newUrl(), username: 'new-robot', password: `${PASSWORD}2` });
    assert.ok(withCredentials.ok);
    assert.equal(withCredentials.value.username, 'new-robot');
    assert.equal(services.cipher.decrypt((await storedRow(upstream.id)).password_encrypted ?? ''), `${PASSWORD}2`);

    const sameUrl = await services.upstreams.update(maintainer, upstream.id, { url: `${withCredentials.value.url}/v2/` });
    assert.ok(sameUrl.ok && sameUrl.value.has_credentials, 'the same URL written differently is no change');

    const cleared = await services.upstreams.update(maintainer, upstream.id, { username: null, password: null });
    assert.ok(cleared.ok && !cleared.value.has_credentials);
  });

  test('giving only one of username and password is invalid and changes nothing', async () => {
    const upstream = await create({ username: 'robot', password: PASSWORD });
    const before = await countRows(database.db);
    const rowBefore = await storedRow(upstream.id);
    for (const [input, field] of [[{ username: 'other' }, 'password'], [{ password: 'other' }, 'username'], [{ url: newUrl(), password: 'x' }, 'username'], [{ username: null }, 'password']] as const) {
      const result = await services.upstreams.update(maintainer, upstream.id, input);
      assert.ok(!result.ok && result.reason === 'invalid' && result.fields?.[field], JSON.stringify(input));
    }
    const badUrl = await strict.update(maintainer, upstream.id, { url: 'https://127.0.0.1' });
    assert.ok(!badUrl.ok && badUrl.reason === 'invalid' && badUrl.fields?.url);
    assert.deepEqual(await storedRow(upstream.id), rowBefore);
    assert.deepEqual(await countRows(database.db), before);
  });

  test('an update making two upstreams identical is a conflict', async () => {
    const url = newUrl();
    await create({ url, username: 'robot', password: PASSWORD });
    const other = await create({ username: 'robot', password: PASSWORD });
    const result = await services.upstreams.update(maintainer, other.id, { url, username: 'robot', password: PASSWORD });
    assert.ok(!result.ok && result.reason === 'conflict');
    assert.ok(!JSON.stringify(result).includes(PASSWORD));
    assert.ok((await services.upstreams.update(maintainer, other.id, { url, username: 'robot', password: 'another one' })).ok);
  });

  test('guests may not update (forbidden), outsiders do not see it (not_found)', async () => {
    const upstream = await create();
    const guest = await services.upstreams.update(actors.guest, upstream.id, { name: 'x' });
    assert.ok(!guest.ok && guest.reason === 'forbidden');
    const outsider = await services.upstreams.update(actors.outsider, upstream.id, { name: 'x' });
    assert.ok(!outsider.ok && outsider.reason === 'not_found');
  });
});

describe('getTarget', () => {
  test('gives the decrypted credentials to those who may update the upstream', async () => {
    const upstream = await create({ username: 'robot', password: PASSWORD, token_url: 'https://auth.example.com/token' });
    const target = await services.upstreams.getTarget(maintainer, upstream.id);
    assert.deepEqual(target, { ok: true, value: { id: upstream.id, url: upstream.url, username: 'robot', password: PASSWORD, tokenUrl: 'https://auth.example.com/token' } });
    const guest = await services.upstreams.getTarget(actors.guest, upstream.id);
    assert.ok(!guest.ok && guest.reason === 'forbidden');
    assert.ok(!JSON.stringify(guest).includes(PASSWORD));
    const anonymous = await services.upstreams.getTarget(actors.outsider, upstream.id);
    assert.ok(!anonymous.ok && anonymous.reason === 'not_found');
  });
});

describe('destroy', () => {
  test('marks its live cache entries, removes its links closing the gaps of every registry, and deletes it', async () => {
    const shared = await create();
    const [a1, a3, b2] = [await create(), await create(), await create()];
    const registryA = await services.registries.create(maintainer, group.id, { name: uniqueName('a') });
    const registryB = await services.registries.create(maintainer, group.id, { name: uniqueName('b') });
    assert.ok(registryA.ok && registryB.ok);
    for (const id of [a1.id, shared.id, a3.id]) assert.ok((await services.links.link(maintainer, registryA.value.id, id)).ok);
    for (const id of [shared.id, b2.id]) assert.ok((await services.links.link(maintainer, registryB.value.id, id)).ok);
    const live = await insertCacheEntry(database.db, group.id, shared.id);
    const processing = await insertCacheEntry(database.db, group.id, shared.id, CACHE_ENTRY_STATUS.processing);
    const otherLive = await insertCacheEntry(database.db, group.id, a1.id);

    const destroyed = await services.upstreams.destroy(maintainer, shared.id);
    assert.ok(destroyed.ok);
    assert.equal(destroyed.value.id, shared.id);
    assert.deepEqual(await orderOf(database.db, registryA.value.id), [a1.id, a3.id]);
    assert.deepEqual(await orderOf(database.db, registryB.value.id), [b2.id]);
    assert.equal(await database.db.selectFrom('upstreams').select('id').where('id', '=', shared.id).executeTakeFirst(), undefined);
    const entries = await database.db.selectFrom('cache_entries').select(['id', 'status', 'upstream_id']).where('id', 'in', [live, processing, otherLive]).orderBy('id').execute();
    assert.deepEqual(entries.map((e) => ({ ...e })), [
      { id: live, status: CACHE_ENTRY_STATUS.pending_destruction, upstream_id: null },
      { id: processing, status: CACHE_ENTRY_STATUS.processing, upstream_id: null },
      { id: otherLive, status: CACHE_ENTRY_STATUS.default, upstream_id: a1.id },
    ]);
    const again = await services.upstreams.destroy(maintainer, shared.id);
    assert.ok(!again.ok && again.reason === 'not_found');
  });

  test('guests may not destroy', async () => {
    const upstream = await create();
    const before = await countRows(database.db);
    const result = await services.upstreams.destroy(actors.guest, upstream.id);
    assert.ok(!result.ok && result.reason === 'forbidden');
    assert.deepEqual(await countRows(database.db), before);
  });
});

test('no audit event ever holds the password or its ciphertext', async () => {
  const upstream = await create({ username: 'robot', password: PASSWORD });
  await services.upstreams.update(maintainer, upstream.id, { username: 'robot', password: `${PASSWORD}-2` });
  await services.upstreams.destroy(maintainer, upstream.id);
  const text = JSON.stringify(await auditEvents(database.db));
  assert.ok(!text.includes(PASSWORD));
  assert.ok(!text.includes('v1:'));
  assert.ok(text.includes('robot'));
});

test('database failures are persistence_error with the cause', async () => {
  const broken = database.db.withPlugin({
    transformQuery: () => {
      throw new Error('connection lost');
    },
    transformResult: async (args) => args.result,
  });
  const service = new UpstreamService({ db: broken, cipher: services.cipher, changes: services.changes, allowPrivate: true });
  const result = await service.get(SYSTEM, 1);
  assert.ok(!result.ok);
  assert.equal(result.reason, 'persistence_error');
  assert.match(result.message, /connection lost/);
  assert.ok(result.cause instanceof Error);
  const created = await service.create(SYSTEM, group.id, { name: 'x', url: newUrl() });
  assert.ok(!created.ok && created.reason === 'persistence_error');
});

describe('freshness policy', () => {
  test('cache_validity_hours is the simple form: hours become max_age, 0 pins; the policy keeps what is not changed', async () => {
    const upstream = await create({ cache_validity_hours: 6 });
    assert.deepEqual(upstream.freshness, { max_age: 21_600, stale_while_revalidate: 0, stale_if_error: null, pin: false, negative_cache: 30, rules: [] });

    const tuned = await services.upstreams.update(maintainer, upstream.id, { freshness: { max_age: 300, stale_while_revalidate: 60, rules: [{ match: '*:v*.*.*', pin: true }] } });
    assert.ok(tuned.ok, JSON.stringify(tuned));
    assert.equal(tuned.value.freshness.max_age, 300);
    assert.equal(tuned.value.cache_validity_hours, 1, 'the simple form rounds max_age up to whole hours');
    assert.deepEqual(tuned.value.freshness.rules, [{ match: '*:v*.*.*', pin: true }]);

    const pinned = await services.upstreams.update(maintainer, upstream.id, { cache_validity_hours: 0 });
    assert.ok(pinned.ok);
    assert.equal(pinned.value.freshness.pin, true);
    assert.equal(pinned.value.freshness.max_age, 300, 'pinning keeps max_age for when it is unpinned');
    assert.equal(pinned.value.freshness.stale_while_revalidate, 60);
    assert.deepEqual(pinned.value.freshness.rules, [{ match: '*:v*.*.*', pin: true }]);

    const row = await storedRow(upstream.id);
    assert.equal(row.cache_validity_hours, 0);
    const shown = await services.upstreams.get(maintainer, upstream.id);
    assert.ok(shown.ok);
    assert.deepEqual(shown.value.freshness, pinned.value.freshness, 'what was stored is what is shown');
  });

  test('an upstream stored before the policy column has the policy its cache_validity_hours implies', async () => {
    const upstream = await create({ cache_validity_hours: 2 });
    await database.db.updateTable('upstreams').set({ freshness: null }).where('id', '=', upstream.id).execute();
    const shown = await services.upstreams.get(maintainer, upstream.id);
    assert.ok(shown.ok);
    assert.equal(shown.value.freshness.max_age, 7200);
    assert.equal(shown.value.freshness.pin, false);
  });

  test('an invalid policy names the field and changes nothing', async () => {
    const upstream = await create();
    const refused = await services.upstreams.update(maintainer, upstream.id, { freshness: { rules: [{ match: 'a b', max_age: 5 }], negative_cache: -1 } });
    assert.ok(!refused.ok && refused.reason === 'invalid');
    assert.deepEqual(Object.keys(refused.fields ?? {}).sort(), ['freshness.negative_cache', 'freshness.rules.0.match']);
    const shown = await services.upstreams.get(maintainer, upstream.id);
    assert.ok(shown.ok);
    assert.deepEqual(shown.value.freshness.rules, []);
  });
});
