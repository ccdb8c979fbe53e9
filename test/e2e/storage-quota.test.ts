// The size quota with real peers (issue 18): skopeo pulls a rolling stream of new images through a
// cache whose storage.maxBytes is twice the working set, from a real Distribution. Every pull succeeds,
// storage stays under the cap but for the fills in flight, the images pulled most recently stay cached
// (pulling them again costs the upstream nothing), and a layer shared with an evicted image stays while
// a live image uses it. A blob bigger than the quota can ever hold is streamed through, not stored.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Distribution } from '../helpers/distribution.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { buildImage, content, OCI_LAYER, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import type { TestImage } from '../helpers/oci-image.ts';
import { basicToken, metricValue, personalToken } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { assertSameImage, startPullFixture } from '../helpers/pull-fixture.ts';
import type { PullFixture } from '../helpers/pull-fixture.ts';
import type { SkopeoClient } from '../helpers/skopeo.ts';
import { randomBytes } from 'node:crypto';

const KiB = 1024;

/**
 * Bytes of the committed objects under the store's root (the spool's temporary files left out). An object
 * the eviction removes while this walks (listed, then gone) counts as gone.
 */
function storedBytes(server: TestManifold): number {
  let total = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'tmp') walk(full);
      } else total += statSync(full, { throwIfNoEntry: false })?.size ?? 0;
    }
  };
  walk(path.join(server.dataDir, 'objects'));
  return total;
}

describe('storage quota: least recently pulled eviction under a rolling stream of images', () => {
  const base = content(OCI_LAYER, randomBytes(256 * KiB));
  const image = () => buildImage({ sharedLayers: [base], layerSizes: [384 * KiB] });
  const hot = [image(), image()];
  const stream = Array.from({ length: 8 }, image);
  const imageBytes = (one: TestImage) => one.blobs.reduce((sum, blob) => sum + blob.size, 0) + one.manifest.size;
  // The working set: the two hot images (the base layer once).
  const workingSet = imageBytes(hot[0]) + imageBytes(hot[1]) - base.size;
  const maxBytes = 2 * workingSet;
  let fixture: PullFixture;
  let upstream: Distribution;
  let server: TestManifold;
  let client: SkopeoClient;
  let registryId: number;

  before(async () => {
    fixture = await startPullFixture({
      images: [
        ...hot.map((one, index) => ({ repository: `hot/h${index}`, image: one, tag: '1' })),
        ...stream.map((one, index) => ({ repository: `stream/s${index}`, image: one, tag: '1' })),
      ],
      config: { storage: { maxBytes, evictionGraceSeconds: 0, quotaCheckSeconds: 3600 } },
    });
    ({ upstream, server, client, registryId } = fixture);
  });
  after(() => fixture?.stop());

  it('keeps storage under the cap, the recently pulled images cached and shared layers while in use', async () => {
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, storedBytes(server));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    try {
      for (const [index, one] of stream.entries()) {
        const copied = await client.copy(`acme/hub/stream/s${index}`, '1');
        assert.equal(copied.code, 0, copied.stderr);
        assertSameImage(copied.layout, one);
        for (const [h, hotImage] of hot.entries()) {
          const again = await client.copy(`acme/hub/hot/h${h}`, '1');
          assert.equal(again.code, 0, again.stderr);
          assertSameImage(again.layout, hotImage);
        }
      }
      await server.manifold.services.quota.check();
    } finally {
      sampling = false;
      await sampler;
    }
    // One pull's fills at a time: the cap is exceeded by at most the new image's blobs.
    const inFlight = imageBytes(stream[0]) - base.size;
    assert.ok(peak <= maxBytes + inFlight, `peak storage ${peak} bytes is within the cap ${maxBytes} + the fills in flight ${inFlight}`);
    assert.ok(storedBytes(server) <= maxBytes, 'storage ends under the cap');
    const total = imageBytes(hot[0]) + imageBytes(hot[1]) + stream.reduce((sum, one) => sum + imageBytes(one) - base.size, -base.size);
    assert.ok(total > 2 * maxBytes, 'the stream is far larger than the cap (the test evicts for real)');

    // The images pulled most recently are cached: pulling them again costs the upstream nothing.
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    for (const [h, hotImage] of hot.entries()) {
      const again = await client.copy(`acme/hub/hot/h${h}`, '1');
      assert.equal(again.code, 0, again.stderr);
      assertSameImage(again.layout, hotImage);
    }
    const last = stream.length - 1;
    assert.equal((await client.copy(`acme/hub/stream/s${last}`, '1')).code, 0);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).map((entry) => entry.path), [], 'no request reached the upstream');

    // The oldest images of the stream were evicted; the base layer they share with the hot images stays.
    const store = server.manifold.store;
    assert.equal(await store.stat(stream[0].layers[1].digest), null, 'the first image\'s own layer was evicted');
    assert.ok(await store.stat(base.digest), 'the shared base layer is still stored');

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.ok(metricValue(metrics, 'manifold_cache_evictions_total', { reason: 'instance_quota' }) > 0);
    assert.equal(metricValue(metrics, 'manifold_storage_limit_bytes'), maxBytes);

    // Usage: what the registry holds, its hits and misses, what it evicted.
    await server.manifold.services.traffic.flush();
    const token = await personalToken(server, ['read_api']);
    const response = await fetch(`${server.url}/api/v1/registries/${registryId}/usage`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    const usage = await response.json() as { stored_bytes: number; entries: number; hits: number; misses: number; bytes_from_cache: number; bytes_from_upstream: number; evicted_entries: number; evicted_bytes: number; upstreams: Array<{ stored_bytes: number; evicted_entries: number }> };
    assert.ok(usage.stored_bytes > 0 && usage.stored_bytes <= maxBytes, `stored_bytes ${usage.stored_bytes}`);
    assert.ok(usage.evicted_entries > 0 && usage.evicted_bytes > 0);
    assert.ok(usage.hits > 0 && usage.misses > 0);
    assert.ok(usage.bytes_from_cache > 0 && usage.bytes_from_upstream >= total - imageBytes(hot[0]));
    assert.equal(usage.upstreams.length, 1);
    assert.equal(usage.upstreams[0].stored_bytes, usage.stored_bytes);
    assert.equal(usage.upstreams[0].evicted_entries, usage.evicted_entries);

    // Each eviction is recorded for the group.
    const runs = await (await fetch(`${server.url}/api/v1/groups/acme/cleanup_policy/runs`, { headers: { authorization: `Bearer ${token}` } })).json() as Array<{ reason: string; deleted_entries: number }>;
    assert.ok(runs.length > 0 && runs.every((run) => run.reason === 'instance_quota' && run.deleted_entries > 0));
  });

  it('streams a blob the quota can never hold through without storing it', async () => {
    const big = buildImage({ layerSizes: [maxBytes] });
    await pushImage(upstream.url, 'big/one', big, { tag: '1' });
    const before = await (await fetch(`${server.url}/metrics`)).text();
    for (let attempt = 0; attempt < 2; attempt++) {
      const copied = await client.copy('acme/hub/big/one', '1');
      assert.equal(copied.code, 0, copied.stderr);
      assertSameImage(copied.layout, big);
    }
    assert.equal(await server.manifold.store.stat(big.layers[0].digest), null, 'the big layer is not stored');
    await settleLog(upstream);
    assert.equal(upstream.count('GET', `/v2/big/one/blobs/${big.layers[0].digest}`), 2, 'each pull fetched it');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_cache_pass_through_total', { reason: 'over_quota' }) - metricValue(before, 'manifold_cache_pass_through_total', { reason: 'over_quota' }), 2);
  });
});

