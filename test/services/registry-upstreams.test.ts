import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ANONYMOUS } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import type { Group } from '../../src/db/schema.ts';
import type { RegistryUpstreamView } from '../../src/services/registry-upstreams.ts';
import { countRows, createTestDatabase, dialectUnderTest } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { auditEvents, createServices, groupWithMembers, LIMITS, orderOf } from '../helpers/virtual-registries.ts';
import { uniqueName } from '../helpers/fixtures.ts';
import type { Services } from '../helpers/virtual-registries.ts';

let database: TestDatabase;
let services: Services;

before(async () => {
  database = await createTestDatabase();
  services = createServices(database.db);
});

after(() => database.destroy());

interface Setup {
  group: Group;
  actors: Awaited<ReturnType<typeof groupWithMembers>>['actors'];
  maintainer: Actor;
  registryId: number;
  /** Upstream ids, linked in this order when `linked` was asked for. */
  upstreamIds: number[];
}

/** A group of its own with one registry and `count` upstreams, the first `linked` of them linked in order. */
async function setup(count: number, linked = count): Promise<Setup> {
  const { group, actors } = await groupWithMembers(database.db);
  const maintainer = actors.maintainer;
  const registry = await services.registries.create(maintainer, group.id, { name: uniqueName('reg') });
  assert.ok(registry.ok);
  const upstreamIds: number[] = [];
  for (let i = 0; i < count; i++) {
    const upstream = await services.upstreams.create(maintainer, group.id, { name: `upstream ${i + 1}`, url: `https://${uniqueName('r')}.example.com` });
    assert.ok(upstream.ok);
    upstreamIds.push(upstream.value.id);
  }
  for (const id of upstreamIds.slice(0, linked)) assert.ok((await services.links.link(maintainer, registry.value.id, id)).ok);
  return { group, actors, maintainer, registryId: registry.value.id, upstreamIds };
}

async function links(s: Setup): Promise<RegistryUpstreamView[]> {
  const listed = await services.links.listForRegistry(s.maintainer, s.registryId);
  assert.ok(listed.ok);
  return listed.value;
}

async function linkOf(s: Setup, upstreamId: number): Promise<number> {
  const found = (await links(s)).find((l) => l.upstream_id === upstreamId);
  assert.ok(found, `upstream ${upstreamId} is linked`);
  return found.id;
}

describe('link', () => {
  test('appends at the next position and lists by position with the upstreams', async () => {
    const s = await setup(3, 0);
    for (const [index, id] of s.upstreamIds.entries()) {
      const linked = await services.links.link(s.maintainer, s.registryId, id);
      assert.ok(linked.ok, JSON.stringify(linked));
      assert.equal(linked.value.position, index + 1);
      assert.equal(linked.value.upstream.id, id);
      assert.equal(linked.value.registry_id, s.registryId);
    }
    const listed = await links(s);
    assert.deepEqual(listed.map((l) => [l.position, l.upstream_id, l.upstream.name]), [[1, s.upstreamIds[0], 'upstream 1'], [2, s.upstreamIds[1], 'upstream 2'], [3, s.upstreamIds[2], 'upstream 3']]);
    const guest = await services.links.listForRegistry(s.actors.guest, s.registryId);
    assert.deepEqual(guest, { ok: true, value: listed });
    const events = (await auditEvents(database.db)).filter((e) => e.group_id === s.group.id && e.action === 'registry_upstream.create');
    assert.equal(events.length, 3);
  });

  test('a duplicate link is a conflict and writes nothing', async () => {
    const s = await setup(2);
    const before = await countRows(database.db);
    const again = await services.links.link(s.maintainer, s.registryId, s.upstreamIds[0]);
    assert.ok(!again.ok && again.reason === 'conflict', JSON.stringify(again));
    assert.deepEqual(await countRows(database.db), before);
    assert.deepEqual(await orderOf(database.db, s.registryId), s.upstreamIds);
  });

  test(`the ${LIMITS.upstreamsPerRegistry + 1}th upstream of a registry is limit_reached and writes nothing`, async () => {
    const s = await setup(LIMITS.upstreamsPerRegistry + 1, LIMITS.upstreamsPerRegistry);
    const before = await countRows(database.db);
    const sixth = await services.links.link(s.maintainer, s.registryId, s.upstreamIds[LIMITS.upstreamsPerRegistry]);
    assert.ok(!sixth.ok && sixth.reason === 'limit_reached', JSON.stringify(sixth));
    const created = await services.links.createUpstreamForRegistry(s.maintainer, s.registryId, { name: 'one too many', url: 'https://too-many.example.com' });
    assert.ok(!created.ok && created.reason === 'limit_reached', JSON.stringify(created));
    assert.deepEqual(await countRows(database.db), before);
  });

  test('an upstream of another group cannot be linked; an unknown one is not_found', async () => {
    const s = await setup(0);
    const other = await setup(1);
    const before = await countRows(database.db);
    // An admin sees both groups: the upstream exists but belongs elsewhere.
    const admin: Actor = { ...s.maintainer, kind: 'user', admin: true } as Actor;
    const foreign = await services.links.link(admin, s.registryId, other.upstreamIds[0]);
    assert.ok(!foreign.ok && foreign.reason === 'invalid' && foreign.fields?.upstream_id, JSON.stringify(foreign));
    // A maintainer of this group only does not learn that it exists.
    const hidden = await services.links.link(s.maintainer, s.registryId, other.upstreamIds[0]);
    assert.ok(!hidden.ok && hidden.reason === 'not_found');
    const unknown = await services.links.link(s.maintainer, s.registryId, 987654321);
    assert.ok(!unknown.ok && unknown.reason === 'not_found');
    assert.deepEqual(await countRows(database.db), before);
  });

  test('policy: guests may not link (forbidden), outsiders get not_found, anonymous must authenticate', async () => {
    const s = await setup(2, 1);
    const before = await countRows(database.db);
    const guest = await services.links.link(s.actors.developer, s.registryId, s.upstreamIds[1]);
    assert.ok(!guest.ok && guest.reason === 'forbidden');
    const outsider = await services.links.link(s.actors.outsider, s.registryId, s.upstreamIds[1]);
    assert.ok(!outsider.ok && outsider.reason === 'not_found');
    const listed = await services.links.listForRegistry(s.actors.outsider, s.registryId);
    assert.ok(!listed.ok && listed.reason === 'not_found');
    const anonymous = await services.links.link(ANONYMOUS, s.registryId, s.upstreamIds[1]);
    assert.ok(!anonymous.ok && anonymous.reason === 'unauthorized');
    const [first] = await links(s);
    const move = await services.links.move(s.actors.guest, first.id, 1);
    assert.ok(!move.ok && move.reason === 'forbidden');
    const unlink = await services.links.unlink(s.actors.outsider, first.id);
    assert.ok(!unlink.ok && unlink.reason === 'not_found');
    assert.deepEqual(await countRows(database.db), before);
  });
});

