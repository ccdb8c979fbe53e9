// The client against a real CNCF Distribution (Debian's docker-registry) with htpasswd Basic auth (bcrypt)
// and filesystem storage; the image is pushed by the test through the registry HTTP API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { UpstreamClient } from '../../src/upstream/client.ts';
import type { UpstreamResult, UpstreamTarget } from '../../src/upstream/client.ts';
import { testConnection } from '../../src/upstream/connection-test.ts';
import { Distribution } from '../../test/helpers/distribution.ts';
import { buildImage, buildIndex, pushImage } from '../../test/helpers/oci-image.ts';

function value<T>(result: UpstreamResult<T>): T {
  assert.equal(result.kind, 'found', `expected found, got ${JSON.stringify(result)}`);
  return (result as { value: T }).value;
}

describe('a real CNCF Distribution upstream', () => {
  const user = { username: 'pusher', password: `pw-${process.pid}` };
  let registry: Distribution;
  let client: UpstreamClient;
  let upstream: UpstreamTarget;
  const image = buildImage({ layerSizes: [1024, 300_000, 2 * 1024 * 1024] });
  const index = buildIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }], layerSizes: [4096] });

  before(async () => {
    registry = await Distribution.start({ auth: user });
    await pushImage(registry.url, 'manifold/test-image', image, { tag: 'v1', ...user });
    await pushImage(registry.url, 'manifold/test-index', index, { tag: 'multi', ...user });
    client = new UpstreamClient({
      allowPrivate: true,
      connectTimeoutMs: 2_000,
      headersTimeoutMs: 5_000,
      bodyTimeoutMs: 5_000,
      probeTimeoutMs: 2_000,
      probeConcurrency: 3,
      maxManifestBytes: 4 * 1024 * 1024,
    });
    upstream = { id: 1, url: registry.url, username: user.username, password: user.password, tokenUrl: null };
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
  });

  it('HEAD and GET of the pushed manifest by tag and by digest return its exact bytes and digest', async () => {
    const head = value(await client.headManifest(upstream, 'manifold/test-image', 'v1'));
    assert.equal(head.digest, image.manifest.digest);
    assert.equal(head.mediaType, image.manifest.mediaType);
    assert.equal(head.size, image.manifest.size);

    for (const reference of ['v1', image.manifest.digest]) {
      const got = value(await client.getManifest(upstream, 'manifold/test-image', reference));
      assert.deepEqual(got.bytes, image.manifest.bytes);
      assert.equal(got.headerDigest, image.manifest.digest);
      assert.equal(got.computedDigest, image.manifest.digest);
    }
  });

  it('GET of the pushed index returns it as an OCI index', async () => {
    const got = value(await client.getManifest(upstream, 'manifold/test-index', 'multi'));
    assert.equal(got.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(got.computedDigest, index.index.digest);
    const child = value(await client.getManifest(upstream, 'manifold/test-index', index.images[1].manifest.digest));
    assert.deepEqual(child.bytes, index.images[1].manifest.bytes);
  });

  it('HEAD and GET of every blob stream the pushed bytes', async () => {
    for (const blob of image.blobs) {
      const head = value(await client.headBlob(upstream, 'manifold/test-image', blob.digest));
      assert.equal(head.size, blob.size);
      assert.equal(head.digest, blob.digest);
      const got = value(await client.getBlob(upstream, 'manifold/test-image', blob.digest));
      assert.equal(got.status, 200);
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of got.body) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
      assert.equal(`sha256:${hash.digest('hex')}`, blob.digest);
      assert.equal(size, blob.size);
    }
    const last = image.layers[2];
    await registry.waitForLog((log) => log.some((e) => e.method === 'GET' && e.path === `/v2/manifold/test-image/blobs/${last.digest}` && e.status === 200));
  });

  it('a byte range of a blob is a 206 with the right slice', async () => {
    const layer = image.layers[1];
    const got = value(await client.getBlob(upstream, 'manifold/test-image', layer.digest, { range: { start: 1000, end: 1999 } }));
    assert.equal(got.status, 206);
    assert.equal(got.contentRange, `bytes 1000-1999/${layer.size}`);
    const chunks: Buffer[] = [];
    for await (const chunk of got.body) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), layer.bytes.subarray(1000, 2000));
  });

  it('unknown manifests and blobs are not_found', async () => {
    assert.equal((await client.headManifest(upstream, 'manifold/test-image', 'nope')).kind, 'not_found');
    assert.equal((await client.getBlob(upstream, 'manifold/test-image', `sha256:${'1'.repeat(64)}`)).kind, 'not_found');
  });

  it('wrong credentials are unauthorized; the connection test says so too', async () => {
    const wrong = { ...upstream, id: 2, password: 'not-the-password' };
    const result = await client.getManifest(wrong, 'manifold/test-image', 'v1');
    assert.equal(result.kind, 'unauthorized');
    assert.equal((result as { status: number }).status, 401);
    const tested = await testConnection(client, wrong);
    assert.equal(!tested.ok && tested.reason, 'unauthorized');
    assert.deepEqual(await testConnection(client, upstream), { ok: true, value: { status: 404 } });
  });

  it('sends each manifest GET once after the first challenge (access log)', async () => {
    const path = `/v2/manifold/test-image/manifests/${image.manifest.digest}`;
    const before = registry.count('GET', path);
    await client.getManifest(upstream, 'manifold/test-image', image.manifest.digest);
    await registry.waitForLog(() => registry.count('GET', path) > before);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(registry.count('GET', path) - before, 1);
  });
});
