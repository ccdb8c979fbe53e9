// PostgreSQL restarted under load with two replicas on it (issue 17): the replicas recover without a
// restart; meanwhile cached blobs are served where the database is not needed, and every other request
// gets a clear 503 (never a 500); afterwards each replica listens for the others' changes again, so a
// change through A reaches B within a second. A PostgreSQL cluster of the test's own (stopped and
// started again), so it runs the same way in both CI passes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { until } from '../helpers/e2e.ts';
import { basicToken, metricValue } from '../helpers/manifold.ts';
import type { ManifoldProcess } from '../helpers/manifold-process.ts';
import { buildImage, pushImage, sha256 } from '../helpers/oci-image.ts';
import { startPrivatePostgres } from '../helpers/private-postgres.ts';
import type { PrivatePostgres } from '../helpers/private-postgres.ts';
import { ADMIN, api, startReplicas } from '../helpers/replicas.ts';
import type { Replicas } from '../helpers/replicas.ts';

const OUTAGE_MS = 6_000;
const DEV_PASSWORD = 'dev-password-of-the-test';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(url: string, authorization?: string): Promise<Answer> {
  const response = await fetch(url, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(15_000) });
  return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
}

describe('PostgreSQL restarted under load with two replicas', () => {
  const image = buildImage({ layerSizes: [2048, 128 * 1024] });
  const name = 'acme/hub/library/app';
  let postgres: PrivatePostgres;
  let upstream: Distribution;
  let cluster: Replicas;
  let a: ManifoldProcess;
  let b: ManifoldProcess;
  let token: string;
  let registryId: number;

  before(async () => {
    postgres = await startPrivatePostgres();
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: '1' });
    cluster = await startReplicas(2, postgres.url);
    [a, b] = cluster.replicas;
    const group = await api<{ id: number }>(a, 'POST', '/groups', { path: 'acme' });
    registryId = (await api<{ id: number }>(a, 'POST', `/groups/${group.id}/registries`, { name: 'hub' })).id;
    await api(a, 'POST', `/registries/${registryId}/upstreams`, { name: 'upstream', url: upstream.url });
    // Pulls use a member's token while the admin makes changes elsewhere (new groups) under the load.
    const dev = await api<{ id: number }>(a, 'POST', '/users', { username: 'dev', password: DEV_PASSWORD, email: 'dev@example.com' });
    await api(a, 'POST', `/groups/${group.id}/members`, { user_id: dev.id, role: 'reporter' });
    const devBasic = `Basic ${Buffer.from(`dev:${DEV_PASSWORD}`).toString('base64')}`;
    token = (await api<{ token: string }>(a, 'POST', '/user/personal_access_tokens', { name: 'pull', scopes: ['read_virtual_registry'] }, { authorization: devBasic })).token;
    // Each replica has its own object store here: both pull once, so both have the blobs.
    for (const replica of [a, b]) {
      assert.equal((await get(`${replica.url}/v2/${name}/manifests/1`, basicToken(token))).status, 200);
      for (const blob of image.blobs) assert.equal((await get(`${replica.url}/v2/${name}/blobs/${blob.digest}`, basicToken(token))).status, 200);
    }
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
    await postgres?.destroy();
  });

  it('cached blobs are served throughout, the rest is 503 (never 500); both recover without a restart and hear each other again', async () => {
    const pids = [a.pid, b.pid];
    let stop = false;
    let outage = false;
    const cached: { replica: string; status: number; during: boolean; body?: string; at?: number }[] = [];
    const others: { what: string; status: number; retryAfter: string | null; body: string }[] = [];
    const layer = image.layers[1];
    const loops = [a, b].flatMap((replica) => [
      (async () => {
        while (!stop) {
          const during = outage;
          const got = await get(`${replica.url}/v2/${name}/blobs/${layer.digest}`, basicToken(token)).catch(() => null);
          const good = got !== null && got.status === 200 && sha256(got.body) === layer.digest;
          cached.push({ replica: replica.url, status: good ? 200 : -(got?.status ?? 0), during, ...(good ? {} : { body: got?.body.toString().slice(0, 300), at: Date.now() }) });
        }
      })(),
      (async () => {
        const requests: [string, () => Promise<Answer>][] = [
          ['GET /api/v1/groups', () => get(`${replica.url}/api/v1/groups`, ADMIN)],
          ['GET /auth/token', () => get(`${replica.url}/auth/token?service=manifold&scope=repository:${name}:pull`, basicToken(token))],
          ['a tag', () => get(`${replica.url}/v2/${name}/manifests/1`, basicToken(token))],
          ['POST /api/v1/groups', async () => {
            const response = await fetch(`${replica.url}/api/v1/groups`, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/json' }, body: JSON.stringify({ path: `g${Math.random().toString(36).slice(2, 10)}` }), signal: AbortSignal.timeout(15_000) });
            return { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
          }],
        ];
        for (let i = 0; !stop; i++) {
          const [what, request] = requests[i % requests.length];
          const got = await request().catch((error: Error) => ({ status: 0, headers: new Headers(), body: Buffer.from(error.message) }));
          others.push({ what, status: got.status, retryAfter: got.headers.get('retry-after'), body: got.body.toString().slice(0, 300) });
          await sleep(50);
        }
      })(),
    ]);
    try {
      await sleep(500);
      await postgres.stop();
      outage = true;
      await sleep(OUTAGE_MS);
      await postgres.start();
      outage = false;
      for (const replica of [a, b]) await until(async () => (await get(`${replica.url}/readyz`)).status === 200, `${replica.url} ready again`, 15_000);
      await sleep(500);
    } finally {
      stop = true;
      await Promise.all(loops);
    }

    assert.deepEqual([a.pid, b.pid], pids);
    for (const replica of [a, b]) assert.equal(replica.child.exitCode, null, `a replica exited:\n${replica.output().slice(-3000)}`);
    const during = cached.filter((request) => request.during);
    assert.ok(during.length >= 20, `cached blobs were asked for during the outage (${during.length})`);
    assert.deepEqual(cached.filter((request) => request.status !== 200), [], 'every cached blob was served with the right bytes, before, during and after');
    const refused = others.filter((request) => request.status !== 200 && request.status !== 201);
    assert.ok(refused.length > 0, 'requests that need the database were refused during the outage');
    for (const request of refused) {
      assert.equal(request.status, 503, `${request.what}: ${request.status} ${request.body}`);
      assert.ok(Number(request.retryAfter) > 0, `${request.what}: Retry-After`);
    }

    // Both listen again: a change through A reaches B within a second (B remembers routes for 5 s).
    for (const replica of [a, b]) {
      await until(async () => metricValue(await (await fetch(`${replica.url}/metrics`)).text(), 'manifold_change_feed_listening') === 1, `${replica.url} listening again`, 10_000);
      assert.ok(metricValue(await (await fetch(`${replica.url}/metrics`)).text(), 'manifold_change_feed_listens_total') >= 2, 'listened again after the restart');
    }
    assert.equal((await get(`${b.url}/v2/library/app/manifests/1`, basicToken(token))).status, 404, 'no default route yet (B now remembers that)');
    await api(a, 'POST', '/mirror_routes', { host: 'docker.io', registry_id: registryId, default: true });
    // The bound is on when the request is sent (what it then takes under load is not the feed's).
    const started = performance.now();
    for (;;) {
      const sentAt = performance.now() - started;
      const routed = await get(`${b.url}/v2/library/app/manifests/1`, basicToken(token));
      if (routed.status === 200) {
        console.log(`# after the restart, B's first request sent ${Math.round(sentAt)} ms after A's API answered used A's new route`);
        break;
      }
      assert.ok(sentAt < 1_000, `B did not route by the route created through A within a second: ${routed.status} ${routed.body.toString().slice(0, 200)}`);
      await sleep(20);
    }
    for (const replica of [a, b]) assert.doesNotMatch(replica.output(), /"status":500,/);
  });
});
