import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamClient } from '../../src/upstream/client.ts';
import type { UpstreamTarget } from '../../src/upstream/client.ts';
import { connectionTestImage, testConnection } from '../../src/upstream/connection-test.ts';
import { FakeRegistry } from '../../test/helpers/fake-registry.ts';
import { buildImage } from '../../test/helpers/oci-image.ts';

describe('upstream connection test', () => {
  let registry: FakeRegistry;
  let client: UpstreamClient;
  const target = (extra: Partial<UpstreamTarget> = {}): UpstreamTarget => ({
    id: 0,
    url: registry.url,
    username: 'frank',
    password: 'open sesame',
    tokenUrl: null,
    ...extra,
  });

  before(async () => {
    registry = await FakeRegistry.start({ auth: { kind: 'basic', username: 'frank', password: 'open sesame' } });
    client = new UpstreamClient({
      allowPrivate: true,
      connectTimeoutMs: 1_000,
      headersTimeoutMs: 1_000,
      bodyTimeoutMs: 1_000,
      probeTimeoutMs: 1_000,
      probeConcurrency: 3,
      maxManifestBytes: 4 * 1024 * 1024,
    });
  });
  after(async () => {
    await client.close();
    await registry.close();
  });

  it('succeeds with 404 when the credentials work and the test image does not exist', async () => {
    const result = await testConnection(client, target());
    assert.deepEqual(result, { ok: true, value: { status: 404 } });
    const head = registry.received('HEAD', '/v2/manifold-connection-test/manifests/latest').at(-1)!;
    assert.match(String(head.headers.authorization), /^Basic /);
  });

  it('succeeds with 200 when the image exists', async () => {
    registry.addImage('manifold-connection-test', buildImage({ layerSizes: [1] }), ['latest']);
    assert.deepEqual(await testConnection(client, target()), { ok: true, value: { status: 200 } });
  });

  it('reports wrong credentials as unauthorized with the status and the upstream message', async () => {
    const result = await testConnection(client, target({ password: 'wrong' }));
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, 'unauthorized');
    assert.match(!result.ok ? result.message : '', /HTTP 401: UNAUTHORIZED: authentication required/);
    assert.doesNotMatch(!result.ok ? result.message : '', /wrong/);
  });

  it('reports a server error with its status and message', async () => {
    registry.fault({ path: '/v2/manifold-connection-test/manifests/latest', fault: { kind: 'status', status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"storage offline"}]}' } });
    try {
      const result = await testConnection(client, target());
      assert.equal(!result.ok && result.reason, 'upstream_unavailable');
      assert.match(!result.ok ? result.message : '', /HTTP 500: UNKNOWN: storage offline/);
    } finally {
      registry.clearFaults();
    }
  });

  it('reports an upstream that does not answer', async () => {
    const gone = await FakeRegistry.start();
    const url = gone.url;
    await gone.close();
    const result = await testConnection(client, target({ url }));
    assert.equal(!result.ok && result.reason, 'upstream_unavailable');
    assert.match(!result.ok ? result.message : '', /connection refused/);
  });

  it('uses library/alpine on Docker Hub', () => {
    assert.equal(connectionTestImage(target({ url: 'https://registry-1.docker.io' })), 'library/alpine');
    assert.equal(connectionTestImage(target({ url: 'https://ghcr.io' })), 'manifold-connection-test');
  });
});
