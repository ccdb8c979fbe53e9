// Tags over time (DESIGN §3.1 steps 4-6) against real Distributions: a tag that moves upstream, cache
// validity (0 = never revalidate), an upstream that stops, and the priority of two upstreams.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import type { TestImage } from '../helpers/oci-image.ts';
import { createVirtualRegistry, liveEntries, personalToken, startManifold } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { logSince, settleLog, v2 } from '../helpers/e2e.ts';

const HOUR = 3_600_000;
const STALE_WARNING = '299 - "served from cache; upstream unavailable"';

/** Makes the tag entries of `upstreamId` for this path look last checked `ageMs` ago. */
async function age(server: TestManifold, upstreamId: number, relativePath: string, ageMs: number): Promise<void> {
  const result = await server.manifold.database.db.updateTable('cache_entries').set({ upstream_checked_at: Date.now() - ageMs })
    .where('upstream_id', '=', upstreamId).where('relative_path', '=', relativePath).where('status', '=', 0)
    .executeTakeFirst();
  assert.equal(Number(result.numUpdatedRows), 1, `one entry for ${relativePath}`);
  // Time passing, written straight in the database: the process would read it within cache.hotMemoryMs.
  server.manifold.services.entries.invalidateLookups();
}

async function manifestDigest(server: TestManifold, token: string, repository: string, reference: string): Promise<{ digest: string | null; warning: string | null; status: number }> {
  const response = await v2(server, `${repository}/manifests/${reference}`, { token, headers: { accept: OCI_MANIFEST } });
  await response.arrayBuffer();
  return { status: response.status, digest: response.headers.get('docker-content-digest'), warning: response.headers.get('warning') };
}

describe('a tag that moves upstream', () => {
  const [v1, v2image, v3] = [1, 2, 3].map(() => buildImage({ layerSizes: [512] }));
  let upstream: Distribution;
  let server: TestManifold;
  let token: string;
  let hourly: number;
  let never: number;

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', v1, { tag: 'stable' });
    await pushImage(upstream.url, 'library/same', v1, { tag: '1' });
    server = await startManifold();
    hourly = (await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 1 })).upstreams[0].upstream_id;
    never = (await createVirtualRegistry(server, { group: 'pinned', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 0 })).upstreams[0].upstream_id;
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('serves the old digest within the validity window and the new one after it', async () => {
    assert.equal((await manifestDigest(server, token, 'acme/hub/library/app', 'stable')).digest, v1.manifest.digest);
    assert.equal((await manifestDigest(server, token, 'pinned/hub/library/app', 'stable')).digest, v1.manifest.digest);
    await pushImage(upstream.url, 'library/app', v2image, { tag: 'stable' });
    await settleLog(upstream);
    let mark = upstream.accessLog.length;

    assert.equal((await manifestDigest(server, token, 'acme/hub/library/app', 'stable')).digest, v1.manifest.digest, 'within the window: the old digest');
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'a fresh tag is not revalidated');

    await age(server, hourly, '/library/app/manifests/stable', HOUR + 60_000);
    // A HEAD of the stale tag answers with the new digest and does not fill.
    const head = await v2(server, 'acme/hub/library/app/manifests/stable', { token, method: 'HEAD', headers: { accept: OCI_MANIFEST } });
    assert.equal(head.headers.get('docker-content-digest'), v2image.manifest.digest);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).map((e) => `${e.method} ${e.path}`), ['HEAD /v2/library/app/manifests/stable']);
    assert.equal((await liveEntries(server, '/library/app/manifests/stable')).find((row) => row.upstream_id === hourly)!.digest, v1.manifest.digest);
    mark = upstream.accessLog.length;

    const moved = await manifestDigest(server, token, 'acme/hub/library/app', 'stable');
    assert.equal(moved.digest, v2image.manifest.digest, 'after the window: the new digest');
    assert.equal(moved.warning, null);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).map((e) => `${e.method} ${e.path}`), ['HEAD /v2/library/app/manifests/stable', 'GET /v2/library/app/manifests/stable']);
    const [entry] = await liveEntries(server, '/library/app/manifests/stable').then((rows) => rows.filter((row) => row.upstream_id === hourly));
    assert.equal(entry.digest, v2image.manifest.digest, 'the tag entry now names the new digest');

    mark = upstream.accessLog.length;
    assert.equal((await manifestDigest(server, token, 'acme/hub/library/app', 'stable')).digest, v2image.manifest.digest);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'the refreshed tag is fresh again');
  });

  it('never revalidates with cache validity 0, however old the entry', async () => {
    await pushImage(upstream.url, 'library/app', v3, { tag: 'stable' });
    await age(server, never, '/library/app/manifests/stable', 10 * 365 * 24 * HOUR);
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    assert.equal((await manifestDigest(server, token, 'pinned/hub/library/app', 'stable')).digest, v1.manifest.digest);
    const head = await v2(server, 'pinned/hub/library/app/manifests/stable', { token, method: 'HEAD', headers: { accept: OCI_MANIFEST } });
    assert.equal(head.headers.get('docker-content-digest'), v1.manifest.digest);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'no HEAD (nor anything else) went upstream');
  });

  it('revalidates a stale tag whose digest did not change with a HEAD only', async () => {
    assert.equal((await manifestDigest(server, token, 'acme/hub/library/same', '1')).digest, v1.manifest.digest);
    await age(server, hourly, '/library/same/manifests/1', 2 * HOUR);
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    const before = Date.now();
    assert.equal((await manifestDigest(server, token, 'acme/hub/library/same', '1')).digest, v1.manifest.digest);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).map((e) => `${e.method} ${e.path}`), ['HEAD /v2/library/same/manifests/1']);
    const [entry] = (await liveEntries(server, '/library/same/manifests/1')).filter((row) => row.upstream_id === hourly);
    assert.ok(entry.upstream_checked_at >= before, 'the check time was renewed');
  });
});

