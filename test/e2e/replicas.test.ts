// Two `manifold serve` replicas on one PostgreSQL schema, each with its own data directory (issue 17,
// "caches across replicas"): a change made through replica A's API takes effect on replica B within a
// second (the change feed: PostgreSQL LISTEN/NOTIFY), although B remembers registries for 5 s; and what
// replicas must share works when it is given in configuration: a registry token issued by A is accepted
// by B, an upstream password saved through A is used by B. Real Distribution upstreams; whether the new
// upstream is used is read from the two upstreams' access logs. PostgreSQL in both CI passes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPostgresSchema } from '../helpers/db.ts';
import type { PostgresSchema } from '../helpers/db.ts';
import { Distribution } from '../helpers/distribution.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { basicToken, metricValue } from '../helpers/manifold.ts';
import type { ManifoldProcess } from '../helpers/manifold-process.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { api, startReplicas } from '../helpers/replicas.ts';
import type { Replicas } from '../helpers/replicas.ts';

/** The bound the README promises for a change to reach every replica. */
const WITHIN_MS = 1_000;
const UPSTREAM_CREDENTIALS = { username: 'mirror', password: 'upstream-password-saved-through-a' };
const DEV = { username: 'dev', password: 'dev-password-of-the-test' };

interface Pulled {
  status: number;
  digest: string | null;
  body: string;
}