describe('createUpstreamForRegistry', () => {
  test('creates the upstream and links it last in one go', async () => {
    const s = await setup(2);
    const created = await services.links.createUpstreamForRegistry(s.maintainer, s.registryId, {
      name: 'private', url: 'https://private.example.com/v2/', username: 'robot', password: 'link-secret',
    });
    assert.ok(created.ok, JSON.stringify(created));
    assert.equal(created.value.position, 3);
    assert.equal(created.value.upstream.url, 'https://private.example.com');
    assert.equal(created.value.upstream.has_credentials, true);
    assert.ok(!JSON.stringify(created).includes('link-secret'));
    assert.deepEqual(await orderOf(database.db, s.registryId), [...s.upstreamIds, created.value.upstream_id]);
  });

  test('invalid input, a duplicate upstream or a forbidden caller writes nothing', async () => {
    const s = await setup(1);
    const [existing] = await links(s);
    const before = await countRows(database.db);
    const invalid = await services.links.createUpstreamForRegistry(s.maintainer, s.registryId, { name: '', url: 'https://u:p@x.example.com', password: 'link-secret' });
    assert.ok(!invalid.ok && invalid.reason === 'invalid');
    assert.deepEqual(Object.keys(invalid.fields ?? {}).sort(), ['name', 'url', 'username']);
    assert.ok(!JSON.stringify(invalid).includes('link-secret'));
    const duplicate = await services.links.createUpstreamForRegistry(s.maintainer, s.registryId, { name: 'again', url: existing.upstream.url });
    assert.ok(!duplicate.ok && duplicate.reason === 'conflict');
    const guest = await services.links.createUpstreamForRegistry(s.actors.guest, s.registryId, { name: 'x', url: 'https://x.example.com' });
    assert.ok(!guest.ok && guest.reason === 'forbidden');
    assert.deepEqual(await countRows(database.db), before);
  });
});

