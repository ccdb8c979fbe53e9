// The permission matrix of the management API (DESIGN §5, §6): every endpoint, called by every kind of
// caller, answers the status the design says. The expected table is written out here from the design's
// rules, independently of src/auth/policy.ts. Mutating calls get fresh targets, so each caller's answer
// depends only on who it is.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../../src/auth/policy.ts';
import { TOKEN_PREFIX } from '../../../src/auth/secrets.ts';
import { insertCacheEntry } from '../../helpers/virtual-registries.ts';
import { insertMembership, insertUser } from '../../helpers/fixtures.ts';
import { FakeRegistry } from '../../helpers/fake-registry.ts';
import { apiActor, basic, bearer, call, createApiFixture, createWorld, privateToken, ROLE_NAMES, WORLD_PASSWORD } from './app-fixture.ts';
import type { ApiFixture, Auth, World } from './app-fixture.ts';

const ACTORS = ['anonymous', 'non_member', 'guest', 'reporter', 'developer', 'maintainer', 'owner', 'admin', 'read_api', 'api', 'group_token', 'deploy'] as const;
type ActorName = (typeof ACTORS)[number];

/**
 * What an endpoint needs. Group-scoped: `read` = guest and above (read_virtual_registry), `write` =
 * maintainer and above, `owner` = owner (admin_virtual_registry). Instance: `instance_admin`;
 * `admin_lookup` = another user's account (admins; others do not see it). `user`/`user_write` = the
 * caller's own account (users only); `create_group` = any user; `any` = any API caller; `public` = no
 * credentials needed.
 */
type Need = 'public' | 'any' | 'user' | 'user_write' | 'create_group' | 'instance_admin' | 'admin_lookup' | 'read' | 'write' | 'owner';

/** The role each caller acts with in the test group; the tokens: read_api and api are the owner's, the group token a maintainer. */
const LEVEL: Record<string, number> = { guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50, admin: Number.POSITIVE_INFINITY, read_api: 50, api: 50, group_token: 40 };
const MINIMUM: Record<string, number> = { read: 10, write: 40, owner: 50 };

function expected(actor: ActorName, need: Need, success: number): number {
  if (need === 'public') return success;
  if (actor === 'anonymous') return 401;
  // Deploy tokens pull images only: a valid credential without API access.
  if (actor === 'deploy') return 403;
  const isUser = actor !== 'group_token';
  const mayWrite = actor !== 'read_api';
  switch (need) {
    case 'any':
      return success;
    case 'user':
      return isUser ? success : 403;
    case 'user_write':
    case 'create_group':
      return isUser && mayWrite ? success : 403;
    case 'instance_admin':
      return actor === 'admin' ? success : 403;
    case 'admin_lookup':
      return actor === 'admin' ? success : 404;
    default:
      if (actor === 'non_member') return 404;
      if (need !== 'read' && !mayWrite) return 403;
      return LEVEL[actor] >= MINIMUM[need] ? success : 403;
  }
}

interface Attempt {
  url: string;
  body?: unknown;
  /** The group's own tokens when the target is a group made for this attempt. */
  groupTokens?: { groupToken: string; deployToken: string };
  cleanup?: () => Promise<void>;
}

interface Endpoint {
  method: string;
  path: string;
  need: Need;
  success: number;
  prepare: (actor: ActorName) => Promise<Attempt>;
}

let fixture: ApiFixture;
let world: World;
let registry: FakeRegistry;
let persistent: { registryId: number; upstreamId: number; linkId: number; otherUserId: number };
let counter = 0;
const unique = (prefix: string) => `${prefix}${++counter}`;

function auth(actor: ActorName, attempt: Attempt): Auth {
  const users = world.users;
  switch (actor) {
    case 'anonymous':
      return {};
    case 'read_api':
      return privateToken(world.readApiToken);
    case 'api':
      return bearer(users.owner.token);
    case 'group_token':
      return bearer(attempt.groupTokens?.groupToken ?? world.groupToken);
    case 'deploy':
      return bearer(attempt.groupTokens?.deployToken ?? world.deployToken);
    default:
      return basic(users[actor].username, WORLD_PASSWORD);
  }
}