async function pullManifest(replica: ManifoldProcess, name: string, reference: string, authorization: string): Promise<Pulled> {
  const response = await fetch(`${replica.url}/v2/${name}/manifests/${reference}`, {
    headers: { authorization, accept: 'application/vnd.oci.image.manifest.v1+json' },
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, digest: response.headers.get('docker-content-digest'), body: await response.text() };
}

/**
 * Polls until `check` holds for a request sent at most WITHIN_MS after the change; returns when that
 * request was sent (what it then takes, e.g. a fill from the new upstream, is not the feed's bound).
 */
async function withinBound(what: string, check: () => Promise<{ done: boolean; saw: string }>): Promise<number> {
  const started = performance.now();
  for (;;) {
    const sentAt = performance.now() - started;
    const result = await check();
    if (result.done) return sentAt;
    if (sentAt > WITHIN_MS) assert.fail(`${what} did not happen within ${WITHIN_MS} ms; last seen: ${result.saw}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function registryToken(replica: ManifoldProcess, scope: string, authorization: string): Promise<string> {
  const response = await fetch(`${replica.url}/auth/token?service=manifold&scope=${encodeURIComponent(scope)}`, { headers: { authorization } });
  const body = await response.text();
  assert.equal(response.status, 200, body);
  return (JSON.parse(body) as { token: string }).token;
}

describe('replicas on one PostgreSQL: a change through one replica takes effect on the others within a second', () => {
  const oldImage = buildImage({ layerSizes: [1024, 2048] });
  const newImage = buildImage({ layerSizes: [3072] });
  let schema: PostgresSchema;
  let first: Distribution;
  let second: Distribution;
  let cluster: Replicas;
  let a: ManifoldProcess;
  let b: ManifoldProcess;
  let registryId: number;
  let groupId: number;
  let firstLinkId: number;
  let adminToken: string;
  const name = 'acme/hub/library/app';

  before(async () => {
    schema = await createPostgresSchema('replicas');
    first = await Distribution.start();
    second = await Distribution.start({ auth: UPSTREAM_CREDENTIALS });
    await pushImage(first.url, 'library/app', oldImage, { tag: '1' });
    await pushImage(second.url, 'library/app', newImage, { tag: '1', ...UPSTREAM_CREDENTIALS });
    // A short way to a long block, for the sign-in throttle shared through the database.
    cluster = await startReplicas(2, schema.url, { MANIFOLD_AUTH_THROTTLE_USERNAME_FAILURES: '3', MANIFOLD_AUTH_THROTTLE_BASE_BLOCK_SECONDS: '60' });
    [a, b] = cluster.replicas;

    const group = await api<{ id: number }>(a, 'POST', '/groups', { path: 'acme' });
    groupId = group.id;
    const registry = await api<{ id: number }>(a, 'POST', `/groups/${groupId}/registries`, { name: 'hub' });
    registryId = registry.id;
    const link = await api<{ id: number }>(a, 'POST', `/registries/${registryId}/upstreams`, { name: 'first', url: first.url });
    firstLinkId = link.id;
    adminToken = (await api<{ token: string }>(a, 'POST', '/user/personal_access_tokens', { name: 'pull', scopes: ['read_virtual_registry'] })).token;
  });
  after(async () => {
    await cluster?.stop();
    await first?.stop();
    await second?.stop();
    await schema?.drop();
  });

  it("a registry's upstream replaced through A: B's next pull goes to the new upstream (with the password saved through A)", async () => {
    // B pulls through the first upstream and so remembers the registry (for 5 s without the feed).
    const before = await pullManifest(b, name, '1', basicToken(adminToken));
    assert.equal(before.status, 200, before.body);
    assert.equal(before.digest, oldImage.manifest.digest);

    await settleLog(first);
    await settleLog(second);
    const firstMark = first.accessLog.length;
    const secondMark = second.accessLog.length;
    // Through A: the second upstream (credentials encrypted by A) is linked, the first unlinked.
    await api(a, 'POST', `/registries/${registryId}/upstreams`, { name: 'second', url: second.url, ...UPSTREAM_CREDENTIALS });
    await api(a, 'DELETE', `/registry_upstreams/${firstLinkId}`);

    const ms = await withinBound('B pulling from the new upstream', async () => {
      const pulled = await pullManifest(b, name, '1', basicToken(adminToken));
      return { done: pulled.status === 200 && pulled.digest === newImage.manifest.digest, saw: `${pulled.status} ${pulled.digest} ${pulled.body.slice(0, 200)}` };
    });
    await settleLog(first);
    await settleLog(second);
    const toSecond = logSince(second, secondMark).filter((entry) => entry.path === '/v2/library/app/manifests/1');
    assert.ok(toSecond.some((entry) => entry.status === 200), `the second upstream served the manifest to B with the password saved through A: ${JSON.stringify(toSecond)}`);
    assert.deepEqual(logSince(first, firstMark), [], 'the first upstream is asked nothing after the change');
    // The blobs come from the new upstream too.
    const layer = await fetch(`${b.url}/v2/${name}/blobs/${newImage.layers[0].digest}`, { headers: { authorization: basicToken(adminToken) } });
    assert.equal(layer.status, 200);
    assert.equal(Buffer.from(await layer.arrayBuffer()).length, newImage.layers[0].bytes.length);
    console.log(`# B's first pull sent ${Math.round(ms)} ms after A's API answered used the new upstream`);

    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    assert.ok(metricValue(metrics, 'manifold_change_notifications_received_total') >= 2, 'B counted the changes it heard');
    assert.equal(metricValue(metrics, 'manifold_change_feed_listening'), 1);
    assert.ok(metricValue(await (await fetch(`${a.url}/metrics`)).text(), 'manifold_change_notifications_sent_total') >= 2, 'A counted the changes it told');
  });

  it('a registry token issued by A is accepted by B; the token it was issued for revoked through A is refused on B within a second', async () => {
    const created = await api<{ id: number; token: string }>(a, 'POST', '/user/personal_access_tokens', { name: 'to-revoke', scopes: ['read_virtual_registry'] });
    const jwt = await registryToken(a, `repository:${name}:pull`, basicToken(created.token));
    assert.equal((await pullManifest(b, name, '1', `Bearer ${jwt}`)).status, 200, 'B accepts the registry token A signed');
    assert.equal((await pullManifest(b, name, '1', basicToken(created.token))).status, 200);

    await api(a, 'DELETE', `/user/personal_access_tokens/${created.id}`);
    const ms = await withinBound('B refusing the revoked token', async () => {
      const [basic, bearer] = await Promise.all([pullManifest(b, name, '1', basicToken(created.token)), pullManifest(b, name, '1', `Bearer ${jwt}`)]);
      return { done: basic.status === 401 && bearer.status === 401, saw: `basic ${basic.status}, registry token ${bearer.status}` };
    });
    console.log(`# B refused the revoked token ${Math.round(ms)} ms after A's API answered`);
  });

  it('a member removed through A loses pull on B within a second', async () => {
    const user = await api<{ id: number }>(a, 'POST', '/users', { username: DEV.username, password: DEV.password, email: 'dev@example.com' });
    await api(a, 'POST', `/groups/${groupId}/members`, { user_id: user.id, role: 'reporter' });
    const devBasic = `Basic ${Buffer.from(`${DEV.username}:${DEV.password}`).toString('base64')}`;
    const jwt = await registryToken(a, `repository:${name}:pull`, devBasic);
    assert.equal((await pullManifest(b, name, '1', `Bearer ${jwt}`)).status, 200);
    assert.equal((await pullManifest(b, name, '1', devBasic)).status, 200);

    await api(a, 'DELETE', `/groups/${groupId}/members/${user.id}`);
    const ms = await withinBound('B refusing the removed member', async () => {
      const [basic, bearer] = await Promise.all([pullManifest(b, name, '1', devBasic), pullManifest(b, name, '1', `Bearer ${jwt}`)]);
      return { done: basic.status !== 200 && bearer.status !== 200, saw: `password ${basic.status}, registry token ${bearer.status}` };
    });
    // Refused as a registry refuses what one may not see: never a 500, never the manifest.
    for (const pulled of await Promise.all([pullManifest(b, name, '1', devBasic), pullManifest(b, name, '1', `Bearer ${jwt}`)])) {
      assert.ok([401, 403, 404].includes(pulled.status), `${pulled.status} ${pulled.body}`);
      assert.doesNotMatch(pulled.body, /schemaVersion/);
    }
    console.log(`# B refused the removed member ${Math.round(ms)} ms after A's API answered`);
  });

  it('the mirror routing table changed through A routes on B within a second', async () => {
    const route = await api<{ id: number }>(a, 'POST', '/mirror_routes', { host: 'docker.io', registry_id: registryId, default: true });
    await withinBound('B routing by the new default route', async () => {
      const pulled = await pullManifest(b, 'library/app', '1', basicToken(adminToken));
      return { done: pulled.status === 200, saw: `${pulled.status} ${pulled.body.slice(0, 200)}` };
    });
    await api(a, 'DELETE', `/mirror_routes/${route.id}`);
    await withinBound('B dropping the deleted route', async () => {
      const pulled = await pullManifest(b, 'library/app', '1', basicToken(adminToken));
      return { done: pulled.status === 404, saw: `${pulled.status} ${pulled.body.slice(0, 200)}` };
    });
  });

  it('password guesses through A block the username on B too (the throttle counts in PostgreSQL)', async () => {
    await api(a, 'POST', '/users', { username: 'victim', password: 'the-right-password-1', email: 'victim@example.com' });
    const basic = (password: string) => `Basic ${Buffer.from(`victim:${password}`).toString('base64')}`;
    const tokenAt = (replica: ManifoldProcess, password: string) => fetch(`${replica.url}/auth/token?service=manifold`, { headers: { authorization: basic(password) } });
    // 3 free failures, the 4th goes on but blocks the username for 60 s.
    for (let i = 0; i < 4; i++) assert.equal((await tokenAt(a, `wrong-${i}`)).status, 401);
    const onB = await tokenAt(b, 'the-right-password-1');
    assert.equal(onB.status, 429, `B refuses the blocked username even with the right password: ${await onB.text()}`);
    assert.ok(Number(onB.headers.get('retry-after')) > 30);
  });

  it('until then, neither replica answered a 500', async () => {
    for (const replica of [a, b]) assert.doesNotMatch(replica.output(), /"status":5\d\d,/);
  });
});
