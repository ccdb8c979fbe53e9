// Mirror routes (instance admins own them) and the routing of /v2 names (DESIGN §3.6): ns routes, the
// default route, Docker Hub's library/ rule, claimed hostnames, the alias path, anonymous pulls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ANONYMOUS, SYSTEM } from '../../src/auth/policy.ts';
import type { Actor } from '../../src/auth/policy.ts';
import type { Group } from '../../src/db/schema.ts';
import { MirrorRouteService } from '../../src/services/mirror-routes.ts';
import { MirrorRouting, anonymousPullAllowed, grantsAsRouted } from '../../src/services/mirror-routing.ts';
import type { PullRegistry } from '../../src/services/registries.ts';
import { countRows, createTestDatabase } from '../helpers/db.ts';
import type { TestDatabase } from '../helpers/db.ts';
import { insertGroup, insertUser, uniqueName, userActor } from '../helpers/fixtures.ts';
import { auditEvents, createServices, groupWithMembers } from '../helpers/virtual-registries.ts';
import type { Services } from '../helpers/virtual-registries.ts';

let database: TestDatabase;
let services: Services;
let routes: MirrorRouteService;
let routing: MirrorRouting;
let group: Group;
let actors: Awaited<ReturnType<typeof groupWithMembers>>['actors'];
let admin: Actor;

before(async () => {
  database = await createTestDatabase();
  // Long memories: every change below must be seen at once all the same.
  services = createServices(database.db, { pullCacheTtlMs: 60_000 });
  routes = new MirrorRouteService({ db: database.db, changes: services.changes });
  routing = new MirrorRouting({ db: database.db, registries: services.registries, ttlMs: 60_000 });
  services.changes.subscribe((change) => routing.onChange(change));
  ({ group, actors } = await groupWithMembers(database.db));
  admin = userActor((await insertUser(database.db, { admin: true })).id, [], { admin: true, channel: 'api' });
});
after(() => database.destroy());

/** A registry in a group of its own (a group has at most 5); `path` is the group's. */
async function registry(name = uniqueName('reg'), extra: { anonymous_pull?: boolean; anonymous_networks?: string[]; hostnames?: string[] } = {}) {
  const own = await insertGroup(database.db);
  const created = await services.registries.create(admin, own.id, { name, ...extra });
  assert.ok(created.ok, JSON.stringify(created));
  return { ...created.value, path: own.path };
}

async function route(host: string, registryId: number, isDefault = false) {
  const created = await routes.create(admin, { host, registry_id: registryId, default: isDefault });
  assert.ok(created.ok, JSON.stringify(created));
  return created.value;
}

async function clearRoutes() {
  const listed = await routes.list(admin);
  assert.ok(listed.ok);
  for (const existing of listed.value) assert.ok((await routes.destroy(admin, existing.id)).ok);
}

function routedTo(result: Awaited<ReturnType<MirrorRouting['resolve']>>) {
  assert.ok(result.ok, JSON.stringify(result));
  return { registry: result.value.registry.registry.name, image: result.value.image, repository: result.value.repository, via: result.value.via };
}