describe('an upstream that stops', () => {
  const image = buildImage({ layerSizes: [1024, 64 * 1024] });
  const uncached = buildImage({ layerSizes: [256] });
  let upstream: Distribution;
  let server: TestManifold;
  let token: string;
  let upstreamId: number;

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: '1' });
    await pushImage(upstream.url, 'library/app', uncached, { tag: '2' });
    server = await startManifold();
    upstreamId = (await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 1 })).upstreams[0].upstream_id;
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('serves a cached tag with a Warning, a cached digest as usual, and 503 for what is not cached', async () => {
    const client = new SkopeoClient(server.host);
    try {
      assert.equal((await client.login('admin', token)).code, 0);
      assert.equal((await client.copy('acme/hub/library/app', '1')).code, 0);
      await upstream.stop();
      await age(server, upstreamId, '/library/app/manifests/1', 2 * HOUR);

      const stale = await manifestDigest(server, token, 'acme/hub/library/app', '1');
      assert.equal(stale.status, 200);
      assert.equal(stale.digest, image.manifest.digest);
      assert.equal(stale.warning, STALE_WARNING);
      const byDigest = await manifestDigest(server, token, 'acme/hub/library/app', image.manifest.digest);
      assert.equal(byDigest.status, 200);
      assert.equal(byDigest.warning, null, 'content addressed by digest is never stale');
      const blob = await v2(server, `acme/hub/library/app/blobs/${image.layers[1].digest}`, { token });
      assert.equal(blob.status, 200);
      assert.ok(Buffer.from(await blob.arrayBuffer()).equals(image.layers[1].bytes));
      const copied = await client.copy('acme/hub/library/app', '1');
      assert.equal(copied.code, 0, `a real client still pulls the cached image: ${copied.stderr}`);
      assert.equal(copied.layout!.topDigest, image.manifest.digest);

      for (const path of ['acme/hub/library/app/manifests/2', `acme/hub/library/app/manifests/${uncached.manifest.digest}`, `acme/hub/library/app/blobs/${uncached.layers[0].digest}`]) {
        const response = await v2(server, path, { token, headers: { accept: OCI_MANIFEST } });
        assert.equal(response.status, 503, path);
        assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
        const body = (await response.json()) as { errors: { code: string; message: string }[] };
        assert.equal(body.errors[0].code, 'UNAVAILABLE', path);
      }
    } finally {
      client.cleanup();
    }
  });
});

describe('two upstreams', () => {
  const onlySecond = buildImage({ layerSizes: [2048, 32 * 1024] });
  const inFirst = buildImage({ layerSizes: [1024] });
  const inSecond = buildImage({ layerSizes: [1024] });
  let first: Distribution;
  let second: Distribution;
  let server: TestManifold;
  let token: string;
  let upstreamIds: number[];

  before(async () => {
    [first, second] = await Promise.all([Distribution.start(), Distribution.start()]);
    await pushImage(second.url, 'library/only-second', onlySecond, { tag: '1' });
    await pushImage(first.url, 'library/both', inFirst, { tag: '1' });
    await pushImage(second.url, 'library/both', inSecond, { tag: '1' });
    server = await startManifold();
    const created = await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [first.url, second.url] });
    upstreamIds = created.upstreams.map((link) => link.upstream_id);
    token = await personalToken(server);
  });
  after(async () => {
    await server?.stop();
    await Promise.all([first?.stop(), second?.stop()]);
  });

  function assertImage(copied: { code: number; stderr: string; layout: { topDigest: string; blob(d: string): Buffer } | null }, image: TestImage) {
    assert.equal(copied.code, 0, copied.stderr);
    assert.equal(copied.layout!.topDigest, image.manifest.digest);
    for (const blob of image.blobs) assert.ok(copied.layout!.blob(blob.digest).equals(blob.bytes));
  }

  it('the first lacks the image: the second serves it; both have it: the first wins', async () => {
    const client = new SkopeoClient(server.host);
    try {
      assert.equal((await client.login('admin', token)).code, 0);
      assertImage(await client.copy('acme/hub/library/only-second', '1'), onlySecond);
      const entries = await liveEntries(server);
      const mine = entries.filter((row) => row.relative_path.startsWith('/library/only-second/'));
      assert.ok(mine.length > 0 && mine.every((row) => row.upstream_id === upstreamIds[1]), 'cached as the second upstream\'s');

      assertImage(await client.copy('acme/hub/library/both', '1'), inFirst);
      await Promise.all([settleLog(first), settleLog(second)]);
      assert.equal(second.count('GET', '/v2/library/both/manifests/1'), 0, 'the second was not asked for the manifest');
      for (const blob of inFirst.blobs) assert.equal(first.count('GET', `/v2/library/both/blobs/${blob.digest}`), 1);
    } finally {
      client.cleanup();
    }
  });
});
