// Link positions under concurrent moves over HTTP (run with TEST_DATABASE_URL for PostgreSQL, where the
// requests really run in parallel on a pool of connections): positions stay 1..N, unique, with every
// upstream still linked exactly once.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../../src/auth/policy.ts';
import { orderOf } from '../../helpers/virtual-registries.ts';
import { bearer, call, createApiFixture, createWorld } from './app-fixture.ts';
import type { ApiFixture, World } from './app-fixture.ts';

let fixture: ApiFixture;
let world: World;

before(async () => {
  fixture = await createApiFixture();
  world = await createWorld(fixture);
});
after(() => fixture.close());

/** A deterministic sequence, so a failure can be replayed. */
function sequence(seed: number) {
  let state = seed;
  return (n: number) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}

test('concurrent moves keep the positions of a registry contiguous and unique', async () => {
  const registry = await fixture.services.registries.create(SYSTEM, world.group.id, { name: 'busy' });
  assert.ok(registry.ok);
  const links: number[] = [];
  for (let i = 1; i <= 5; i++) {
    const linked = await fixture.services.links.createUpstreamForRegistry(SYSTEM, registry.value.id, { name: `u${i}`, url: `https://u${i}.example.com` });
    assert.ok(linked.ok);
    links.push(linked.value.id);
  }
  const upstreams = await orderOf(fixture.database.db, registry.value.id);
  const next = sequence(42);
  const auth = bearer(world.users.maintainer.token);
  for (let round = 0; round < 3; round++) {
    const moves = Array.from({ length: 30 }, () => ({ link: links[next(links.length)], position: 1 + next(links.length) }));
    const responses = await Promise.all(moves.map((move) => call(fixture.app, 'PATCH', `/api/v1/registry_upstreams/${move.link}`, { auth, body: { position: move.position } })));
    for (const [index, response] of responses.entries()) {
      assert.equal(response.status, 200, response.body);
      assert.equal(response.json.position, moves[index].position, 'each move lands where it asked, at its turn');
    }
    const order = await orderOf(fixture.database.db, registry.value.id);
    assert.deepEqual([...order].sort((a, b) => a - b), [...upstreams].sort((a, b) => a - b), 'every upstream is linked once');
  }
  const shown = await call(fixture.app, 'GET', `/api/v1/registries/${registry.value.id}`, { auth });
  assert.deepEqual(shown.json.upstreams.map((link: { position: number }) => link.position), [1, 2, 3, 4, 5]);
  assert.deepEqual(shown.json.upstreams.map((link: { upstream_id: number }) => link.upstream_id), await orderOf(fixture.database.db, registry.value.id));
});

test('concurrent removals, links and moves leave no gap and no duplicate', async () => {
  const registry = await fixture.services.registries.create(SYSTEM, world.group.id, { name: 'churn' });
  assert.ok(registry.ok);
  // Four links, so that the concurrent link fits under the limit of 5 upstreams whichever request goes
  // first (with five, a link that went before both removals was refused as a 6th: a flaky test).
  const links: number[] = [];
  const upstreams: number[] = [];
  for (let i = 1; i <= 4; i++) {
    const linked = await fixture.services.links.createUpstreamForRegistry(SYSTEM, registry.value.id, { name: `c${i}`, url: `https://c${i}.example.com` });
    assert.ok(linked.ok);
    links.push(linked.value.id);
    upstreams.push(linked.value.upstream_id);
  }
  const spare = await fixture.services.upstreams.create(SYSTEM, world.group.id, { name: 'spare', url: 'https://spare.example.com' });
  assert.ok(spare.ok);
  const auth = bearer(world.users.owner.token);
  const responses = await Promise.all([
    call(fixture.app, 'DELETE', `/api/v1/registry_upstreams/${links[1]}`, { auth }),
    call(fixture.app, 'DELETE', `/api/v1/registry_upstreams/${links[3]}`, { auth }),
    call(fixture.app, 'POST', `/api/v1/registries/${registry.value.id}/upstream_links`, { auth, body: { upstream_id: spare.value.id } }),
    ...[links[0], links[2], links[0], links[2], links[0]].map((link, i) => call(fixture.app, 'PATCH', `/api/v1/registry_upstreams/${link}`, { auth, body: { position: 1 + (i % 3) } })),
  ]);
  assert.equal(responses[0].status, 204, responses[0].body);
  assert.equal(responses[1].status, 204, responses[1].body);
  assert.equal(responses[2].status, 201, responses[2].body);
  // A move may find fewer links than its position when removals went first: then it is refused, not misplaced.
  for (const response of responses.slice(3)) assert.ok([200, 400].includes(response.status), response.body);
  // orderOf also asserts positions 1..N: no gap, no duplicate.
  const order = await orderOf(fixture.database.db, registry.value.id);
  assert.deepEqual([...order].sort((a, b) => a - b), [upstreams[0], upstreams[2], spare.value.id].sort((a, b) => a - b));
});
