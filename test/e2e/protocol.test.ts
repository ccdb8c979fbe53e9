// The /v2 surface a client sees (DESIGN §3.3), against a real Distribution and a slow fake upstream:
// HEAD without filling, the tag's by-digest entry, Range on hits and during fills, If-None-Match,
// Accept, and the version header on every response.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, buildIndex, OCI_INDEX, OCI_MANIFEST, pushImage } from '../helpers/oci-image.ts';
import { liveEntries, startCache } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SlowRegistry } from '../helpers/slow-registry.ts';
import { fillFollowers, logSince, settleLog, until, v2 } from '../helpers/e2e.ts';

const ACCEPT_ALL = [OCI_INDEX, OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

describe('the /v2 protocol in front of a real Distribution', () => {
  const image = buildImage({ layerSizes: [1024, 300 * 1024] });
  const other = buildImage({ layerSizes: [2048] });
  const index = buildIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }], layerSizes: [512] });
  let upstream: Distribution;
  let server: TestManifold;
  let token: string;

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: '1.0' });
    await pushImage(upstream.url, 'library/other', other, { tag: '1' });
    await pushImage(upstream.url, 'library/multi', index, { tag: '1' });
    ({ server, token } = await startCache([upstream.url]));
  });
  after(async () => {
    await server?.stop();
    await upstream?.stop();
  });

  it('answers HEAD of an uncached tag with its digest, without filling the cache', async () => {
    const mark = upstream.accessLog.length;
    const response = await v2(server, 'acme/hub/library/other/manifests/1', { token, method: 'HEAD', headers: { accept: ACCEPT_ALL } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-content-digest'), other.manifest.digest);
    assert.equal(response.headers.get('content-length'), String(other.manifest.size));
    assert.equal(response.headers.get('content-type'), OCI_MANIFEST);
    assert.deepEqual(await liveEntries(server, '/library/other/manifests/1'), [], 'no cache entry');
    assert.deepEqual((await liveEntries(server)).filter((e) => e.relative_path.startsWith('/library/other/')), []);
    await settleLog(upstream);
    const asked = logSince(upstream, mark).map((e) => `${e.method} ${e.path}`);
    assert.deepEqual(asked, ['HEAD /v2/library/other/manifests/1'], 'only a HEAD went upstream');
  });

  it('records a tag\'s by-digest entry, so the client\'s follow-up GET by digest is a hit', async () => {
    const byTag = await v2(server, 'acme/hub/library/app/manifests/1.0', { token, headers: { accept: ACCEPT_ALL } });
    assert.equal(byTag.status, 200);
    assert.ok(Buffer.from(await byTag.arrayBuffer()).equals(image.manifest.bytes), 'the exact upstream bytes');
    assert.equal(byTag.headers.get('docker-content-digest'), image.manifest.digest);
    assert.equal(byTag.headers.get('etag'), `"${image.manifest.digest}"`);
    assert.equal(byTag.headers.get('content-type'), OCI_MANIFEST);
    await settleLog(upstream);
    const mark = upstream.accessLog.length;

    const byDigest = await v2(server, `acme/hub/library/app/manifests/${image.manifest.digest}`, { token, headers: { accept: ACCEPT_ALL } });
    assert.equal(byDigest.status, 200);
    assert.ok(Buffer.from(await byDigest.arrayBuffer()).equals(image.manifest.bytes));
    const head = await v2(server, `acme/hub/library/app/manifests/${image.manifest.digest}`, { token, method: 'HEAD', headers: { accept: ACCEPT_ALL } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(image.manifest.size));
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'the upstream was not asked again');
    assert.equal((await liveEntries(server, `/library/app/manifests/${image.manifest.digest}`)).length, 1);
    assert.equal((await liveEntries(server, '/library/app/manifests/1.0')).length, 1);
  });

  it('answers If-None-Match with 304, and refuses a manifest the client\'s Accept does not allow', async () => {
    const notModified = await v2(server, 'acme/hub/library/app/manifests/1.0', { token, headers: { accept: ACCEPT_ALL, 'if-none-match': `"${image.manifest.digest}"` } });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.get('docker-content-digest'), image.manifest.digest);
    // The index is cached by a client that accepts it; one that accepts single manifests only is refused.
    assert.equal((await v2(server, 'acme/hub/library/multi/manifests/1', { token, headers: { accept: ACCEPT_ALL } })).status, 200);
    const refused = await v2(server, 'acme/hub/library/multi/manifests/1', { token, headers: { accept: OCI_MANIFEST } });
    assert.equal(refused.status, 404);
    assert.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0].code, 'MANIFEST_UNKNOWN');
    const again = await v2(server, 'acme/hub/library/multi/manifests/1', { token, headers: { accept: ACCEPT_ALL } });
    assert.equal(again.headers.get('docker-content-digest'), index.index.digest, 'the refused client did not change what is cached');
  });

  it('serves a Range of a cached blob exactly, and 416 when it cannot be satisfied', async () => {
    const layer = image.layers[1];
    const full = await v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token });
    assert.equal(full.status, 200);
    assert.equal(full.headers.get('accept-ranges'), 'bytes');
    assert.equal(full.headers.get('content-type'), 'application/octet-stream');
    assert.ok(Buffer.from(await full.arrayBuffer()).equals(layer.bytes));
    await settleLog(upstream);
    const mark = upstream.accessLog.length;

    const part = await v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token, headers: { range: 'bytes=1000-20999' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1000-20999/${layer.size}`);
    assert.equal(part.headers.get('content-length'), '20000');
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(layer.bytes.subarray(1000, 21000)));

    const tail = await v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token, headers: { range: 'bytes=-100' } });
    assert.equal(tail.status, 206);
    assert.ok(Buffer.from(await tail.arrayBuffer()).equals(layer.bytes.subarray(layer.size - 100)));

    const beyond = await v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token, headers: { range: `bytes=${layer.size}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${layer.size}`);
    assert.equal(((await beyond.json()) as { errors: { code: string }[] }).errors[0].code, 'RANGE_INVALID');
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'ranges of a cached blob are served from the cache');
  });

  it('answers GET and HEAD of a manifest by a malformed tag with 404 MANIFEST_UNKNOWN, by a malformed digest with 400 DIGEST_INVALID', async () => {
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    for (const tag of ['.INVALID_MANIFEST_NAME', '-leading-dash', 'x'.repeat(129), 'sp%20ace']) {
      const get = await v2(server, `acme/hub/library/app/manifests/${tag}`, { token, headers: { accept: ACCEPT_ALL } });
      assert.equal(get.status, 404, `GET ${tag}`);
      assert.equal(((await get.json()) as { errors: { code: string }[] }).errors[0].code, 'MANIFEST_UNKNOWN', `GET ${tag}`);
      const head = await v2(server, `acme/hub/library/app/manifests/${tag}`, { token, method: 'HEAD', headers: { accept: ACCEPT_ALL } });
      assert.equal(head.status, 404, `HEAD ${tag}`);
      assert.equal(head.headers.get('docker-content-digest'), null);
    }
    for (const digest of ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`]) {
      for (const method of ['GET', 'HEAD']) {
        const response = await v2(server, `acme/hub/library/app/manifests/${digest}`, { token, method, headers: { accept: ACCEPT_ALL } });
        assert.equal(response.status, 400, `${method} ${digest}`);
        if (method === 'GET') assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0].code, 'DIGEST_INVALID');
      }
    }
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark), [], 'nothing malformed went upstream');
  });

  it('sends Docker-Distribution-Api-Version on every /v2 response, errors included', async () => {
    const layer = image.layers[0];
    const responses = await Promise.all([
      v2(server, '', { token: null }),
      v2(server, '', { token }),
      fetch(`${server.url}/v2`, { headers: { authorization: `Bearer ${'x'.repeat(20)}` } }),
      v2(server, 'acme/hub/library/app/manifests/1.0', { token: null }),
      v2(server, 'acme/hub/library/app/manifests/1.0', { token, headers: { accept: ACCEPT_ALL } }),
      v2(server, 'acme/hub/library/app/manifests/nope', { token }),
      v2(server, 'acme/hub/library/App/manifests/1.0', { token }),
      v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token, method: 'HEAD' }),
      v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token, headers: { range: 'bytes=5-9' } }),
      v2(server, `acme/hub/library/app/blobs/${layer.digest}`, { token, headers: { range: 'bytes=999999-' } }),
      v2(server, 'acme/nope/library/app/manifests/1.0', { token }),
      v2(server, 'acme/hub/library/app/tags/list', { token }),
      v2(server, 'acme/hub/library/app/blobs/uploads/', { token, method: 'POST' }),
      v2(server, 'acme/hub/library/app/manifests/1.0', { token, method: 'PUT', headers: { 'content-type': OCI_MANIFEST } }),
      v2(server, `acme/hub/library/app/referrers/${image.manifest.digest}`, { token }),
    ]);
    const statuses = responses.map((r) => r.status);
    assert.deepEqual(statuses, [401, 200, 401, 401, 200, 404, 400, 200, 206, 416, 404, 200, 405, 405, 404]);
    const referrers = responses.at(-1)!;
    assert.equal(((await referrers.clone().json()) as { errors: { code: string }[] }).errors[0].code, 'UNSUPPORTED', 'Distribution 2.8 has no referrers API: 404, so clients use the tag schema');
    for (const [i, response] of responses.entries()) {
      assert.equal(response.headers.get('docker-distribution-api-version'), 'registry/2.0', `response ${i} (${response.status})`);
      await response.arrayBuffer();
    }
  });
});