describe('mirror routes', () => {
  test('admins create, list, change and delete routes; each change is audited', async () => {
    await clearRoutes();
    const hub = await registry();
    const events = (await auditEvents(database.db)).length;
    const created = await routes.create(admin, { host: 'Registry-1.Docker.IO', registry_id: hub.id, default: true });
    assert.ok(created.ok, JSON.stringify(created));
    assert.equal(created.value.host, 'docker.io', 'Docker Hub\'s other names are docker.io');
    assert.equal(created.value.registry_path, `${hub.path}/${hub.name}`);
    assert.equal(created.value.default, true);
    const other = await registry();
    const ghcr = await route('ghcr.io', other.id);
    const listed = await routes.list(admin);
    assert.ok(listed.ok);
    assert.deepEqual(listed.value.map((r) => [r.host, r.default]), [['docker.io', true], ['ghcr.io', false]]);

    // Making another route the default moves the flag: one default at most.
    const moved = await routes.update(admin, ghcr.id, { default: true });
    assert.ok(moved.ok && moved.value.default);
    const after = await routes.list(admin);
    assert.ok(after.ok);
    assert.deepEqual(after.value.map((r) => [r.host, r.default]), [['docker.io', false], ['ghcr.io', true]]);
    assert.ok((await routes.destroy(admin, ghcr.id)).ok);
    assert.equal((await routes.get(admin, ghcr.id)).ok, false);

    const actions = (await auditEvents(database.db)).slice(events).filter((e) => e.target_type === 'mirror_route').map((e) => e.action);
    assert.deepEqual(actions, ['mirror_route.create', 'mirror_route.create', 'mirror_route.update', 'mirror_route.destroy']);
  });

  test('a host has one route, whichever of its names it is given by', async () => {
    await clearRoutes();
    const hub = await registry();
    await route('docker.io', hub.id);
    const again = await routes.create(admin, { host: 'index.docker.io', registry_id: hub.id });
    assert.equal(again.ok, false);
    assert.equal(!again.ok && again.reason, 'conflict');
    const byAlias = await routes.getByHost(admin, 'registry-1.docker.io');
    assert.ok(byAlias.ok && byAlias.value.host === 'docker.io');
  });

  test('refuses bad hosts and unknown registries, and everyone but instance admins, writing nothing', async () => {
    const hub = await registry();
    const before = await countRows(database.db);
    for (const host of ['', 'https://docker.io', 'docker.io/library', 'a b', 'host:99999']) {
      const refused = await routes.create(admin, { host, registry_id: hub.id });
      assert.equal(!refused.ok && refused.reason, 'invalid', host);
    }
    const unknown = await routes.create(admin, { host: 'quay.io', registry_id: 999_999 });
    assert.equal(!unknown.ok && unknown.reason, 'invalid');
    assert.deepEqual(!unknown.ok && unknown.fields, { registry_id: ['no such registry'] });
    for (const actor of [actors.owner, actors.maintainer, actors.outsider]) {
      const refused = await routes.create(actor, { host: 'quay.io', registry_id: hub.id });
      assert.equal(!refused.ok && refused.reason, 'forbidden');
      assert.equal((await routes.list(actor)).ok, false);
    }
    const anonymous = await routes.list(ANONYMOUS);
    assert.equal(!anonymous.ok && anonymous.reason, 'unauthorized');
    assert.deepEqual(await countRows(database.db), before);
  });
});

