// The benchmark's images, pushed to the upstream: a small image with three layers, and an image with one
// big layer of random bytes that is generated into a file and uploaded from it as a stream, so the
// benchmark process never holds the layer in memory.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { fetch } from 'undici';
import { buildImage, content, pushImage, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST } from '../../test/helpers/oci-image.ts';

export interface BlobRef {
  digest: string;
  size: number;
}

export interface PushedImage {
  /** Repository on the upstream, e.g. `bench/small`. */
  image: string;
  tag: string;
  manifestDigest: string;
  /** Config and layers. */
  blobs: BlobRef[];
  /** The biggest layer. */
  largestLayer: BlobRef;
}

const GENERATE_CHUNK = 4 * 1024 * 1024;

/** An image with one random layer per entry of `layerSizes`, pushed as `image:tag`. */
export async function pushSmallImage(upstreamUrl: string, image: string, tag: string, layerSizes: number[]): Promise<PushedImage> {
  const built = buildImage({ layerSizes });
  await pushImage(upstreamUrl, image, built, { tag });
  const largest = built.layers.reduce((a, b) => (b.size > a.size ? b : a));
  return {
    image,
    tag,
    manifestDigest: built.manifest.digest,
    blobs: built.blobs.map((blob) => ({ digest: blob.digest, size: blob.size })),
    largestLayer: { digest: largest.digest, size: largest.size },
  };
}

/** Writes `size` random bytes to `file` in chunks, hashing them on the way. */
async function generateLayer(file: string, size: number): Promise<BlobRef> {
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    for (let written = 0; written < size;) {
      const chunk = randomBytes(Math.min(GENERATE_CHUNK, size - written));
      hash.update(chunk);
      await handle.write(chunk);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

async function expectStatus(response: { status: number; text(): Promise<string> }, expected: number, what: string): Promise<void> {
  if (response.status !== expected) throw new Error(`${what}: HTTP ${response.status} ${await response.text()}`);
}

/** A monolithic upload whose body streams from `file`. */
async function pushBlobFromFile(upstreamUrl: string, image: string, blob: BlobRef, file: string): Promise<void> {
  const start = await fetch(`${upstreamUrl}/v2/${image}/blobs/uploads/`, { method: 'POST' });
  await expectStatus(start, 202, 'starting the upload');
  await start.arrayBuffer();
  const location = new URL(start.headers.get('location') ?? '', `${upstreamUrl}/`);
  location.searchParams.set('digest', blob.digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: createReadStream(file, { highWaterMark: 1024 * 1024 }),
    duplex: 'half',
  });
  await expectStatus(put, 201, `uploading ${blob.digest}`);
  await put.arrayBuffer();
}

/** An image with a single random layer of `layerSize` bytes, generated in `file` and pushed as `image:tag`. */
export async function pushBigImage(upstreamUrl: string, image: string, tag: string, layerSize: number, file: string): Promise<PushedImage> {
  const layer = await generateLayer(file, layerSize);
  await pushBlobFromFile(upstreamUrl, image, layer, file);
  const config = content(OCI_CONFIG, Buffer.from(JSON.stringify({
    os: 'linux',
    architecture: 'amd64',
    created: new Date(0).toISOString(),
    config: {},
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  })));
  const manifest = content(OCI_MANIFEST, Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: [{ mediaType: OCI_LAYER, digest: layer.digest, size: layer.size }],
  })));
  // The config and the manifest are small: the test helper pushes them (the layer is already there).
  await pushImage(upstreamUrl, image, {
    platform: { os: 'linux', architecture: 'amd64' },
    config,
    layers: [],
    manifest,
    blobs: [config],
  }, { tag });
  return {
    image,
    tag,
    manifestDigest: manifest.digest,
    blobs: [{ digest: config.digest, size: config.size }, layer],
    largestLayer: layer,
  };
}