describe('Range while a blob is being filled', () => {
  let upstream: SlowRegistry;
  let server: TestManifold;
  let token: string;
  const bytes = randomBytes(2 * 1024 * 1024);
  let digest: string;

  before(async () => {
    upstream = await SlowRegistry.start();
    digest = upstream.addBlob('library/big', bytes);
    ({ server, token } = await startCache([upstream.url]));
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('serves ranges from the growing object, and the fill is fetched once', async () => {
    const gate = upstream.gate(digest, 1024 * 1024);
    const whole = v2(server, `acme/hub/library/big/blobs/${digest}`, { token });
    await gate.reached;
    // One range inside the part already written, one beyond it, both asked while the fill is held.
    const early = v2(server, `acme/hub/library/big/blobs/${digest}`, { token, headers: { range: 'bytes=100-4195' } });
    const late = v2(server, `acme/hub/library/big/blobs/${digest}`, { token, headers: { range: `bytes=${bytes.length - 5000}-` } });
    await until(async () => (await fillFollowers(server)) === 3, 'both ranges to join the fill in flight');
    gate.release();
    const [earlyResponse, lateResponse] = await Promise.all([early, late]);
    assert.equal(earlyResponse.status, 206);
    assert.equal(earlyResponse.headers.get('content-range'), `bytes 100-4195/${bytes.length}`);
    assert.equal(lateResponse.status, 206);
    assert.equal(lateResponse.headers.get('content-range'), `bytes ${bytes.length - 5000}-${bytes.length - 1}/${bytes.length}`);
    assert.ok(Buffer.from(await earlyResponse.arrayBuffer()).equals(bytes.subarray(100, 4196)));
    assert.ok(Buffer.from(await lateResponse.arrayBuffer()).equals(bytes.subarray(bytes.length - 5000)));
    const wholeResponse = await whole;
    assert.equal(wholeResponse.status, 200);
    assert.ok(Buffer.from(await wholeResponse.arrayBuffer()).equals(bytes));
    assert.equal(upstream.received('GET', `/v2/library/big/blobs/${digest}`).length, 1, 'one upstream fetch');
  });
});