describe('routing a /v2 name', () => {
  test('the canonical name, ns routes with Docker Hub\'s library/ rule, and the default route', async () => {
    await clearRoutes();
    const hub = await registry('hub');
    const gh = await registry('gh');
    assert.deepEqual(routedTo(await routing.resolve({ name: `${hub.path}/hub/library/alpine` })), { registry: 'hub', image: 'library/alpine', repository: `${hub.path}/hub/library/alpine`, via: 'path' });

    await route('docker.io', hub.id, true);
    await route('ghcr.io', gh.id);
    assert.deepEqual(routedTo(await routing.resolve({ name: 'library/alpine', ns: 'docker.io' })), { registry: 'hub', image: 'library/alpine', repository: `${hub.path}/hub/library/alpine`, via: 'ns' });
    assert.equal(routedTo(await routing.resolve({ name: 'alpine', ns: 'registry-1.docker.io' })).image, 'library/alpine', 'one component on Docker Hub gets library/');
    assert.equal(routedTo(await routing.resolve({ name: 'owner/tool', ns: 'ghcr.io' })).registry, 'gh');
    assert.equal(routedTo(await routing.resolve({ name: 'tool', ns: 'ghcr.io' })).image, 'tool', 'no library/ rule outside Docker Hub');
    assert.deepEqual(routedTo(await routing.resolve({ name: 'alpine' })), { registry: 'hub', image: 'library/alpine', repository: `${hub.path}/hub/library/alpine`, via: 'default' });
    // A name whose first components are not a registry of ours is a mirror name, however long.
    assert.equal(routedTo(await routing.resolve({ name: 'a/b/c/d' })).image, 'a/b/c/d');
    // The canonical form wins over ns.
    assert.equal(routedTo(await routing.resolve({ name: `${gh.path}/gh/x`, ns: 'docker.io' })).registry, 'gh');
  });

  test('an unknown ns is refused naming the host; so is a route whose registry was deleted', async () => {
    await clearRoutes();
    const doomed = await registry();
    await route('quay.io', doomed.id);
    const unknown = await routing.resolve({ name: 'library/alpine', ns: 'evil.example.com:8443' });
    assert.equal(!unknown.ok && unknown.reason, 'not_found');
    assert.match(!unknown.ok ? unknown.message : '', /no mirror route for ns=evil\.example\.com:8443/);

    assert.ok((await services.registries.destroy(admin, doomed.id)).ok);
    const orphan = await routing.resolve({ name: 'coreos/etcd', ns: 'quay.io' });
    assert.equal(!orphan.ok && orphan.reason, 'not_found');
    assert.match(!orphan.ok ? orphan.message : '', /mirror route for quay\.io points at a registry that was deleted/);
    const listed = await routes.list(admin);
    assert.ok(listed.ok);
    assert.deepEqual(listed.value.map((r) => [r.host, r.registry_id, r.registry_path]), [['quay.io', null, null]]);

    const noDefault = await routing.resolve({ name: 'library/alpine' });
    assert.equal(!noDefault.ok && noDefault.reason, 'not_found');
    assert.equal(!noDefault.ok && noDefault.cause, 'unrouted');
  });

  test('invalid names, and a registry named without an image, are invalid', async () => {
    const named = await registry('named');
    for (const name of ['Library/Alpine', `${named.path}/named`, 'virtual_registries/containers/abc/x']) {
      const refused = await routing.resolve({ name });
      assert.equal(!refused.ok && refused.reason, 'invalid', name);
    }
  });

  test('the alias path virtual_registries/containers/<id>/<image>', async () => {
    const aliased = await registry();
    assert.deepEqual(routedTo(await routing.resolve({ name: `virtual_registries/containers/${aliased.id}/library/alpine` })), { registry: aliased.name, image: 'library/alpine', repository: `${aliased.path}/${aliased.name}/library/alpine`, via: 'alias' });
    const missing = await routing.resolve({ name: 'virtual_registries/containers/999999/library/alpine' });
    assert.equal(!missing.ok && missing.reason, 'not_found');
  });

  test('a claimed hostname routes every name to its registry; only instance admins claim hostnames', async () => {
    const refused = await services.registries.create(actors.maintainer, group.id, { name: uniqueName('host'), hostnames: ['mine.example.com'] });
    assert.equal(!refused.ok && refused.reason, 'forbidden');
    const inGroup = await services.registries.create(admin, group.id, { name: uniqueName('host'), hostnames: ['Hub.Cache.Example.com'] });
    assert.ok(inGroup.ok, JSON.stringify(inGroup));
    const claimed = { ...inGroup.value, path: group.path };
    assert.deepEqual(claimed.hostnames, ['hub.cache.example.com']);
    assert.deepEqual(routedTo(await routing.resolve({ name: 'library/alpine', host: 'hub.cache.example.com:5000' })), { registry: claimed.name, image: 'library/alpine', repository: `${claimed.path}/${claimed.name}/library/alpine`, via: 'hostname' });
    const taken = await services.registries.create(admin, (await insertGroup(database.db)).id, { name: uniqueName('host'), hostnames: ['hub.cache.example.com'] });
    assert.equal(!taken.ok && taken.reason, 'conflict');
    // Taking the hostname away is seen by the next request, whatever the memory's TTL.
    const maintainerChange = await services.registries.update(actors.maintainer, claimed.id, { hostnames: [] });
    assert.equal(!maintainerChange.ok && maintainerChange.reason, 'forbidden');
    assert.ok((await services.registries.update(admin, claimed.id, { hostnames: [] })).ok);
    const gone = await routing.resolve({ name: 'library/alpine', host: 'hub.cache.example.com' });
    assert.notEqual(gone.ok && gone.value.via, 'hostname');
  });

  test('route changes are seen by the next request', async () => {
    await clearRoutes();
    const first = await registry();
    const second = await registry();
    const made = await route('docker.io', first.id);
    assert.equal(routedTo(await routing.resolve({ name: 'library/alpine', ns: 'docker.io' })).registry, first.name);
    assert.ok((await routes.update(admin, made.id, { registry_id: second.id })).ok);
    assert.equal(routedTo(await routing.resolve({ name: 'library/alpine', ns: 'docker.io' })).registry, second.name);
    assert.ok((await routes.destroy(admin, made.id)).ok);
    assert.equal((await routing.resolve({ name: 'library/alpine', ns: 'docker.io' })).ok, false);
  });
});