const G = () => world.group.id;
const fixed = (url: string, body?: unknown) => async (): Promise<Attempt> => ({ url, body });

async function freshRegistry(): Promise<number> {
  const created = await fixture.services.registries.create(SYSTEM, G(), { name: unique('reg') });
  assert.ok(created.ok, 'fixture registry');
  return created.value.id;
}
const destroyRegistry = (id: number) => async () => {
  await fixture.services.registries.destroy(SYSTEM, id);
};
async function freshUpstream(): Promise<number> {
  const created = await fixture.services.upstreams.create(SYSTEM, G(), { name: unique('up'), url: `${registry.url}/${unique('p')}` });
  assert.ok(created.ok, 'fixture upstream');
  return created.value.id;
}
/** Registries made by a successful create, removed so the group stays under its limit. */
async function removeOtherRegistries(): Promise<void> {
  const listed = await fixture.services.registries.list(SYSTEM, G());
  assert.ok(listed.ok);
  for (const r of listed.value) if (r.id !== persistent.registryId) await fixture.services.registries.destroy(SYSTEM, r.id);
}

function endpoints(): Endpoint[] {
  const reg = () => persistent.registryId;
  const up = () => persistent.upstreamId;
  return [
    { method: 'GET', path: '/api/v1/openapi.json', need: 'public', success: 200, prepare: fixed('/api/v1/openapi.json') },
    { method: 'GET', path: '/api/v1/docs', need: 'public', success: 200, prepare: fixed('/api/v1/docs/') },

    { method: 'GET', path: '/api/v1/user', need: 'user', success: 200, prepare: fixed('/api/v1/user') },
    // The console's session: signing in needs only the body; without a session cookie there is no session to show or end.
    { method: 'POST', path: '/api/v1/session', need: 'public', success: 201, prepare: async () => ({ url: '/api/v1/session', body: { username: world.users.owner.username, password: WORLD_PASSWORD } }) },
    { method: 'GET', path: '/api/v1/session', need: 'any', success: 404, prepare: fixed('/api/v1/session') },
    { method: 'DELETE', path: '/api/v1/session', need: 'any', success: 404, prepare: fixed('/api/v1/session') },
    { method: 'GET', path: '/api/v1/instance', need: 'any', success: 200, prepare: fixed('/api/v1/instance') },
    { method: 'GET', path: '/api/v1/registries/:id/statistics', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registries/${persistent.registryId}/statistics` }) },
    { method: 'GET', path: '/api/v1/registries/:id/usage', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registries/${persistent.registryId}/usage` }) },
    { method: 'GET', path: '/api/v1/registries/:id/cache_entries', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registries/${persistent.registryId}/cache_entries?order_by=size&sort=asc` }) },
    { method: 'GET', path: '/api/v1/user/personal_access_tokens', need: 'user', success: 200, prepare: fixed('/api/v1/user/personal_access_tokens') },
    { method: 'POST', path: '/api/v1/user/personal_access_tokens', need: 'user_write', success: 201, prepare: fixed('/api/v1/user/personal_access_tokens', { name: 'ci', scopes: ['read_api'] }) },
    {
      method: 'DELETE', path: '/api/v1/user/personal_access_tokens/:token_id', need: 'user_write', success: 204,
      prepare: async (actor) => {
        // One's own token: the caller's user (the owner for the owner's tokens and for callers without a user).
        const name = actor in world.users ? (actor as keyof World['users']) : 'owner';
        const user = world.users[name];
        const created = await fixture.services.tokens.createPersonal(apiActor({ id: user.id, username: user.username, admin: name === 'admin' }), { name: 'revoke me', scopes: ['api'] });
        assert.ok(created.ok);
        return { url: `/api/v1/user/personal_access_tokens/${created.value.id}` };
      },
    },

    { method: 'GET', path: '/api/v1/users', need: 'instance_admin', success: 200, prepare: fixed('/api/v1/users') },
    { method: 'POST', path: '/api/v1/users', need: 'instance_admin', success: 201, prepare: async () => ({ url: '/api/v1/users', body: { username: unique('newuser'), password: 'a long enough password' } }) },
    { method: 'GET', path: '/api/v1/users/:id', need: 'admin_lookup', success: 200, prepare: async () => ({ url: `/api/v1/users/${persistent.otherUserId}` }) },
    ...(['block', 'unblock'] as const).map((verb): Endpoint => ({
      method: 'POST', path: `/api/v1/users/:id/${verb}`, need: 'instance_admin', success: 200,
      prepare: async () => ({ url: `/api/v1/users/${(await insertUser(fixture.database.db, { blocked: verb === 'unblock' })).id}/${verb}` }),
    })),
    { method: 'DELETE', path: '/api/v1/users/:id', need: 'instance_admin', success: 204, prepare: async () => ({ url: `/api/v1/users/${(await insertUser(fixture.database.db)).id}` }) },

    { method: 'GET', path: '/api/v1/groups', need: 'any', success: 200, prepare: fixed('/api/v1/groups') },
    { method: 'POST', path: '/api/v1/groups', need: 'create_group', success: 201, prepare: async () => ({ url: '/api/v1/groups', body: { path: unique('newgroup') } }) },
    { method: 'GET', path: '/api/v1/groups/:id', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}` }) },
    { method: 'PATCH', path: '/api/v1/groups/:id', need: 'owner', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}`, body: { description: unique('d') } }) },
    {
      method: 'DELETE', path: '/api/v1/groups/:id', need: 'owner', success: 204,
      prepare: async () => {
        // A group of its own with the same members and tokens, since a successful delete removes it.
        const created = await fixture.services.groups.create(SYSTEM, { path: unique('doomed') });
        assert.ok(created.ok);
        const id = created.value.id;
        for (const role of ROLE_NAMES) await insertMembership(fixture.database.db, id, world.users[role].id, role);
        const groupToken = await fixture.services.tokens.createGroupToken(SYSTEM, { group_id: id, name: 'robot', role: 'maintainer', scopes: ['api'] });
        const deployToken = await fixture.services.tokens.createDeployToken(SYSTEM, { group_id: id, name: 'deploy' });
        assert.ok(groupToken.ok && deployToken.ok);
        return {
          url: `/api/v1/groups/${id}`, groupTokens: { groupToken: groupToken.value.token, deployToken: deployToken.value.token },
          cleanup: async () => void (await fixture.services.groups.delete(SYSTEM, id)),
        };
      },
    },

    { method: 'GET', path: '/api/v1/groups/:id/members', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/members` }) },
    { method: 'POST', path: '/api/v1/groups/:id/members', need: 'owner', success: 201, prepare: async () => ({ url: `/api/v1/groups/${G()}/members`, body: { user_id: (await insertUser(fixture.database.db)).id, role: 'guest' } }) },
    {
      method: 'PATCH', path: '/api/v1/groups/:id/members/:user_id', need: 'owner', success: 200,
      prepare: async () => {
        const user = await insertUser(fixture.database.db);
        await insertMembership(fixture.database.db, G(), user.id, 'guest');
        return { url: `/api/v1/groups/${G()}/members/${user.id}`, body: { role: 'reporter' }, cleanup: async () => void (await fixture.database.db.deleteFrom('memberships').where('user_id', '=', user.id).execute()) };
      },
    },
    {
      method: 'DELETE', path: '/api/v1/groups/:id/members/:user_id', need: 'owner', success: 204,
      prepare: async () => {
        const user = await insertUser(fixture.database.db);
        await insertMembership(fixture.database.db, G(), user.id, 'guest');
        return { url: `/api/v1/groups/${G()}/members/${user.id}`, cleanup: async () => void (await fixture.database.db.deleteFrom('memberships').where('user_id', '=', user.id).execute()) };
      },
    },

    ...(['access_tokens', 'deploy_tokens'] as const).flatMap((kind): Endpoint[] => [
      { method: 'GET', path: `/api/v1/groups/:id/${kind}`, need: 'owner', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/${kind}` }) },
      {
        method: 'POST', path: `/api/v1/groups/:id/${kind}`, need: 'owner', success: 201,
        prepare: async () => ({ url: `/api/v1/groups/${G()}/${kind}`, body: kind === 'access_tokens' ? { name: 'bot', role: 'reporter', scopes: ['read_api'] } : { name: 'puller' } }),
      },
      {
        method: 'DELETE', path: `/api/v1/groups/:id/${kind}/:token_id`, need: 'owner', success: 204,
        prepare: async () => {
          const created = kind === 'access_tokens'
            ? await fixture.services.tokens.createGroupToken(SYSTEM, { group_id: G(), name: 'bot', role: 'reporter', scopes: ['read_api'] })
            : await fixture.services.tokens.createDeployToken(SYSTEM, { group_id: G(), name: 'puller' });
          assert.ok(created.ok);
          return { url: `/api/v1/groups/${G()}/${kind}/${created.value.id}` };
        },
      },
    ]),

    { method: 'GET', path: '/api/v1/groups/:id/registries', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/registries` }) },
    { method: 'POST', path: '/api/v1/groups/:id/registries', need: 'write', success: 201, prepare: async () => ({ url: `/api/v1/groups/${G()}/registries`, body: { name: unique('created') }, cleanup: removeOtherRegistries }) },
    { method: 'GET', path: '/api/v1/registries/:id', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registries/${reg()}` }) },
    { method: 'PATCH', path: '/api/v1/registries/:id', need: 'write', success: 200, prepare: async () => ({ url: `/api/v1/registries/${reg()}`, body: { description: unique('d') } }) },
    { method: 'DELETE', path: '/api/v1/registries/:id', need: 'write', success: 204, prepare: async () => { const id = await freshRegistry(); return { url: `/api/v1/registries/${id}`, cleanup: destroyRegistry(id) }; } },
    { method: 'DELETE', path: '/api/v1/registries/:id/cache', need: 'write', success: 202, prepare: async () => ({ url: `/api/v1/registries/${reg()}/cache` }) },

    { method: 'GET', path: '/api/v1/groups/:id/upstreams', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/upstreams?search=up` }) },
    { method: 'POST', path: '/api/v1/groups/:id/upstreams', need: 'write', success: 201, prepare: async () => ({ url: `/api/v1/groups/${G()}/upstreams`, body: { name: 'lone', url: `${registry.url}/${unique('lone')}` } }) },
    { method: 'POST', path: '/api/v1/groups/:id/upstreams/test', need: 'write', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/upstreams/test`, body: { url: registry.url } }) },
    { method: 'GET', path: '/api/v1/registries/:id/upstreams', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registries/${reg()}/upstreams` }) },
    {
      method: 'POST', path: '/api/v1/registries/:id/upstreams', need: 'write', success: 201,
      prepare: async () => { const id = await freshRegistry(); return { url: `/api/v1/registries/${id}/upstreams`, body: { name: 'mirror', url: `${registry.url}/${unique('m')}` }, cleanup: destroyRegistry(id) }; },
    },
    { method: 'GET', path: '/api/v1/upstreams/:id', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/upstreams/${up()}` }) },
    { method: 'PATCH', path: '/api/v1/upstreams/:id', need: 'write', success: 200, prepare: async () => ({ url: `/api/v1/upstreams/${up()}`, body: { cache_validity_hours: 12 } }) },
    { method: 'DELETE', path: '/api/v1/upstreams/:id', need: 'write', success: 204, prepare: async () => ({ url: `/api/v1/upstreams/${await freshUpstream()}` }) },
    { method: 'POST', path: '/api/v1/upstreams/:id/test', need: 'write', success: 200, prepare: async () => ({ url: `/api/v1/upstreams/${up()}/test`, body: {} }) },
    { method: 'DELETE', path: '/api/v1/upstreams/:id/cache', need: 'write', success: 202, prepare: async () => ({ url: `/api/v1/upstreams/${up()}/cache` }) },

    {
      method: 'POST', path: '/api/v1/registries/:id/upstream_links', need: 'write', success: 201,
      prepare: async () => { const id = await freshRegistry(); return { url: `/api/v1/registries/${id}/upstream_links`, body: { upstream_id: up() }, cleanup: destroyRegistry(id) }; },
    },
    { method: 'GET', path: '/api/v1/registry_upstreams/:id', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registry_upstreams/${persistent.linkId}` }) },
    { method: 'PATCH', path: '/api/v1/registry_upstreams/:id', need: 'write', success: 200, prepare: async () => ({ url: `/api/v1/registry_upstreams/${persistent.linkId}`, body: { position: 1 } }) },
    {
      method: 'DELETE', path: '/api/v1/registry_upstreams/:id', need: 'write', success: 204,
      prepare: async () => {
        const id = await freshRegistry();
        const linked = await fixture.services.links.link(SYSTEM, id, up());
        assert.ok(linked.ok);
        return { url: `/api/v1/registry_upstreams/${linked.value.id}`, cleanup: destroyRegistry(id) };
      },
    },

    { method: 'GET', path: '/api/v1/upstreams/:id/cache_entries', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/upstreams/${up()}/cache_entries?search=alpine` }) },
    { method: 'GET', path: '/api/v1/cache_entries/:id', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/cache_entries/${await insertCacheEntry(fixture.database.db, G(), up())}` }) },
    { method: 'DELETE', path: '/api/v1/cache_entries/:id', need: 'write', success: 204, prepare: async () => ({ url: `/api/v1/cache_entries/${await insertCacheEntry(fixture.database.db, G(), up())}` }) },

    { method: 'GET', path: '/api/v1/groups/:id/cleanup_policy', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/cleanup_policy` }) },
    { method: 'GET', path: '/api/v1/groups/:id/cleanup_policy/runs', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/cleanup_policy/runs` }) },
    { method: 'PUT', path: '/api/v1/groups/:id/cleanup_policy', need: 'owner', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/cleanup_policy`, body: { keep_n_days_after_download: 14 } }) },
    {
      method: 'DELETE', path: '/api/v1/groups/:id/cleanup_policy', need: 'owner', success: 204,
      prepare: async () => ({ url: `/api/v1/groups/${G()}/cleanup_policy`, cleanup: ensurePolicy }),
    },

    { method: 'POST', path: '/api/v1/registries/:id/prefetch', need: 'write', success: 202, prepare: async () => ({ url: `/api/v1/registries/${reg()}/prefetch`, body: { images: ['library/alpine:3.20'], platforms: ['linux/amd64'] } }) },
    { method: 'GET', path: '/api/v1/registries/:id/prefetch_jobs', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/registries/${reg()}/prefetch_jobs` }) },
    { method: 'GET', path: '/api/v1/prefetch_jobs/:id', need: 'read', success: 200, prepare: async () => ({ url: `/api/v1/prefetch_jobs/${await freshPrefetchJob()}` }) },
    { method: 'DELETE', path: '/api/v1/prefetch_jobs/:id', need: 'write', success: 200, prepare: async () => ({ url: `/api/v1/prefetch_jobs/${await freshPrefetchJob()}` }) },

    { method: 'GET', path: '/api/v1/groups/:id/audit_events', need: 'owner', success: 200, prepare: async () => ({ url: `/api/v1/groups/${G()}/audit_events` }) },
    { method: 'GET', path: '/api/v1/audit_events', need: 'instance_admin', success: 200, prepare: fixed('/api/v1/audit_events') },

    { method: 'GET', path: '/api/v1/mirror_routes', need: 'instance_admin', success: 200, prepare: fixed('/api/v1/mirror_routes') },
    { method: 'POST', path: '/api/v1/mirror_routes', need: 'instance_admin', success: 201, prepare: async () => ({ url: '/api/v1/mirror_routes', body: { host: `${unique('created')}.example.com`, registry_id: reg() } }) },
    { method: 'GET', path: '/api/v1/mirror_routes/:id', need: 'instance_admin', success: 200, prepare: async () => ({ url: `/api/v1/mirror_routes/${await freshRoute()}` }) },
    { method: 'PATCH', path: '/api/v1/mirror_routes/:id', need: 'instance_admin', success: 200, prepare: async () => ({ url: `/api/v1/mirror_routes/${await freshRoute()}`, body: { default: true } }) },
    { method: 'DELETE', path: '/api/v1/mirror_routes/:id', need: 'instance_admin', success: 204, prepare: async () => ({ url: `/api/v1/mirror_routes/${await freshRoute()}` }) },
  ];
}

