// Manifold on an S3 bucket (a real S3-compatible server, s3rver, on loopback) with real skopeo and a
// real Distribution upstream: the first copy fills the bucket, the second is served from it; with
// storage.s3.redirect a blob hit is a 307 to a pre-signed URL that skopeo follows; an object deleted
// from the bucket behind Manifold's back is refetched by the next pull.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Distribution } from '../helpers/distribution.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, metricValue, personalToken, startManifold } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { assertSameImage } from '../helpers/pull-fixture.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import { startS3Server } from '../helpers/s3-server.ts';
import type { TestS3Server } from '../helpers/s3-server.ts';

describe('Manifold on S3: skopeo pulls through it, the bucket holds the objects', () => {
  const image = buildImage({ layerSizes: [2 * 1024, 300 * 1024, 12 * 1024 * 1024] });
  let upstream: Distribution;
  let s3: TestS3Server;
  const servers: TestManifold[] = [];
  const clients: SkopeoClient[] = [];

  before(async () => {
    upstream = await Distribution.start();
    await pushImage(upstream.url, 'library/app', image, { tag: '1.0' });
    s3 = await startS3Server();
  });
  after(async () => {
    clients.forEach((client) => client.cleanup());
    for (const server of servers) await server.stop();
    await upstream?.stop();
    await s3?.stop();
  });

  async function start(redirect: boolean): Promise<{ server: TestManifold; client: SkopeoClient }> {
    const server = await startManifold({ storage: s3.storage({ prefix: 'e2e/', redirect }) });
    servers.push(server);
    await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    const client = new SkopeoClient(server.host);
    clients.push(client);
    const login = await client.login('admin', await personalToken(server));
    assert.equal(login.code, 0, login.stderr);
    return { server, client };
  }

  async function bucketKeys(): Promise<string[]> {
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'e2e/' }));
    client.destroy();
    return (listed.Contents ?? []).map((object) => object.Key!);
  }

  it('fills the bucket on the first copy, serves the second from it, and is ready while the bucket answers', async () => {
    const { server, client } = await start(false);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ok', database: true, storage: true });

    const first = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(first.code, 0, first.stderr);
    assertSameImage(first.layout, image);
    await settleLog(upstream);
    for (const blob of image.blobs) assert.equal(upstream.count('GET', `/v2/library/app/blobs/${blob.digest}`), 1, `blob ${blob.digest} fetched once`);
    // The client has its bytes once they are verified; the upload to the bucket ends a moment later.
    await server.manifold.services.pull.settle();
    const keys = await bucketKeys();
    for (const blob of image.blobs) assert.ok(keys.includes(`e2e/sha256/${blob.digest.slice('sha256:'.length)}`), `blob ${blob.digest} is in the bucket`);
    assert.ok(keys.includes(`e2e/sha256/${image.manifest.digest.slice('sha256:'.length)}`), 'the manifest is in the bucket');
    assert.equal(existsSync(path.join(server.dataDir, 'objects')), false, 'no object on the local disk');
    assert.deepEqual(readdirSync(path.join(server.dataDir, 'spool')), [], 'the spool is empty once the fills committed');

    const mark = upstream.accessLog.length;
    const second = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(second.code, 0, second.stderr);
    assertSameImage(second.layout, image);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).filter((entry) => entry.path.startsWith('/v2/library/')), [], 'the second copy came from the bucket');
  });

  it('with redirect on, a blob hit answers 307 to a pre-signed URL of the bucket, and skopeo follows it', async () => {
    // A second deployment on the same bucket and prefix: its first copy finds the objects already there.
    const { server, client } = await start(true);
    const first = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(first.code, 0, first.stderr);
    assertSameImage(first.layout, image);

    const layer = image.layers[image.layers.length - 1];
    const token = await personalToken(server);
    const answer = await fetch(`${server.url}/v2/acme/hub/library/app/blobs/${layer.digest}`, { headers: { authorization: basicToken(token) }, redirect: 'manual' });
    assert.equal(answer.status, 307);
    assert.equal(answer.headers.get('docker-content-digest'), layer.digest);
    const location = answer.headers.get('location')!;
    assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/e2e/sha256/`), location);
    assert.match(location, /X-Amz-Signature=/);
    await answer.body?.cancel();
    const direct = await fetch(location, { headers: { range: 'bytes=100-199' } });
    assert.equal(direct.status, 206);
    assert.ok(Buffer.from(await direct.arrayBuffer()).equals(layer.bytes.subarray(100, 200)));
    const head = await fetch(`${server.url}/v2/acme/hub/library/app/blobs/${layer.digest}`, { method: 'HEAD', headers: { authorization: basicToken(token) }, redirect: 'manual' });
    assert.equal(head.status, 200, 'HEAD answers itself');
    assert.equal(head.headers.get('content-length'), String(layer.bytes.length));

    const mark = upstream.accessLog.length;
    const second = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(second.code, 0, second.stderr);
    assertSameImage(second.layout, image);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).filter((entry) => entry.path.startsWith('/v2/library/')), []);
  });

  it('refetches an object deleted from the bucket behind its back once, and the copy succeeds (self-repair)', async () => {
    const { server, client } = await start(false);
    const first = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(first.code, 0, first.stderr);
    await server.manifold.services.pull.settle();
    const layer = image.layers[1];
    const bucket = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    await bucket.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: `e2e/sha256/${layer.digest.slice('sha256:'.length)}` }));
    bucket.destroy();

    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    const second = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(second.code, 0, second.stderr);
    assertSameImage(second.layout, image);
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).filter((entry) => entry.path.startsWith('/v2/library/')).map((entry) => `${entry.method} ${entry.path}`), [`GET /v2/library/app/blobs/${layer.digest}`]);
    await server.manifold.services.pull.settle();
    assert.ok((await bucketKeys()).includes(`e2e/sha256/${layer.digest.slice('sha256:'.length)}`), 'the object is back in the bucket');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_storage_repairs_total', { reason: 'missing', source: 'pull' }), 1);
  });

  it('is not ready while its bucket does not answer', async () => {
    const server = await startManifold({ storage: s3.storage({ bucket: 'no-such-bucket' }) });
    servers.push(server);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: 'unavailable', database: true, storage: false });
  });
});
