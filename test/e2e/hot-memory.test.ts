// What the pull path keeps in memory (issue 19): verified registry tokens, the actors behind tokens,
// cache entry lookups and hot manifests. None of it may outlive what it depends on by more than the
// documented bound (`cache.hotMemoryMs`, at most 5 s): a revoked token, a removed member, a purged
// entry and a registry change each stop being served within it, whether the change was made through
// this replica's services or straight in the database (as another replica would). The memory bounds
// evict. Against a real Distribution, on both databases.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, metricValue, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { loadConfig } from '../../src/config.ts';

/** The bound documented in the README (Configuration, `cache.hotMemoryMs`); the test runs with the default. */
const HOT_MEMORY_MS = 2_000;
/** The issue's bound, which the documented one must keep. */
const ISSUE_BOUND_MS = 5_000;

/** A registry token for `repository`, as docker gets one after `login` with these Basic credentials. */
async function registryToken(server: TestManifold, basic: string, repository: string): Promise<string> {
  const response = await fetch(`${server.url}/auth/token?service=manifold&scope=repository:${repository}:pull`, { headers: { authorization: basic } });
  assert.equal(response.status, 200, await response.clone().text());
  return ((await response.json()) as { token: string }).token;
}

/** A personal access token of the admin: its id and plaintext. */
async function accessToken(server: TestManifold): Promise<{ id: number; token: string }> {
  const created = unwrap(await server.manifold.services.tokens.createPersonal(server.admin, { name: `pull-${Math.random().toString(36).slice(2, 8)}`, scopes: ['read_virtual_registry'] }));
  return { id: created.id, token: created.token };
}

/**
 * A revoked token is refused: 401, or 429 once its refusals from this one address met the sign-in
 * throttle (a wrong token counts against its address). Either way, not served.
 */
function refused(status: number): boolean {
  return status === 401 || status === 429;
}

async function manifestStatus(server: TestManifold, path: string, authorization: string): Promise<number> {
  const response = await fetch(`${server.url}/v2/${path}`, { headers: { authorization, accept: OCI_MANIFEST } });
  await response.arrayBuffer();
  return response.status;
}

/**
 * Asks again and again (every 50 ms) whether the change shows (`stopped`), and checks that every request
 * started later than `boundMs` after the change saw it; earlier ones may or may not. Judged by when each
 * request started, so that a loaded machine's slow answers do not blur the bound. Returns when the
 * change was first seen (ms after it), for the message.
 */