async function freshRoute(): Promise<number> {
  const created = await fixture.services.mirrorRoutes.create(SYSTEM, { host: `${unique('route')}.example.com`, registry_id: persistent.registryId });
  assert.ok(created.ok, JSON.stringify(created));
  return created.value.id;
}

/** A queued prefetch job of the persistent registry (no runner runs here: it stays queued). */
async function freshPrefetchJob(): Promise<number> {
  const created = await fixture.services.prefetchJobs.create(SYSTEM, persistent.registryId, { images: ['library/alpine:3.20'] });
  assert.ok(created.ok, JSON.stringify(created));
  return created.value.id;
}

async function ensurePolicy(): Promise<void> {
  const put = await fixture.cleanupPolicies.put(SYSTEM, G(), { keep_n_days_after_download: 30, cadence_days: 7 });
  assert.ok(put.ok);
}

before(async () => {
  registry = await FakeRegistry.start();
  fixture = await createApiFixture({ allowPrivateUpstreams: true });
  world = await createWorld(fixture);
  const registryId = await freshRegistry();
  const link = await fixture.services.links.createUpstreamForRegistry(SYSTEM, registryId, { name: 'upstream', url: registry.url });
  assert.ok(link.ok);
  const other = await insertUser(fixture.database.db);
  persistent = { registryId, upstreamId: link.value.upstream_id, linkId: link.value.id, otherUserId: other.id };
  await ensurePolicy();
});
after(async () => {
  await fixture.close();
  await registry.close();
});