describe('anonymous pulls', () => {
  const pullRegistry = (anonymousPull: boolean, networks: string[]): PullRegistry => ({
    group: { id: 1, path: 'acme' }, registry: { id: 2, name: 'hub', anonymousPull, anonymousNetworks: networks }, upstreams: [],
  });

  test('off by default; when on, from anywhere or only from the listed networks', () => {
    const off = anonymousPullAllowed(pullRegistry(false, []), '127.0.0.1');
    assert.match(!off.ok ? off.message : '', /acme\/hub does not allow anonymous pulls/);
    assert.ok(anonymousPullAllowed(pullRegistry(true, []), '203.0.113.9').ok);
    const limited = pullRegistry(true, ['127.0.0.2/32', '10.0.0.0/8', 'fd00::/8']);
    assert.ok(anonymousPullAllowed(limited, '127.0.0.2').ok);
    assert.ok(anonymousPullAllowed(limited, '::ffff:10.1.2.3').ok, 'an IPv4-mapped address is its IPv4 address');
    assert.ok(anonymousPullAllowed(limited, 'fd12::1').ok);
    const outside = anonymousPullAllowed(limited, '127.0.0.3');
    assert.match(!outside.ok ? outside.message : '', /client 127\.0\.0\.3 is outside the anonymous_networks of acme\/hub/);
  });

  test('the registry settings are validated, stored canonically and audited', async () => {
    const inGroup = await services.registries.create(admin, group.id, { name: uniqueName('anon') });
    assert.ok(inGroup.ok);
    const made = inGroup.value;
    const events = (await auditEvents(database.db)).length;
    const bad = await services.registries.update(actors.maintainer, made.id, { anonymous_networks: ['10.0.0.0/33', 'nonsense'] });
    assert.equal(!bad.ok && bad.reason, 'invalid');
    assert.deepEqual(Object.keys(!bad.ok ? bad.fields ?? {} : {}).sort(), ['anonymous_networks.0', 'anonymous_networks.1']);
    const updated = await services.registries.update(actors.maintainer, made.id, { anonymous_pull: true, anonymous_networks: ['10.1.0.0/16', '192.0.2.7'] });
    assert.ok(updated.ok, JSON.stringify(updated));
    assert.equal(updated.value.anonymous_pull, true);
    assert.deepEqual(updated.value.anonymous_networks, ['10.1.0.0/16', '192.0.2.7/32']);
    const [event] = (await auditEvents(database.db)).slice(events);
    assert.equal(event.action, 'registry.update');
    const details = JSON.parse(event.details) as { before: { anonymous_pull: boolean }; after: { anonymous_pull: boolean; anonymous_networks: string[] } };
    assert.equal(details.before.anonymous_pull, false);
    assert.deepEqual([details.after.anonymous_pull, details.after.anonymous_networks], [true, ['10.1.0.0/16', '192.0.2.7/32']]);
    const found = await services.registries.findForPullById(made.id);
    assert.equal(found?.registry.anonymousPull, true);
  });

  test('the token question: may this actor pull the name through some route?', async () => {
    await clearRoutes();
    const inGroup = await services.registries.create(admin, group.id, { name: uniqueName('open'), anonymous_pull: true, anonymous_networks: ['127.0.0.0/30'] });
    assert.ok(inGroup.ok);
    const open = inGroup.value;
    await route('docker.io', open.id, true);
    assert.equal(await routing.mayPull(ANONYMOUS, 'library/alpine', '127.0.0.2'), true);
    assert.equal(await routing.mayPull(ANONYMOUS, 'library/alpine', '127.0.0.9'), false);
    assert.equal(await routing.mayPull(actors.guest, 'library/alpine', '127.0.0.9'), true);
    assert.equal(await routing.mayPull(actors.outsider, 'library/alpine', '127.0.0.2'), false);
    assert.equal(await routing.mayPull(SYSTEM, 'Not/Valid', '127.0.0.2'), false);
  });

  test('a registry token\'s grant of the client\'s name covers the routed name, nothing else', () => {
    const jwt = { ...userActor(5), registryAccess: [{ type: 'repository', name: 'library/alpine', actions: ['pull'] }] } as Actor;
    const routed = grantsAsRouted(jwt, 'library/alpine', 'acme/hub/library/alpine');
    assert.ok('registryAccess' in routed && routed.registryAccess?.some((entry) => entry.name === 'acme/hub/library/alpine'));
    const other = grantsAsRouted(jwt, 'library/nginx', 'acme/hub/library/nginx');
    assert.ok('registryAccess' in other && !other.registryAccess?.some((entry) => entry.name === 'acme/hub/library/nginx'));
    assert.equal(grantsAsRouted(actors.guest, 'library/alpine', 'acme/hub/library/alpine'), actors.guest, 'credentials without an access list stay as they are');
  });
});
