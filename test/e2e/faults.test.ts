// Fills that go wrong (DESIGN §3.2): an upstream whose blob bytes do not match the digest, and a client
// that walks away in the middle of a layer. A fake upstream makes both happen on demand.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { buildImage } from '../helpers/oci-image.ts';
import { basicToken, liveEntries, metricValue, startCache } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SlowRegistry } from '../helpers/slow-registry.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { fillFollowers, rawGet, until, v2 } from '../helpers/e2e.ts';

describe('an upstream that serves a blob whose bytes do not match its digest', () => {
  const image = buildImage({ layerSizes: [1024 * 1024] });
  const layer = image.layers[0];
  let upstream: SlowRegistry;
  let server: TestManifold;
  let token: string;

  before(async () => {
    upstream = await SlowRegistry.start();
    upstream.addImage('library/bad', image, ['1']);
    ({ server, token } = await startCache([upstream.url]));
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('aborts every attached response, stores nothing, and succeeds once the upstream is fixed', async () => {
    // Same length, wrong bytes: only the digest can tell.
    upstream.corrupt(layer.digest, randomBytes(layer.size));
    const gate = upstream.gate(layer.digest, layer.size / 2);
    const url = `${server.url}/v2/acme/hub/library/bad/blobs/${layer.digest}`;
    const headers = { authorization: basicToken(token) };
    const first = rawGet(url, headers);
    await gate.reached;
    const others = [rawGet(url, headers), rawGet(url, headers)];
    await until(async () => (await fillFollowers(server)) === 3, 'three responses attached to the fill');
    gate.release();

    for (const response of await Promise.all([first, ...others])) {
      assert.equal(response.complete, false, 'the client never gets a complete response');
      assert.ok(response.status === 200 || response.status === 503);
      if (response.status === 200) {
        assert.equal(response.headers['content-length'], String(layer.size));
        assert.ok(response.body.length < layer.size, `a truncated body (${response.body.length} of ${layer.size} bytes)`);
      }
    }
    assert.equal(upstream.received('GET', `/v2/library/bad/blobs/${layer.digest}`).length, 1, 'the three shared one fetch');
    assert.deepEqual(await liveEntries(server, `/blobs/${layer.digest}`), [], 'no cache entry');
    assert.equal(await server.manifold.store.stat(layer.digest), null, 'no stored object');
    await until(() => readdirSync(path.join(server.dataDir, 'objects', 'tmp')).length === 0, 'the temporary object to be removed');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_fills_total', { kind: 'blob', outcome: 'verification_failed' }), 1);

    // A real client's pull fails too, and caches nothing of the layer.
    const client = new SkopeoClient(server.host);
    try {
      assert.equal((await client.login('admin', token)).code, 0);
      const failed = await client.copy('acme/hub/library/bad', '1');
      assert.notEqual(failed.code, 0, 'skopeo copy fails');
      assert.equal(await server.manifold.store.stat(layer.digest), null);

      upstream.fix(layer.digest);
      const copied = await client.copy('acme/hub/library/bad', '1');
      assert.equal(copied.code, 0, copied.stderr);
      assert.equal(copied.layout!.topDigest, image.manifest.digest);
      assert.ok(copied.layout!.blob(layer.digest).equals(layer.bytes));
      assert.equal((await liveEntries(server, `/blobs/${layer.digest}`)).length, 1);
      const served = await v2(server, `acme/hub/library/bad/blobs/${layer.digest}`, { token });
      assert.ok(Buffer.from(await served.arrayBuffer()).equals(layer.bytes));
    } finally {
      client.cleanup();
    }
  });
});

describe('an upstream that breaks off a blob before the first byte reaches the client', () => {
  const bytes = randomBytes(256 * 1024);
  let digest: string;
  let upstream: SlowRegistry;
  let server: TestManifold;
  let token: string;

  before(async () => {
    upstream = await SlowRegistry.start();
    digest = upstream.addBlob('library/cut', bytes);
    ({ server, token } = await startCache([upstream.url]));
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('answers 503 with an OCI error (never a 500), stores nothing, and fetches again next time', async () => {
    upstream.fault({ method: 'GET', path: `/v2/library/cut/blobs/${digest}`, fault: { kind: 'reset-mid-body', afterBytes: 1000 }, times: 1 });
    const broken = await v2(server, `acme/hub/library/cut/blobs/${digest}`, { token });
    assert.equal(broken.status, 503);
    assert.equal(broken.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.equal(broken.headers.get('docker-content-digest'), null);
    assert.equal(((await broken.json()) as { errors: { code: string }[] }).errors[0].code, 'UNAVAILABLE');
    assert.deepEqual(await liveEntries(server, `/blobs/${digest}`), []);
    assert.equal(await server.manifold.store.stat(digest), null);

    const again = await v2(server, `acme/hub/library/cut/blobs/${digest}`, { token });
    assert.equal(again.status, 200);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(bytes));
    assert.equal(upstream.received('GET', `/v2/library/cut/blobs/${digest}`).length, 2);
  });
});

describe('a client that disconnects halfway through a layer', () => {
  const bytes = randomBytes(8 * 1024 * 1024);
  let digest: string;
  let upstream: SlowRegistry;
  let server: TestManifold;
  let token: string;

  before(async () => {
    upstream = await SlowRegistry.start();
    digest = upstream.addBlob('library/big', bytes);
    upstream.throttle(digest, { chunkBytes: 128 * 1024, intervalMs: 4 });
    ({ server, token } = await startCache([upstream.url]));
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('does not cancel the fill; the next pull is a hit', async () => {
    const abort = new AbortController();
    const response = await v2(server, `acme/hub/library/big/blobs/${digest}`, { token, signal: abort.signal });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    let received = 0;
    while (received < bytes.length / 2) {
      const { value, done } = await reader.read();
      assert.equal(done, false);
      received += value!.length;
    }
    abort.abort();
    await reader.cancel().catch(() => {});
    assert.ok(received < bytes.length, 'the client left before the end');

    await until(async () => (await liveEntries(server, `/blobs/${digest}`)).length === 1, 'the fill to complete and record its entry');
    const again = await v2(server, `acme/hub/library/big/blobs/${digest}`, { token });
    assert.equal(again.status, 200);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(bytes));
    assert.equal(upstream.received('GET', `/v2/library/big/blobs/${digest}`).length, 1, 'served from the cache');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_cache_requests_total', { kind: 'blob', result: 'hit' }), 1);
  });
});
