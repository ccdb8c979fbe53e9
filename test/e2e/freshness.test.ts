// Freshness and availability end to end (DESIGN §3.5, issue 16): a frozen upstream opens its circuit,
// a 429 with Retry-After stops revalidations until the reset, stale_while_revalidate refreshes in the
// background once per tag, rules by tag pattern (max_age, pin) against a real Distribution, and the
// negative cache for upstream 404s. The time bounds below are the issue's own "must show" figures;
// where a loaded CI machine could blur them, the bound is the median and the maximum is kept well
// under the timeout a request would otherwise wait (stated at each assertion).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { FakeRegistry } from '../helpers/fake-registry.ts';
import { SlowRegistry } from '../helpers/slow-registry.ts';
import { buildImage, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import { createVirtualRegistry, metricValue, personalToken, startManifold } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { logSince, settleLog, until, v2 } from '../helpers/e2e.ts';

const STALE_WARNING = '299 - "served from cache; upstream unavailable"';
/** Where the test is not about the revalidation timeout, a loaded machine must not trip it. */
const PATIENT = { upstream: { allowPrivate: true, revalidateTimeoutMs: 15_000 } };

/** Makes the live entries of `upstreamId` for this path look last checked `ageMs` ago. */
async function age(server: TestManifold, upstreamId: number, relativePath: string, ageMs: number): Promise<void> {
  const result = await server.manifold.database.db.updateTable('cache_entries').set({ upstream_checked_at: Date.now() - ageMs })
    .where('upstream_id', '=', upstreamId).where('relative_path', '=', relativePath).where('status', '=', 0)
    .executeTakeFirst();
  assert.equal(Number(result.numUpdatedRows), 1, `one entry for ${relativePath}`);
  // Time passing, written straight in the database: the process would read it within cache.hotMemoryMs.
  server.manifold.services.entries.invalidateLookups();
}

interface Pulled {
  status: number;
  digest: string | null;
  warning: string | null;
  ms: number;
  body: { errors?: { code: string; message: string }[] } | null;
}

async function getManifest(server: TestManifold, token: string, path: string, method = 'GET'): Promise<Pulled> {
  const started = performance.now();
  const response = await v2(server, path, { token, method, headers: { accept: OCI_MANIFEST } });
  const text = method === 'HEAD' ? '' : await response.text();
  const ms = performance.now() - started;
  let body = null;
  if (response.status >= 400 && text) body = JSON.parse(text);
  return { status: response.status, digest: response.headers.get('docker-content-digest'), warning: response.headers.get('warning'), ms, body };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function apiGet(server: TestManifold, token: string, path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200, path);
  return (await response.json()) as Record<string, unknown>;
}

describe('a frozen upstream (accepts connections, never answers)', () => {
  // The revalidation timeout is 1.5 s here (default 2 s) so that the bound, 2.5 s for the first
  // pull, keeps a second of room on a loaded CI machine; the bound asserted is the issue's.
  const revalidateTimeoutMs = 1_500;
  const image = buildImage({ layerSizes: [256] });
  let upstream: FakeRegistry;
  let server: TestManifold;
  let token: string;
  let apiToken: string;
  let upstreamId: number;

  before(async () => {
    upstream = await FakeRegistry.start();
    upstream.addImage('library/app', image, ['1']);
    server = await startManifold({ upstream: { allowPrivate: true, revalidateTimeoutMs } });
    upstreamId = (await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 1 })).upstreams[0].upstream_id;
    token = await personalToken(server);
    apiToken = await personalToken(server, ['api']);
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('serves the stale tag within 2.5 s, then within the open circuit at once; no request waits twice; the state is shown', async () => {
    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/1')).digest, image.manifest.digest);
    await age(server, upstreamId, '/library/app/manifests/1', 2 * 3_600_000);
    upstream.fault({ fault: { kind: 'hang' } });
    const heads = () => upstream.received('HEAD', '/v2/library/app/manifests/1').length;

    const first = await getManifest(server, token, 'acme/hub/library/app/manifests/1');
    assert.equal(first.status, 200);
    assert.equal(first.digest, image.manifest.digest);
    assert.equal(first.warning, STALE_WARNING);
    assert.ok(first.ms < 2_500, `the first pull waited the revalidation timeout (1.5 s) only: ${first.ms.toFixed(0)} ms`);
    assert.equal(heads(), 1);

    const next: Pulled[] = [];
    for (let i = 0; i < 10; i++) next.push(await getManifest(server, token, 'acme/hub/library/app/manifests/1'));
    for (const pulled of next) {
      assert.equal(pulled.status, 200);
      assert.equal(pulled.digest, image.manifest.digest);
      assert.equal(pulled.warning, STALE_WARNING);
    }
    const times = next.map((p) => p.ms);
    // The bound is 100 ms; the median carries it, the maximum only proves no timeout was waited.
    assert.ok(median(times) < 100, `within the open circuit: median ${median(times).toFixed(1)} ms (${times.map((t) => t.toFixed(0)).join(', ')})`);
    assert.ok(Math.max(...times) < 1_000, `no request waited for a timeout again: max ${Math.max(...times).toFixed(0)} ms`);
    assert.equal(heads(), 1, 'the upstream was not asked again within the window');

    // A miss while the circuit is open fails at once, and the message says which upstream and why.
    const missed = await getManifest(server, token, 'acme/hub/library/app/manifests/2');
    assert.equal(missed.status, 503);
    assert.ok(missed.ms < 1_000, `a miss does not wait for the frozen upstream: ${missed.ms.toFixed(0)} ms`);
    assert.match(missed.body!.errors![0].message, /^upstream upstream-1: no answer within 1.5 s; not asked again for \d+(\.\d)? s; no cached copy$/);

    const shown = await apiGet(server, apiToken, `/upstreams/${upstreamId}`);
    const health = shown.health as Record<string, unknown>;
    assert.equal(health.state, 'circuit_open');
    assert.equal(health.last_failure, 'no answer within 1.5 s');
    assert.ok((health.circuit_open_until as number) > Date.now());
    assert.ok((health.revalidations_skipped as number) >= 10);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_upstream_state', { upstream: String(upstreamId), state: 'circuit_open' }), 1);
    assert.ok(metricValue(metrics, 'manifold_upstream_revalidations_skipped_total', { upstream: String(upstreamId), state: 'circuit_open' }) >= 10);
  });
});

describe('an upstream answering 429 with Retry-After', () => {
  const image = buildImage({ layerSizes: [512, 1024] });
  let upstream: FakeRegistry;
  let server: TestManifold;
  let token: string;
  let upstreamId: number;

  before(async () => {
    upstream = await FakeRegistry.start();
    upstream.addImage('library/app', image, ['1']);
    server = await startManifold(PATIENT);
    upstreamId = (await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 1 })).upstreams[0].upstream_id;
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('keeps serving cached images for 100 pulls without revalidating until the reset, then revalidates again', async () => {
    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/1')).status, 200);
    for (const blob of image.blobs) assert.equal((await v2(server, `acme/hub/library/app/blobs/${blob.digest}`, { token }).then(async (r) => (await r.arrayBuffer(), r.status))), 200);
    await age(server, upstreamId, '/library/app/manifests/1', 2 * 3_600_000);
    // Long enough for 100 pulls on a loaded CI machine (measured: up to 16 s); the test waits out the rest.
    const retryAfter = 30;
    upstream.fault({ path: /\/manifests\//, fault: { kind: 'status', status: 429, headers: { 'retry-after': String(retryAfter), 'content-type': 'application/json' }, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}' } });
    const limitedAt = Date.now();
    const mark = upstream.requests.length;

    for (let i = 0; i < 100; i++) {
      const pulled = await getManifest(server, token, 'acme/hub/library/app/manifests/1');
      assert.equal(pulled.status, 200, `pull ${i + 1}`);
      assert.equal(pulled.digest, image.manifest.digest);
      assert.equal(pulled.warning, STALE_WARNING);
      const layer = await v2(server, `acme/hub/library/app/blobs/${image.layers[1].digest}`, { token });
      assert.equal(layer.status, 200);
      assert.ok(Buffer.from(await layer.arrayBuffer()).equals(image.layers[1].bytes));
    }
    const during = upstream.requests.slice(mark);
    assert.ok(Date.now() - limitedAt < retryAfter * 1000, 'the 100 pulls ran within the limited window (else the count below proves less)');
    assert.deepEqual(during.map((r) => `${r.method} ${r.path}`), ['HEAD /v2/library/app/manifests/1'], 'one revalidation (answered 429), none after it until the reset');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_upstream_revalidations_skipped_total', { upstream: String(upstreamId), state: 'rate_limited' }), 99, 'what the limited state saved');

    // After the reset the upstream is asked again.
    upstream.clearFaults();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, limitedAt + retryAfter * 1000 + 100 - Date.now())));
    // The limit runs from when Manifold read the 429, which a loaded machine does a moment after limitedAt.
    await until(() => server.manifold.services.pull.health.condition(upstreamId).limitedUntil === null, 'the rate limit to end', 10_000);
    const again = upstream.requests.length;
    const revalidated = await getManifest(server, token, 'acme/hub/library/app/manifests/1');
    assert.equal(revalidated.warning, null);
    assert.deepEqual(upstream.requests.slice(again).map((r) => `${r.method} ${r.path}`), ['HEAD /v2/library/app/manifests/1']);
  });
});