describe('move', () => {
  const cases: [string, number, number, (ids: number[]) => number[]][] = [
    ['first to last', 0, 5, ([a, b, c, d, e]) => [b, c, d, e, a]],
    ['last to first', 4, 1, ([a, b, c, d, e]) => [e, a, b, c, d]],
    ['middle up', 3, 2, ([a, b, c, d, e]) => [a, d, b, c, e]],
    ['middle down', 1, 4, ([a, b, c, d, e]) => [a, c, d, b, e]],
    ['to where it is', 2, 3, (ids) => ids],
  ];
  for (const [what, fromIndex, position, expected] of cases) {
    test(`moves ${what}, shifting the others, positions staying 1..N`, async () => {
      const s = await setup(5);
      const moved = await services.links.move(s.maintainer, await linkOf(s, s.upstreamIds[fromIndex]), position);
      assert.ok(moved.ok, JSON.stringify(moved));
      assert.equal(moved.value.position, position);
      assert.equal(moved.value.upstream_id, s.upstreamIds[fromIndex]);
      assert.deepEqual(await orderOf(database.db, s.registryId), expected(s.upstreamIds));
    });
  }

  test('link ids survive moves', async () => {
    const s = await setup(3);
    const before = await links(s);
    assert.ok((await services.links.move(s.maintainer, before[0].id, 3)).ok);
    const after = await links(s);
    assert.deepEqual(after.map((l) => l.id), [before[1].id, before[2].id, before[0].id]);
    assert.deepEqual(after.map((l) => l.created_at), [before[1].created_at, before[2].created_at, before[0].created_at]);
  });

  for (const position of [0, -1, 4, 1.5, Number.NaN]) {
    test(`refuses position ${position} of 3 with invalid and changes nothing`, async () => {
      const s = await setup(3);
      const before = await countRows(database.db);
      const result = await services.links.move(s.maintainer, await linkOf(s, s.upstreamIds[0]), position);
      assert.ok(!result.ok && result.reason === 'invalid' && result.fields?.position, JSON.stringify(result));
      assert.deepEqual(await orderOf(database.db, s.registryId), s.upstreamIds);
      assert.deepEqual(await countRows(database.db), before);
    });
  }

  test('records the move', async () => {
    const s = await setup(2);
    const linkId = await linkOf(s, s.upstreamIds[1]);
    assert.ok((await services.links.move(s.maintainer, linkId, 1)).ok);
    const [event] = (await auditEvents(database.db)).filter((e) => e.action === 'registry_upstream.move' && e.target_id === linkId);
    assert.deepEqual(JSON.parse(event.details), { registry_id: s.registryId, upstream_id: s.upstreamIds[1], before: { position: 2 }, after: { position: 1 } });
  });

  test('concurrent moves through separate connections keep positions 1..N unique', async () => {
    const s = await setup(LIMITS.upstreamsPerRegistry);
    const linkIds = (await links(s)).map((l) => l.id);
    const handles = Array.from({ length: 20 }, () => database.another({ poolSize: 1 }));
    try {
      const results = await Promise.all(handles.map((handle) => {
        const own = createServices(handle.db, { cipher: services.cipher });
        const linkId = linkIds[Math.floor(Math.random() * linkIds.length)];
        return own.links.move(s.maintainer, linkId, 1 + Math.floor(Math.random() * linkIds.length));
      }));
      assert.deepEqual(results.filter((r) => !r.ok), [], `every move succeeds on ${dialectUnderTest}`);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
    const order = await orderOf(database.db, s.registryId);
    assert.deepEqual([...order].sort((a, b) => a - b), [...s.upstreamIds].sort((a, b) => a - b));
  });
});

describe('unlink', () => {
  test('removes the link, closes the gap, keeps the upstream', async () => {
    const s = await setup(4);
    const [a, b, c, d] = s.upstreamIds;
    const removed = await services.links.unlink(s.maintainer, await linkOf(s, b));
    assert.ok(removed.ok, JSON.stringify(removed));
    assert.equal(removed.value.upstream_id, b);
    assert.deepEqual(await orderOf(database.db, s.registryId), [a, c, d]);
    assert.ok((await services.upstreams.get(s.maintainer, b)).ok, 'the upstream stays');
    assert.ok((await services.links.unlink(s.maintainer, await linkOf(s, a))).ok);
    assert.deepEqual(await orderOf(database.db, s.registryId), [c, d]);
    assert.ok((await services.links.unlink(s.maintainer, await linkOf(s, d))).ok);
    assert.deepEqual(await orderOf(database.db, s.registryId), [c]);
    const again = await services.links.unlink(s.maintainer, removed.value.id);
    assert.ok(!again.ok && again.reason === 'not_found');
    assert.ok((await services.links.link(s.maintainer, s.registryId, b)).ok, 'it can be linked again');
    assert.deepEqual(await orderOf(database.db, s.registryId), [c, b]);
  });

  test('appends, moves and removals in a row keep positions contiguous', async () => {
    const s = await setup(5, 3);
    const [a, b, c, d, e] = s.upstreamIds;
    assert.ok((await services.links.move(s.maintainer, await linkOf(s, c), 1)).ok);
    assert.ok((await services.links.link(s.maintainer, s.registryId, d)).ok);
    assert.ok((await services.links.unlink(s.maintainer, await linkOf(s, a))).ok);
    assert.ok((await services.links.link(s.maintainer, s.registryId, e)).ok);
    assert.ok((await services.links.move(s.maintainer, await linkOf(s, e), 2)).ok);
    assert.deepEqual(await orderOf(database.db, s.registryId), [c, e, b, d]);
  });

  test('destroying an upstream shared by two registries closes the gap in both', async () => {
    const s = await setup(4);
    const second = await services.registries.create(s.maintainer, s.group.id, { name: uniqueName('reg') });
    assert.ok(second.ok);
    const [a, b, c, d] = s.upstreamIds;
    for (const id of [b, d, a]) assert.ok((await services.links.link(s.maintainer, second.value.id, id)).ok);
    assert.ok((await services.upstreams.destroy(s.maintainer, b)).ok);
    assert.deepEqual(await orderOf(database.db, s.registryId), [a, c, d]);
    assert.deepEqual(await orderOf(database.db, second.value.id), [d, a]);
  });
});