test('the matrix covers every route of the API', () => {
  const covered = new Set(endpoints().map((e) => `${e.method} ${e.path}`));
  const routes = fixture.apiRoutes().filter((route) => !route.startsWith('GET /api/v1/docs/') && route !== 'GET /api/v1/docs/*');
  const missing = routes.filter((route) => !covered.has(route));
  assert.deepEqual(missing, [], 'every API route has a row in the matrix');
});

test('every endpoint answers each caller as DESIGN §5 and §6 say', async () => {
  const mismatches: string[] = [];
  for (const endpoint of endpoints()) {
    for (const actor of ACTORS) {
      const attempt = await endpoint.prepare(actor);
      try {
        const response = await call(fixture.app, endpoint.method, attempt.url, { auth: auth(actor, attempt), body: attempt.body });
        const want = expected(actor, endpoint.need, endpoint.success);
        if (response.status !== want) mismatches.push(`${endpoint.method} ${endpoint.path} as ${actor}: ${response.status} (want ${want}) ${response.body.slice(0, 160)}`);
        if (response.status >= 400) {
          assert.match(String(response.headers['content-type']), /^application\/problem\+json/, `${endpoint.method} ${endpoint.path} as ${actor}: problem+json`);
          assert.equal(response.json.status, response.status);
        }
        if (response.status === 401) assert.equal(response.headers['www-authenticate'], 'Basic realm="manifold"');
        // A created token's plaintext is there exactly when one was made.
        if (response.status === 201 && endpoint.path.endsWith('tokens')) assert.ok(Object.values(TOKEN_PREFIX).some((p) => String(response.json.token).startsWith(p)));
      } finally {
        await attempt.cleanup?.();
      }
    }
  }
  assert.deepEqual(mismatches, []);
});

test('wrong credentials are 401 whatever the route, and never reveal which part was wrong', async () => {
  for (const credentials of [bearer('mfpat_not-a-token'), privateToken('nonsense'), basic(world.users.owner.username, 'wrong password'), basic('nobody', WORLD_PASSWORD), { authorization: 'Digest abc' }]) {
    const response = await call(fixture.app, 'GET', `/api/v1/groups/${G()}`, { auth: credentials });
    assert.equal(response.status, 401);
    assert.equal(response.json.detail, 'invalid credentials');
    assert.equal(response.headers['www-authenticate'], 'Basic realm="manifold"');
  }
});

test('a group may be named by its path wherever it is named by id, with the same permissions', async () => {
  const byPath = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.path}/registries`, { auth: bearer(world.users.guest.token) });
  assert.equal(byPath.status, 200);
  assert.equal(byPath.json.length, 1);
  const outsider = await call(fixture.app, 'GET', `/api/v1/groups/${world.group.path}`, { auth: bearer(world.users.non_member.token) });
  assert.equal(outsider.status, 404);
  const unknown = await call(fixture.app, 'GET', '/api/v1/groups/no-such-group', { auth: bearer(world.users.admin.token) });
  assert.equal(unknown.status, 404);
});