describe('stale_while_revalidate', () => {
  const [v1, v2image] = [1, 2].map(() => buildImage({ layerSizes: [256] }));
  let upstream: SlowRegistry;
  let server: TestManifold;
  let token: string;
  let upstreamId: number;

  before(async () => {
    upstream = await SlowRegistry.start();
    upstream.addImage('library/app', v1, ['latest']);
    server = await startManifold(PATIENT);
    upstreamId = (await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], freshness: { max_age: 60, stale_while_revalidate: 3600 } })).upstreams[0].upstream_id;
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('serves the stale tag at once, refreshes it once in the background for 16 concurrent requests, then serves the moved tag', async () => {
    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/latest')).digest, v1.manifest.digest);
    await age(server, upstreamId, '/library/app/manifests/latest', 120_000);
    upstream.addImage('library/app', v2image, ['latest']);
    // The upstream holds the refresh's HEAD: every answer below comes from the cache, not from it.
    const hold = upstream.holdNext('HEAD', '/v2/library/app/manifests/latest');
    const pulled = await Promise.all(Array.from({ length: 16 }, () => getManifest(server, token, 'acme/hub/library/app/manifests/latest')));
    for (const one of pulled) {
      assert.equal(one.status, 200);
      assert.equal(one.digest, v1.manifest.digest, 'the cached (stale) digest, at once');
      assert.equal(one.warning, null, 'stale by policy, not because the upstream failed');
    }
    await hold.reached;
    assert.equal(upstream.received('HEAD', '/v2/library/app/manifests/latest').length, 1, '16 concurrent stale requests, one upstream HEAD');
    hold.release();
    await until(async () => (await getManifest(server, token, 'acme/hub/library/app/manifests/latest')).digest === v2image.manifest.digest, 'the moved tag after the background refresh');
    assert.equal(upstream.received('HEAD', '/v2/library/app/manifests/latest').length, 1);
    assert.equal(upstream.received('GET', '/v2/library/app/manifests/latest').length, 2, 'the first fill and the refresh');
  });
});

