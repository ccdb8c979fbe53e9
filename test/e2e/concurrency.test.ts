// Single flight (DESIGN §3.2): many cold pulls of one image cause one upstream fetch per object, whatever
// the timing, and every client gets identical, verified bytes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Distribution } from '../helpers/distribution.ts';
import { buildImage, OCI_MANIFEST, sha256 } from '../helpers/oci-image.ts';
import { startCache } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { assertSameImage, startPullFixture } from '../helpers/pull-fixture.ts';
import type { PullFixture } from '../helpers/pull-fixture.ts';
import type { SkopeoClient } from '../helpers/skopeo.ts';
import { fillDiskFrom } from '../helpers/full-disk.ts';
import { SlowRegistry } from '../helpers/slow-registry.ts';
import { settleLog, until, v2 } from '../helpers/e2e.ts';
import type { ObjectWriter } from '../../src/storage/object-store.ts';

const CLIENTS = 16;

describe('16 concurrent cold pulls of one image from a real Distribution', () => {
  const image = buildImage({ layerSizes: [4 * 1024, 512 * 1024, 6 * 1024 * 1024] });
  const raw = buildImage({ layerSizes: [2 * 1024, 3 * 1024 * 1024] });
  let fixture: PullFixture;
  let upstream: Distribution;
  let server: TestManifold;
  let token: string;
  let client: SkopeoClient;

  before(async () => {
    fixture = await startPullFixture({ images: [{ repository: 'library/app', image, tag: '1.0' }, { repository: 'library/raw', image: raw, tag: '1.0' }] });
    ({ upstream, server, token, client } = fixture);
  });
  after(() => fixture?.stop());

  it('16 skopeo copies at once: the upstream served each blob and the manifest once; every copy is identical', async () => {
    const copies = await Promise.all(Array.from({ length: CLIENTS }, () => client.copy('acme/hub/library/app', '1.0')));
    for (const copy of copies) {
      assert.equal(copy.code, 0, copy.stderr);
      assertSameImage(copy.layout, image);
    }
    await settleLog(upstream);
    for (const blob of image.blobs) assert.equal(upstream.count('GET', `/v2/library/app/blobs/${blob.digest}`), 1, `blob ${blob.digest}`);
    assert.equal(upstream.count('GET', '/v2/library/app/manifests/1.0'), 1, 'the manifest');
  });

  it('16 HTTP clients fetching the manifest and every blob at once get the same verified bytes', async () => {
    const accept = OCI_MANIFEST;
    const pulls = Array.from({ length: CLIENTS }, async () => {
      const manifest = await v2(server, 'acme/hub/library/raw/manifests/1.0', { token, headers: { accept } });
      assert.equal(manifest.status, 200);
      const manifestBytes = Buffer.from(await manifest.arrayBuffer());
      const blobs = await Promise.all(raw.blobs.map(async (blob) => {
        const response = await v2(server, `acme/hub/library/raw/blobs/${blob.digest}`, { token });
        assert.equal(response.status, 200);
        return Buffer.from(await response.arrayBuffer());
      }));
      return { manifestBytes, blobs };
    });
    for (const pulled of await Promise.all(pulls)) {
      assert.equal(sha256(pulled.manifestBytes), raw.manifest.digest);
      pulled.blobs.forEach((bytes, i) => assert.equal(sha256(bytes), raw.blobs[i].digest));
    }
    await settleLog(upstream);
    for (const blob of raw.blobs) assert.equal(upstream.count('GET', `/v2/library/raw/blobs/${blob.digest}`), 1);
    assert.equal(upstream.count('GET', '/v2/library/raw/manifests/1.0'), 1);
  });
});

