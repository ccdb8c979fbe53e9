// The setup the end-to-end pull tests share: a real Distribution holding the test's images, a Manifold
// whose group `acme` has a registry `hub` in front of it, and a skopeo client logged in with a pull token
// of the admin. stop() undoes all of it, also what a start that failed half-way had made.
import assert from 'node:assert/strict';
import type { ConfigInput } from '../../src/config.ts';
import { Distribution } from './distribution.ts';
import { createVirtualRegistry, personalToken, startManifold } from './manifold.ts';
import type { TestManifold } from './manifold.ts';
import { pushImage } from './oci-image.ts';
import type { TestImage, TestIndex } from './oci-image.ts';
import { SkopeoClient } from './skopeo.ts';
import type { OciLayout } from './skopeo.ts';

export interface PushedImage {
  repository: string;
  image: TestImage | TestIndex;
  tag: string;
}

export interface PullFixture {
  upstream: Distribution;
  server: TestManifold;
  /** Logged in to the server as the admin with `token`. */
  client: SkopeoClient;
  /** The pull token (read_virtual_registry) the client logged in with. */
  token: string;
  /** The registry `acme/hub`. */
  registryId: number;
  stop(): Promise<void>;
}

/** Starts the upstream, pushes `images` to it, starts Manifold with `config` and logs the client in. */
export async function startPullFixture(options: { images: PushedImage[]; config?: ConfigInput }): Promise<PullFixture> {
  const closers: Array<() => Promise<void> | void> = [];
  // In the reverse order of the starts; every closer runs even when one of them fails.
  const stop = async () => {
    let failure: unknown = null;
    for (const close of closers.splice(0).reverse()) {
      try {
        await close();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure) throw failure;
  };
  try {
    const upstream = await Distribution.start();
    closers.push(() => upstream.stop());
    for (const { repository, image, tag } of options.images) await pushImage(upstream.url, repository, image, { tag });
    const server = await startManifold(options.config);
    closers.push(() => server.stop());
    const { registry } = await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    const client = new SkopeoClient(server.host);
    closers.push(() => client.cleanup());
    const token = await personalToken(server);
    const login = await client.login('admin', token);
    assert.equal(login.code, 0, login.stderr);
    return { upstream, server, client, token, registryId: registry.id, stop };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}

/** The layout skopeo wrote is `image`: its manifest digest and every blob, byte for byte. */
export function assertSameImage(layout: OciLayout | null, image: TestImage): void {
  assert.ok(layout);
  assert.equal(layout.topDigest, image.manifest.digest, 'the manifest digest is the upstream\'s');
  for (const blob of image.blobs) assert.ok(layout.blob(blob.digest).equals(blob.bytes), `blob ${blob.digest} is identical`);
}