async function assertStopsWithin(boundMs: number, since: number, stopped: () => Promise<boolean>): Promise<number> {
  let firstSeen: number | null = null;
  const late: { startedMs: number; stopped: boolean }[] = [];
  while (late.length < 3) {
    const startedMs = performance.now() - since;
    const seen = await stopped();
    if (seen && firstSeen === null) firstSeen = performance.now() - since;
    if (startedMs > boundMs + 50) late.push({ startedMs, stopped: seen });
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // A second of slack: on a machine loaded to the point where database statements time out, the process
  // counts the database as away for a moment and honours credentials it just checked (issue 14, by design).
  const stale = late.find((request) => !request.stopped && request.startedMs > boundMs + 1_000);
  assert.equal(stale, undefined, `still served by a request started ${stale?.startedMs.toFixed(0)} ms after the change (bound ${boundMs} ms)`);
  return firstSeen ?? 0;
}

describe('what the pull path keeps in memory stops being served within its bound', () => {
  const image = buildImage({ layerSizes: [512] });
  let upstream: Distribution;
  let server: TestManifold;
  let groupId: number;
  let upstreamId: number;
  const repository = 'acme/hub/library/app';

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: 'v1' });
    // A small manifest memory, so that the test can fill it past its bound.
    server = await startManifold({ upstream: { allowPrivate: true }, cache: { manifestMemoryBytes: 3 * (image.manifest.bytes.length + 200), manifestMemoryEntries: 100 } });
    const created = await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    groupId = created.group.id;
    upstreamId = created.upstreams[0].upstream_id;
  });
  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('runs with the documented bound, which is within the issue\'s', () => {
    assert.equal(loadConfig({}, {}).cache.hotMemoryMs, HOT_MEMORY_MS);
    assert.ok(HOT_MEMORY_MS <= ISSUE_BOUND_MS);
  });

  it('a revoked access token, and the registry tokens issued for it, stop being served', async () => {
    const { id, token } = await accessToken(server);
    const jwt = await registryToken(server, basicToken(token), repository);
    const path = `${repository}/manifests/v1`;
    // Served, and then from memory (the same answer many times).
    for (let i = 0; i < 5; i++) {
      assert.equal(await manifestStatus(server, path, basicToken(token)), 200);
      assert.equal(await manifestStatus(server, path, `Bearer ${jwt}`), 200);
    }
    const services = server.manifold.services;
    unwrap(await services.tokens.revoke(server.admin, { id }));
    const revokedAt = performance.now();
    await assertStopsWithin(HOT_MEMORY_MS, revokedAt, async () => refused(await manifestStatus(server, path, basicToken(token))));
    await assertStopsWithin(HOT_MEMORY_MS, revokedAt, async () => refused(await manifestStatus(server, path, `Bearer ${jwt}`)));
  });

  it('a token revoked straight in the database (as by another replica) stops within the bound', async () => {
    const { id, token } = await accessToken(server);
    const jwt = await registryToken(server, basicToken(token), repository);
    const path = `${repository}/manifests/v1`;
    for (let i = 0; i < 3; i++) assert.equal(await manifestStatus(server, path, `Bearer ${jwt}`), 200);
    const updated = await server.manifold.database.db.updateTable('access_tokens').set({ revoked_at: Date.now() }).where('id', '=', id).executeTakeFirst();
    // Committed when the statement returns: the bound runs from there.
    const revokedAt = performance.now();
    assert.equal(Number(updated.numUpdatedRows), 1);
    await assertStopsWithin(HOT_MEMORY_MS, revokedAt, async () => refused(await manifestStatus(server, path, `Bearer ${jwt}`)));
  });

  it('a removed member stops being served', async () => {
    const services = server.manifold.services;
    const user = unwrap(await services.users.create(server.admin, { username: 'dev', password: 'a-long-password-for-dev' }));
    unwrap(await services.memberships.add(server.admin, { group_id: groupId, user_id: user.id, role: 'reporter' }));
    const actor = unwrap(await services.authenticator.authenticate({ authorization: `Basic ${Buffer.from('dev:a-long-password-for-dev').toString('base64')}` }, 'api'));
    const token = unwrap(await services.tokens.createPersonal(actor, { name: 'dev-pull', scopes: ['read_virtual_registry'] })).token;
    const jwt = await registryToken(server, basicToken(token), repository);
    const path = `${repository}/manifests/v1`;
    for (let i = 0; i < 3; i++) assert.equal(await manifestStatus(server, path, `Bearer ${jwt}`), 200);
    unwrap(await services.memberships.remove(server.admin, { group_id: groupId, user_id: user.id }));
    const removedAt = performance.now();
    // Outsiders learn nothing: the registry is as unknown to them as one that does not exist.
    await assertStopsWithin(HOT_MEMORY_MS, removedAt, async () => [401, 404].includes(await manifestStatus(server, path, `Bearer ${jwt}`)));
  });

  it('a purged entry is not served from memory: the next pull fetches from the upstream again', async () => {
    const { token } = await accessToken(server);
    const byDigest = `${repository}/manifests/${image.manifest.digest}`;
    for (let i = 0; i < 3; i++) assert.equal(await manifestStatus(server, byDigest, basicToken(token)), 200);
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    assert.equal(await manifestStatus(server, byDigest, basicToken(token)), 200);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'a hot manifest costs the upstream nothing');
    unwrap(await server.manifold.services.entries.markUpstreamForDestruction(server.admin, upstreamId));
    const purgedAt = performance.now();
    await assertStopsWithin(HOT_MEMORY_MS, purgedAt, async () => {
      assert.equal(await manifestStatus(server, byDigest, basicToken(token)), 200);
      await settleLog(upstream);
      return logSince(upstream, mark).some((entry) => entry.path === `/v2/library/app/manifests/${image.manifest.digest}`);
    });
  });

  it('an entry purged straight in the database (as by another replica) stops within the bound', async () => {
    const { token } = await accessToken(server);
    const path = `${repository}/manifests/v1`;
    for (let i = 0; i < 3; i++) assert.equal(await manifestStatus(server, path, basicToken(token)), 200);
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    await server.manifold.database.db.updateTable('cache_entries').set({ status: 2 }).where('upstream_id', '=', upstreamId).where('status', '=', 0).execute();
    const purgedAt = performance.now();
    await assertStopsWithin(HOT_MEMORY_MS, purgedAt, async () => {
      assert.equal(await manifestStatus(server, path, basicToken(token)), 200);
      await settleLog(upstream);
      return logSince(upstream, mark).some((entry) => entry.method === 'GET' && entry.path === '/v2/library/app/manifests/v1');
    });
  });

  it('a registry change (its upstream unlinked) is served within the bound', async () => {
    const services = server.manifold.services;
    const other = unwrap(await services.registries.create(server.admin, groupId, { name: 'mirror' }));
    const link = unwrap(await services.registryUpstreams.link(server.admin, other.id, upstreamId));
    const { token } = await accessToken(server);
    const path = 'acme/mirror/library/app/manifests/v1';
    for (let i = 0; i < 3; i++) assert.equal(await manifestStatus(server, path, basicToken(token)), 200);
    unwrap(await services.registryUpstreams.unlink(server.admin, link.id));
    const changedAt = performance.now();
    await assertStopsWithin(ISSUE_BOUND_MS, changedAt, async () => (await manifestStatus(server, path, basicToken(token))) === 404);
    // Registries are re-read every 5 s at most (their own bound, the issue's).
  });

  it('the manifest memory stays within its byte bound: older manifests are evicted', async () => {
    const { token } = await accessToken(server);
    const tags = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'];
    for (const tag of tags) await pushImage(upstream.url, 'library/app', buildImage({ layerSizes: [64 + tags.indexOf(tag)] }), { tag });
    for (const tag of tags) assert.equal(await manifestStatus(server, `${repository}/manifests/${tag}`, basicToken(token)), 200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const bound = 3 * (image.manifest.bytes.length + 200);
    const bytes = metricValue(metrics, 'manifold_memory_cache_bytes', { cache: 'hot_manifests' });
    assert.ok(bytes > 0 && bytes <= bound, `holds ${bytes} bytes; bound ${bound}`);
    assert.ok(metricValue(metrics, 'manifold_memory_cache_evictions', { cache: 'hot_manifests' }) >= 3, 'the oldest were evicted');
    assert.ok(metricValue(metrics, 'manifold_memory_cache_entries', { cache: 'hot_manifests' }) <= 3);
    // Evicted ones are still served (from storage).
    for (const tag of tags) assert.equal(await manifestStatus(server, `${repository}/manifests/${tag}`, basicToken(token)), 200);
  });
});