describe('rules by tag pattern against a real Distribution', () => {
  const [v1, v2image] = [1, 2].map(() => buildImage({ layerSizes: [256] }));
  let upstream: Distribution;
  let server: TestManifold;
  let token: string;
  let upstreamId: number;

  before(async () => {
    upstream = await Distribution.start();
    for (const tag of ['latest', 'stable', 'v1.0.0']) await pushImage(upstream.url, 'library/app', v1, { tag });
    server = await startManifold(PATIENT);
    upstreamId = (await createVirtualRegistry(server, {
      group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 24,
      freshness: { rules: [{ match: 'library/*:latest', max_age: 5 }, { match: '*:v*.*.*', pin: true }] },
    })).upstreams[0].upstream_id;
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('max_age 5 s follows the moved tag within 5 s; other tags keep their policy; pin keeps the first digest', async () => {
    for (const tag of ['latest', 'stable', 'v1.0.0']) assert.equal((await getManifest(server, token, `acme/hub/library/app/manifests/${tag}`)).digest, v1.manifest.digest);
    for (const tag of ['latest', 'stable', 'v1.0.0']) await pushImage(upstream.url, 'library/app', v2image, { tag });
    const movedAt = Date.now();
    await until(async () => (await getManifest(server, token, 'acme/hub/library/app/manifests/latest')).digest === v2image.manifest.digest, 'latest to follow its upstream', 10_000);
    const followedMs = Date.now() - movedAt;
    // max_age is 5 s from the first fill (before the push): the bound holds with room for the poll.
    assert.ok(followedMs <= 5_500, `the moved tag was served after ${followedMs} ms`);

    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/stable')).digest, v1.manifest.digest, 'stable keeps the upstream\'s 24 h');
    await age(server, upstreamId, '/library/app/manifests/v1.0.0', 30 * 24 * 3_600_000);
    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/v1.0.0')).digest, v1.manifest.digest, 'a pinned tag keeps its first digest, however old');
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'neither was revalidated');

    const purged = await server.manifold.database.db.updateTable('cache_entries').set({ status: 2 })
      .where('upstream_id', '=', upstreamId).where('relative_path', '=', '/library/app/manifests/v1.0.0').executeTakeFirst();
    assert.equal(Number(purged.numUpdatedRows), 1);
    server.manifold.services.entries.invalidateLookups();
    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/v1.0.0')).digest, v2image.manifest.digest, 'until purged');
  });
});

