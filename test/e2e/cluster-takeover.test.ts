// SIGKILL of the replica that owns a fill, halfway through a large layer (issue 17). Three replicas on
// one PostgreSQL schema and one bucket; the upstream (Debian's Distribution) is reached through a proxy
// that holds the layer's body halfway, so "halfway" is where the test says. The owner's client and a
// client streaming from the owner on another replica see a broken transfer, never a complete one; the
// dead owner's lease expires and the next replica that needs the layer takes the fill over; the pull the
// client retries succeeds with one more upstream GET at most; no lease is left and no object in the
// bucket has wrong bytes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { Distribution } from '../helpers/distribution.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { basicToken } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { rawGet, settleLog, until } from '../helpers/e2e.ts';
import type { TestS3Server } from '../helpers/s3-server.ts';
import type { GatedProxy } from '../helpers/gated-proxy.ts';
import { startClusterOnDistribution } from '../helpers/cluster.ts';
import type { ClusterOnDistribution, TestCluster } from '../helpers/cluster.ts';
import { CACHE_ENTRY_STATUS } from '../../src/db/schema.ts';

const MiB = 1024 * 1024;

describe('SIGKILL of the replica that owns a fill halfway through a large layer', () => {
  const image = buildImage({ layerSizes: [1024, 32 * MiB] });
  const big = image.layers[1];
  const blobPath = `/v2/library/app/blobs/${big.digest}`;
  let upstream: Distribution;
  let proxy: GatedProxy;
  let s3: TestS3Server;
  let cluster: TestCluster;
  let setup: ClusterOnDistribution | undefined;
  let client: SkopeoClient | undefined;

  before(async () => {
    setup = await startClusterOnDistribution(image, 3);
    ({ upstream, proxy, s3, cluster } = setup);
  });
  after(async () => {
    client?.cleanup();
    await setup?.stop();
  });

  /** Every object in the cluster's part of the bucket, with whether its bytes hash to its key. */
  async function bucketObjects(): Promise<{ digest: string; intact: boolean }[]> {
    const bucket = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    try {
      const listed = await bucket.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: cluster.prefix }));
      const objects = [];
      for (const { Key } of listed.Contents ?? []) {
        const got = await bucket.send(new GetObjectCommand({ Bucket: s3.bucket, Key }));
        const bytes = Buffer.from(await got.Body!.transformToByteArray());
        const [algorithm, hex] = Key!.slice(cluster.prefix.length).split('/');
        objects.push({ digest: `${algorithm}:${hex}`, intact: createHash(algorithm).update(bytes).digest('hex') === hex });
      }
      return objects;
    } finally {
      bucket.destroy();
    }
  }

  it('the lease is taken over, the retried pull succeeds with at most one more upstream GET, nothing is left processing, no object has wrong bytes', async (t) => {
    const [owner, follower, third] = cluster.replicas;
    const auth = { authorization: basicToken(cluster.token) };
    const gate = proxy.gate(blobPath, 16 * MiB);
    const ownersClient = rawGet(`${owner.url}/v2/acme/hub/library/app/blobs/${big.digest}`, auth);
    await gate.reached;
    const leases = await cluster.query<{ owner_url: string }>('select owner_url from fill_leases where key like $1', [`%/blobs/${big.digest}`]);
    assert.deepEqual(leases.map((lease) => lease.owner_url), [owner.peerUrl], 'the replica asked first owns the fill');

    // A client of another replica streams the layer from the owner.
    const followersClient = rawGet(`${follower.url}/v2/acme/hub/library/app/blobs/${big.digest}`, auth);
    await until(async () => (await cluster.metric(follower, 'manifold_cluster_fills_followed_total', { kind: 'blob' })) === 1, 'the other replica to stream from the owner', 20_000);

    await owner.kill('SIGKILL');
    const killedAt = Date.now();
    gate.release();
    const [cut, followed] = await Promise.all([ownersClient.catch((error: Error) => ({ complete: false, body: Buffer.alloc(0), error: error.message })), followersClient]);
    assert.equal(cut.complete, false, 'the killed owner\'s client did not get a complete blob');
    assert.equal(followed.status, 200);
    assert.equal(followed.complete, false, 'the follower\'s client saw a broken transfer, not a complete one');
    assert.ok(followed.body.length < big.bytes.length, 'and did not get every byte');
    assert.ok(big.bytes.subarray(0, followed.body.length).equals(followed.body), 'the bytes it got are the layer\'s');

    // The client retries, through another replica: that replica waits for the dead owner's lease to expire and takes the fill over.
    client = new SkopeoClient(follower.host);
    assert.equal((await client.login('admin', cluster.token)).code, 0);
    const copy = await client.copy('acme/hub/library/app', '1.0');
    const copiedAt = Date.now();
    assert.equal(copy.code, 0, copy.stderr);
    for (const blob of image.blobs) assert.ok(copy.layout!.blob(blob.digest).equals(blob.bytes), `blob ${blob.digest} is identical to the upstream's`);
    const takeovers = (await cluster.metric(follower, 'manifold_cluster_lease_takeovers_total')) + (await cluster.metric(third, 'manifold_cluster_lease_takeovers_total'));
    assert.equal(takeovers, 1, 'one lease (the layer\'s) was taken over');

    await settleLog(upstream);
    const layerGets = upstream.count('GET', blobPath);
    assert.ok(layerGets >= 1 && layerGets <= 2, `at most one further upstream GET of the layer (${layerGets} in all)`);
    await until(async () => (await cluster.query('select key from fill_leases')).length === 0, 'no lease left');
    assert.deepEqual(await cluster.query('select relative_path from cache_entries where status = $1', [CACHE_ENTRY_STATUS.processing]), [], 'no entry left processing');

    const served = await rawGet(`${third.url}/v2/acme/hub/library/app/blobs/${big.digest}`, auth);
    assert.ok(served.status === 200 && served.complete && served.body.equals(big.bytes), 'the third replica serves the layer, identical');
    const objects = await bucketObjects();
    assert.ok(objects.some((object) => object.digest === big.digest), 'the layer is in the bucket');
    assert.deepEqual(objects.filter((object) => !object.intact), [], 'every object in the bucket hashes to its key');
    t.diagnostic(`the retried copy finished ${copiedAt - killedAt} ms after the kill; upstream GETs of the layer: ${layerGets}`);
  });
});
