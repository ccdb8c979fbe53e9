// The product's main job with real peers: skopeo logs in to Manifold with a personal access token and
// copies images that a real CNCF Distribution holds; the second copy comes from the cache.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Distribution } from '../helpers/distribution.ts';
import { buildImage, buildIndex } from '../helpers/oci-image.ts';
import { liveEntries, metricValue } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { assertSameImage, startPullFixture } from '../helpers/pull-fixture.ts';
import type { PullFixture } from '../helpers/pull-fixture.ts';
import type { SkopeoClient } from '../helpers/skopeo.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';

describe('skopeo pulls through Manifold from a real Distribution', () => {
  // A 3-layer image whose largest layer is tens of MB, and a two-platform index.
  const image = buildImage({ layerSizes: [2 * 1024, 400 * 1024, 24 * 1024 * 1024] });
  const index = buildIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }], layerSizes: [8 * 1024, 100 * 1024] });
  let fixture: PullFixture;
  let upstream: Distribution;
  let server: TestManifold;
  let client: SkopeoClient;

  before(async () => {
    fixture = await startPullFixture({ images: [{ repository: 'library/app', image, tag: '1.0' }, { repository: 'library/multi', image: index, tag: '1.0' }] });
    ({ upstream, server, client } = fixture);
  });
  after(() => fixture?.stop());

  it('copies an image with the upstream\'s manifest and layer digests, then serves the second copy from the cache', async () => {
    const first = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(first.code, 0, first.stderr);
    assertSameImage(first.layout, image);
    await settleLog(upstream);
    assert.equal(upstream.count('GET', `/v2/library/app/manifests/1.0`), 1);
    for (const blob of image.blobs) assert.equal(upstream.count('GET', `/v2/library/app/blobs/${blob.digest}`), 1, `blob ${blob.digest} fetched once`);

    const mark = upstream.accessLog.length;
    const second = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(second.code, 0, second.stderr);
    assertSameImage(second.layout, image);
    await settleLog(upstream);
    const later = logSince(upstream, mark).filter((entry) => entry.path.startsWith('/v2/library/'));
    assert.deepEqual(later, [], 'no manifest or blob request reached the upstream for the second copy');

    // Download counters are batched in memory and written on flush, not once per request.
    await server.manifold.services.counter.flush();
    const layerEntries = await liveEntries(server, image.layers[2].digest);
    assert.equal(layerEntries.length, 1);
    assert.equal(Number(layerEntries[0].downloads_count), 2);
    assert.ok(layerEntries[0].downloaded_at);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const total = image.blobs.reduce((sum, blob) => sum + blob.size, 0);
    assert.ok(metricValue(metrics, 'manifold_cache_requests_total', { kind: 'blob', result: 'miss' }) >= image.blobs.length);
    assert.ok(metricValue(metrics, 'manifold_cache_requests_total', { kind: 'blob', result: 'hit' }) >= image.blobs.length);
    assert.ok(metricValue(metrics, 'manifold_cache_requests_total', { kind: 'manifest', result: 'hit' }) >= 1);
    assert.ok(metricValue(metrics, 'manifold_bytes_served_total', { source: 'upstream' }) >= total);
    assert.ok(metricValue(metrics, 'manifold_bytes_served_total', { source: 'cache' }) >= total);
    assert.ok(metricValue(metrics, 'manifold_fills_total', { kind: 'blob', outcome: 'committed' }) >= image.blobs.length);
  });

  it('copies a multi-platform index with --all', async () => {
    const copied = await client.copy('acme/hub/library/multi', '1.0', { all: true });
    assert.equal(copied.code, 0, copied.stderr);
    const layout = copied.layout!;
    assert.equal(layout.topDigest, index.index.digest, 'the index digest is the upstream\'s');
    assert.ok(layout.blob(index.index.digest).equals(index.index.bytes));
    for (const one of index.images) {
      assert.ok(layout.blob(one.manifest.digest).equals(one.manifest.bytes), `manifest of ${one.platform.architecture}`);
      for (const blob of one.blobs) assert.ok(layout.blob(blob.digest).equals(blob.bytes));
    }
  });

  it('copies one platform of the index', async () => {
    const arm = index.images.find((one) => one.platform.architecture === 'arm64')!;
    const amd = index.images.find((one) => one.platform.architecture === 'amd64')!;
    const copied = await client.copy('acme/hub/library/multi', '1.0', { arch: 'arm64' });
    assert.equal(copied.code, 0, copied.stderr);
    assertSameImage(copied.layout, arm);
    const present = new Set(copied.layout!.blobDigests());
    for (const blob of amd.layers) assert.ok(!present.has(blob.digest), 'the other platform\'s layers are not copied');
  });
});
