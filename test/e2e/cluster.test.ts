// Three replicas on one PostgreSQL schema and one bucket (issue 17): 24 concurrent skopeo copies of one
// cold image spread round-robin over them fetch every blob from the upstream exactly once for the whole
// cluster. The replica that claimed a blob's lease fills it; the others stream it from that owner's peer
// listener while it is still being filled. To show "while", the upstream (Debian's Distribution) is
// reached through a proxy that holds the big layer's body halfway until the test lets it go: the
// followers' clients must have received bytes before the owner's fill can end.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Distribution } from '../helpers/distribution.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { basicToken } from '../helpers/manifold.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { settleLog, until } from '../helpers/e2e.ts';
import type { GatedProxy } from '../helpers/gated-proxy.ts';
import { startClusterOnDistribution } from '../helpers/cluster.ts';
import { signPeerRequest } from '../../src/auth/peer-signature.ts';
import type { ClusterOnDistribution, TestCluster } from '../helpers/cluster.ts';

const MiB = 1024 * 1024;
const CLIENTS = 24;

/** A GET that reports when its first bytes and its first `threshold` bytes arrived, and the whole body. */
function timedGet(url: string, headers: Record<string, string>, threshold: number) {
  const received = Promise.withResolvers<number>();
  const done = new Promise<{ status: number; body: Buffer; complete: boolean }>((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= threshold) received.resolve(performance.now());
      });
      res.on('close', () => {
        received.reject(new Error(`only ${length} bytes arrived (status ${res.statusCode})`));
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), complete: res.complete });
      });
    });
    req.on('error', reject);
    req.end();
  });
  received.promise.catch(() => {});
  return { received: received.promise, done };
}

describe('three replicas, one PostgreSQL, one bucket: one upstream fetch per blob for the cluster', () => {
  const image = buildImage({ layerSizes: [2 * 1024, 300 * 1024, 24 * MiB] });
  const big = image.layers[2];
  let upstream: Distribution;
  let proxy: GatedProxy;
  let cluster: TestCluster;
  let setup: ClusterOnDistribution | undefined;
  const clients: SkopeoClient[] = [];

  before(async () => {
    setup = await startClusterOnDistribution(image, 3);
    ({ upstream, proxy, cluster } = setup);
  });
  after(async () => {
    clients.forEach((client) => client.cleanup());
    await setup?.stop();
  });

  it(`${CLIENTS} skopeo copies round-robin over three replicas: each blob fetched once, identical bytes, followers stream before the owner's fill ends`, async (t) => {
    const gate = proxy.gate(`/v2/library/app/blobs/${big.digest}`, 12 * MiB);
    for (const replica of cluster.replicas) {
      const client = new SkopeoClient(replica.host);
      clients.push(client);
      const login = await client.login('admin', cluster.token);
      assert.equal(login.code, 0, login.stderr);
    }
    const started = performance.now();
    const copies = Promise.all(Array.from({ length: CLIENTS }, (_, i) => clients[i % clients.length].copy('acme/hub/library/app', '1.0')));

    // The owner's fill holds 12 MiB of the layer: the upstream sends no more until the release.
    await gate.reached;
    const leases = await cluster.query<{ owner_url: string }>('select owner_url from fill_leases where key like $1', [`%/blobs/${big.digest}`]);
    assert.equal(leases.length, 1, 'one lease for the big layer');
    const owner = cluster.replicas.find((replica) => replica.peerUrl === leases[0].owner_url);
    assert.ok(owner, 'the lease names one of the replicas');
    const followers = cluster.replicas.filter((replica) => replica !== owner);

    // A client of each other replica receives bytes of the layer while the owner's fill cannot end.
    const auth = { authorization: basicToken(cluster.token) };
    const watched = followers.map((replica) => timedGet(`${replica.url}/v2/acme/hub/library/app/blobs/${big.digest}`, auth, 4 * MiB));
    const receivedAt = await Promise.all(watched.map((get) => get.received));
    // The skopeo clients of those replicas (8 each) and the watcher stream from the owner as well.
    for (const replica of followers) {
      await until(async () => (await cluster.metric(replica, 'manifold_cluster_fills_followed_total', { kind: 'blob' })) >= CLIENTS / 3 + 1, `the clients of ${replica.url} to follow the owner's fill`, 30_000);
    }
    const releasedAt = performance.now();
    gate.release();

    const results = await copies;
    const finishedAt = performance.now();
    for (const copy of results) {
      assert.equal(copy.code, 0, copy.stderr);
      assert.equal(copy.layout!.topDigest, image.manifest.digest);
      for (const blob of image.blobs) assert.ok(copy.layout!.blob(blob.digest).equals(blob.bytes), `blob ${blob.digest} is identical to the upstream's`);
    }
    for (const get of watched) {
      const answer = await get.done;
      assert.equal(answer.status, 200);
      assert.ok(answer.complete && answer.body.equals(big.bytes), 'the watcher got the whole layer, identical');
    }
    for (const at of receivedAt) assert.ok(at < releasedAt, 'bytes reached the followers before the owner could finish');

    // The peer listener serves only requests signed with the cluster secret; the clients' port has no such route.
    const peerPath = `/cluster/v1/fills?key=${encodeURIComponent(`1:library/app/blobs/${big.digest}`)}`;
    assert.equal((await fetch(`${owner.peerUrl}${peerPath}`)).status, 401, 'unsigned');
    assert.equal((await fetch(`${owner.peerUrl}${peerPath}`, { headers: { authorization: signPeerRequest('another secret of 32 characters!', 'GET', peerPath) } })).status, 401, 'signed with another secret');
    assert.equal((await fetch(`${owner.url}${peerPath}`)).status, 404, 'not on the clients\' port');

    await settleLog(upstream);
    for (const blob of image.blobs) assert.equal(upstream.count('GET', `/v2/library/app/blobs/${blob.digest}`), 1, `blob ${blob.digest} fetched from the upstream once`);
    // The manifest too: the replicas that did not own its fill waited for the owner's commit.
    assert.equal(upstream.count('GET', '/v2/library/app/manifests/1.0'), 1, 'the manifest fetched from the upstream once');
    // Leases are released once the owners' entries are recorded.
    await until(async () => (await cluster.query('select key from fill_leases')).length === 0, 'every lease to be released');
    const owned = await Promise.all(cluster.replicas.map((replica) => cluster.metric(replica, 'manifold_cluster_fills_owned_total')));
    assert.equal(await cluster.metric(owner, 'manifold_fills_total', { kind: 'blob', outcome: 'committed' }) >= 1, true, 'the owner filled the big layer');
    t.diagnostic(`owner ${owner.peerUrl}; followers had 4 MiB at ${receivedAt.map((at) => `${Math.round(at - started)} ms`).join(', ')}; released at ${Math.round(releasedAt - started)} ms; all copies done at ${Math.round(finishedAt - started)} ms; leases claimed per replica ${owned.join('/')}`);
  });
});