describe('storage quota: manifests count towards the running storage figure', () => {
  // Images whose blobs are never pulled: only their manifests are stored.
  const images = Array.from({ length: 12 }, () => buildImage({ layerSizes: [16] }));
  const manifestBytes = images.reduce((sum, one) => sum + one.manifest.size, 0);
  const maxBytes = Math.floor(manifestBytes / 3);
  let fixture: PullFixture;
  let server: TestManifold;
  let authorization: string;

  before(async () => {
    fixture = await startPullFixture({
      images: images.map((image, index) => ({ repository: `manifests/m${index}`, image, tag: '1' })),
      // The periodic measure is an hour away: only what fills add to the running figure starts a check.
      config: { storage: { maxBytes, evictionGraceSeconds: 0, quotaCheckSeconds: 3600 } },
    });
    server = fixture.server;
    authorization = basicToken(fixture.token);
  });
  after(() => fixture?.stop());

  it('manifest fills past the high watermark start a quota check that evicts', async () => {
    for (const [index, one] of images.entries()) {
      const response = await fetch(`${server.url}/v2/acme/hub/manifests/m${index}/manifests/1`, { headers: { authorization, accept: OCI_MANIFEST } });
      assert.equal(response.status, 200);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(one.manifest.bytes));
    }
    await server.manifold.services.pull.settle();
    // The check runs in the background; it has evicted once the stored manifests are under the cap.
    const { evictor } = server.manifold.services;
    for (let waited = 0; (await evictor.stored()).bytes > maxBytes && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    const stored = await evictor.stored();
    assert.ok(stored.bytes <= maxBytes, `${stored.bytes} bytes of manifests stored, cap ${maxBytes} (${manifestBytes} bytes were filled)`);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.ok(metricValue(metrics, 'manifold_cache_evictions_total', { reason: 'instance_quota' }) > 0, 'the quota evicted');
  });
});