describe('the negative cache for upstream 404s', () => {
  const image = buildImage({ layerSizes: [256] });
  let first: FakeRegistry;
  let second: FakeRegistry;
  let server: TestManifold;
  let token: string;

  before(async () => {
    [first, second] = await Promise.all([FakeRegistry.start(), FakeRegistry.start()]);
    second.addImage('library/app', image, ['1']);
    server = await startManifold();
    await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [first.url, second.url], freshness: { negative_cache: 30 } });
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await Promise.all([first?.close(), second?.close()]);
  });

  it('a missing tag asked 50 times costs each upstream one request; a tag one of them has is still found', async () => {
    for (let i = 0; i < 50; i++) {
      const missing = await getManifest(server, token, 'acme/hub/library/app/manifests/nope');
      assert.equal(missing.status, 404, `request ${i + 1}`);
      assert.equal(missing.body!.errors![0].code, 'MANIFEST_UNKNOWN');
    }
    for (const registry of [first, second]) assert.equal(registry.received(undefined, '/v2/library/app/manifests/nope').length, 1);
    const blob = `acme/hub/library/app/blobs/sha256:${'0'.repeat(64)}`;
    for (let i = 0; i < 10; i++) assert.equal((await v2(server, blob, { token }).then(async (r) => (await r.arrayBuffer(), r.status))), 404);
    for (const registry of [first, second]) assert.equal(registry.received(undefined, `/v2/library/app/blobs/sha256:${'0'.repeat(64)}`).length, 1, 'blobs too');

    assert.equal((await getManifest(server, token, 'acme/hub/library/app/manifests/1')).digest, image.manifest.digest, 'a 404 of the first upstream for one tag says nothing of another');
    // The first upstream's 404 for tag 1 is remembered now: the next miss of it asks only the second.
    assert.equal(first.received(undefined, '/v2/library/app/manifests/1').length, 1);
  });
});