// One Manifold in front of an in-process upstream whose answers a test can hold at chosen points.
describe('fills from an upstream held at chosen points', () => {
  let upstream: SlowRegistry;
  let server: TestManifold;
  let token: string;

  before(async () => {
    upstream = await SlowRegistry.start();
    ({ server, token } = await startCache([upstream.url]));
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  describe('the window between a fill committing and its entry being seen', () => {
    /**
     * Makes the next lookup of `method` report what it saw, then wait for `resume` before the request goes
     * on: the request looked before the other fill committed and goes on after it finished.
     */
    function holdAfterLookup(method: 'findLiveByDigest' | 'findLiveForPath') {
      const entries = server.manifold.services.entries as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
      const original = entries[method];
      const looked = Promise.withResolvers<unknown>();
      const resume = Promise.withResolvers<void>();
      let armed = true;
      entries[method] = async function (this: unknown, ...args: unknown[]) {
        const result = await original.apply(this, args);
        if (!armed) return result;
        armed = false;
        looked.resolve(result);
        await resume.promise;
        return result;
      };
      return { looked: looked.promise, resume: () => resume.resolve(), restore: () => (entries[method] = original) };
    }

    it('a blob request that missed the cache just before another fill committed does not fetch again', async () => {
      const bytes = randomBytes(1024 * 1024);
      const digest = upstream.addBlob('library/window', bytes);
      const gate = upstream.gate(digest, 512 * 1024);
      const first = v2(server, `acme/hub/library/window/blobs/${digest}`, { token });
      await gate.reached;

      const hold = holdAfterLookup('findLiveByDigest');
      try {
        const second = v2(server, `acme/hub/library/window/blobs/${digest}`, { token });
        assert.equal(await hold.looked, null, 'the second request saw no entry');
        gate.release();
        assert.ok(Buffer.from(await (await first).arrayBuffer()).equals(bytes));
        await until(() => server.manifold.services.pull.blobFills.size === 0, 'the first fill to finish');
        hold.resume();
        const response = await second;
        assert.equal(response.status, 200);
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(bytes));
      } finally {
        hold.restore();
      }
      assert.equal(upstream.received('GET', `/v2/library/window/blobs/${digest}`).length, 1, 'one upstream fetch');
    });

    it('a manifest request that missed the cache just before another fill committed does not fetch again', async () => {
      const image = buildImage({ layerSizes: [16] });
      upstream.addImage('library/window', image, ['1']);
      const upstreamHold = upstream.holdNext('GET', '/v2/library/window/manifests/1');
      const first = v2(server, 'acme/hub/library/window/manifests/1', { token, headers: { accept: OCI_MANIFEST } });
      await upstreamHold.reached;

      const hold = holdAfterLookup('findLiveForPath');
      try {
        const second = v2(server, 'acme/hub/library/window/manifests/1', { token, headers: { accept: OCI_MANIFEST } });
        assert.deepEqual(await hold.looked, [], 'the second request saw no entry');
        upstreamHold.release();
        assert.ok(Buffer.from(await (await first).arrayBuffer()).equals(image.manifest.bytes));
        hold.resume();
        const response = await second;
        assert.equal(response.status, 200);
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(image.manifest.bytes));
      } finally {
        hold.restore();
      }
      assert.equal(upstream.received('GET', '/v2/library/window/manifests/1').length, 1, 'one upstream fetch');
    });
  });

  describe('storing a filled blob after its bytes are verified', () => {
    /** Replaces the commit (fsync and rename) of the next object writer; by then its bytes are verified. */
    function replaceNextCommit(replacement: (writer: ObjectWriter, commit: ObjectWriter['commit']) => ObjectWriter['commit']) {
      const store = server.manifold.services.store;
      const original = store.createWriter;
      store.createWriter = async (expectedDigest) => {
        store.createWriter = original;
        const writer = await original.call(store, expectedDigest);
        writer.commit = replacement(writer, writer.commit.bind(writer));
        return writer;
      };
      return () => (store.createWriter = original);
    }

    const blobPath = (digest: string) => `acme/hub/library/durable/blobs/${digest}`;

    // A bounded wait: a response that waited for the held commit would never end.
    it('clients get the whole blob while the object is still being stored, and it is stored once', { timeout: 20_000 }, async () => {
      const bytes = randomBytes(1024 * 1024);
      const digest = upstream.addBlob('library/durable', bytes);
      const commitReached = Promise.withResolvers<void>();
      const storeNow = Promise.withResolvers<void>();
      const restore = replaceNextCommit((_writer, commit) => async (size) => {
        commitReached.resolve();
        await storeNow.promise;
        return commit(size);
      });
      try {
        const first = await v2(server, blobPath(digest), { token });
        assert.ok(Buffer.from(await first.arrayBuffer()).equals(bytes), 'the first client has every byte');
        await commitReached.promise;
        // Still being stored: a second client joins that fill and gets every byte too.
        const second = await v2(server, blobPath(digest), { token });
        assert.ok(Buffer.from(await second.arrayBuffer()).equals(bytes), 'the second client has every byte');
        storeNow.resolve();
        await until(() => server.manifold.services.pull.blobFills.size === 0, 'the fill to finish');
        const third = await v2(server, blobPath(digest), { token });
        assert.ok(Buffer.from(await third.arrayBuffer()).equals(bytes));
      } finally {
        storeNow.resolve();
        restore();
      }
      assert.equal(upstream.received('GET', `/v2/library/durable/blobs/${digest}`).length, 1, 'one upstream fetch');
    });

    it('when the disk refuses a write halfway through a fill, the client never gets a complete-looking blob and the next request fetches again', async () => {
      const bytes = randomBytes(3 * 1024 * 1024);
      const digest = upstream.addBlob('library/durable', bytes);
      // The disk fills up once the object's first MiB is written.
      const freeDisk = await fillDiskFrom(1024 * 1024);
      try {
        const first = await v2(server, blobPath(digest), { token });
        const body = await first.arrayBuffer().then((received) => Buffer.from(received), () => null);
        assert.ok(first.status !== 200 || body === null || !body.equals(bytes), 'the transfer breaks (or fails) instead of completing');
        await until(() => server.manifold.services.pull.blobFills.size === 0, 'the fill to end');
      } finally {
        freeDisk();
      }
      assert.equal(await server.manifold.services.store.stat(digest), null, 'nothing stored');
      const second = await v2(server, blobPath(digest), { token });
      assert.equal(second.status, 200);
      assert.ok(Buffer.from(await second.arrayBuffer()).equals(bytes));
      assert.equal(upstream.received('GET', `/v2/library/durable/blobs/${digest}`).length, 2, 'fetched again');
      await until(() => server.manifold.services.pull.blobFills.size === 0, 'the second fill to be stored');
      assert.equal((await server.manifold.services.store.stat(digest))?.size, bytes.length, 'stored the second time');
    });

    it('when storing fails after verification the client still has the right bytes, and the next request fetches again', async () => {
      const bytes = randomBytes(512 * 1024);
      const digest = upstream.addBlob('library/durable', bytes);
      const restore = replaceNextCommit((writer) => async () => {
        const error = new Error('no space left on device');
        await writer.abort(error);
        throw error;
      });
      try {
        const first = await v2(server, blobPath(digest), { token });
        assert.equal(first.status, 200);
        assert.ok(Buffer.from(await first.arrayBuffer()).equals(bytes));
        await until(() => server.manifold.services.pull.blobFills.size === 0, 'the fill to finish');
      } finally {
        restore();
      }
      const second = await v2(server, blobPath(digest), { token });
      assert.ok(Buffer.from(await second.arrayBuffer()).equals(bytes));
      assert.equal(upstream.received('GET', `/v2/library/durable/blobs/${digest}`).length, 2, 'fetched again: nothing was stored the first time');
    });
  });
});
