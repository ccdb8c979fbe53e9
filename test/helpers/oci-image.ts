// Test images: an OCI image (random layers, config, manifest) or a multi-platform index of them, and a
// push through the registry HTTP API (monolithic blob uploads, manifest PUTs) with optional Basic auth.
// Layers are random bytes labelled as tar+gzip: registries store and serve them without looking inside.
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Content {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface TestImage {
  platform: Platform;
  config: Content;
  layers: Content[];
  manifest: Content;
  /** Config and layers: every blob the manifest refers to. */
  blobs: Content[];
}

export interface TestIndex {
  index: Content;
  images: TestImage[];
  /** Every blob of every image (config and layers). */
  blobs: Content[];
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function content(mediaType: string, bytes: Buffer): Content {
  return { mediaType, digest: sha256(bytes), size: bytes.length, bytes };
}

function descriptor(item: Content, extra: Record<string, unknown> = {}) {
  return { mediaType: item.mediaType, digest: item.digest, size: item.size, ...extra };
}

/** An image with `sharedLayers` first (the same blobs in several images), then one random layer per entry of `layerSizes` (bytes). */
export function buildImage(options: { layerSizes: number[]; platform?: Platform; sharedLayers?: Content[] }): TestImage {
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers = [...(options.sharedLayers ?? []), ...options.layerSizes.map((size) => content(OCI_LAYER, randomBytes(size)))];
  const config = content(
    OCI_CONFIG,
    Buffer.from(JSON.stringify({
      ...platform,
      created: new Date(0).toISOString(),
      config: { Env: [`MANIFOLD_TEST=${randomBytes(4).toString('hex')}`] },
      rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
    })),
  );
  const manifest = content(
    OCI_MANIFEST,
    Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor(config),
      layers: layers.map((layer) => descriptor(layer)),
    })),
  );
  return { platform, config, layers, manifest, blobs: [config, ...layers] };
}

/** A multi-platform index with one image per platform, each with its own random layers. */
export function buildIndex(options: { platforms: Platform[]; layerSizes: number[] }): TestIndex {
  const images = options.platforms.map((platform) => buildImage({ layerSizes: options.layerSizes, platform }));
  const index = content(
    OCI_INDEX,
    Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map((image) => descriptor(image.manifest, { platform: image.platform })),
    })),
  );
  return { index, images, blobs: images.flatMap((image) => image.blobs) };
}

export interface PushOptions {
  /** Tag for the image's manifest or the index; pushed by digest only when omitted. */
  tag?: string;
  username?: string;
  password?: string;
}

class PushError extends Error {}

async function expectStatus(response: Response, expected: number[], what: string): Promise<void> {
  if (!expected.includes(response.status)) {
    throw new PushError(`${what}: HTTP ${response.status} ${await response.text()}`);
  }
}

/** Pushes every blob, the manifests and the index (when given) to `registryUrl` (e.g. http://127.0.0.1:5000). */
export async function pushImage(registryUrl: string, repository: string, image: TestImage | TestIndex, options: PushOptions = {}): Promise<void> {
  const base = registryUrl.replace(/\/+$/, '');
  const auth: Record<string, string> = options.username
    ? { authorization: `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}` }
    : {};

  const pushBlob = async (blob: Content) => {
    const exists = await fetch(`${base}/v2/${repository}/blobs/${blob.digest}`, { method: 'HEAD', headers: auth });
    if (exists.status === 200) return;
    const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: auth });
    await expectStatus(start, [202], `starting the upload of ${blob.digest}`);
    const location = new URL(start.headers.get('location') ?? '', `${base}/`);
    location.searchParams.set('digest', blob.digest);
    const put = await fetch(location, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: bytesOf(blob.bytes),
    });
    await expectStatus(put, [201], `uploading ${blob.digest}`);
  };
  const pushManifest = async (manifest: Content, reference: string) => {
    const put = await fetch(`${base}/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': manifest.mediaType },
      body: bytesOf(manifest.bytes),
    });
    await expectStatus(put, [201], `putting manifest ${reference}`);
  };

  for (const blob of image.blobs) await pushBlob(blob);
  if ('index' in image) {
    for (const one of image.images) await pushManifest(one.manifest, one.manifest.digest);
    await pushManifest(image.index, options.tag ?? image.index.digest);
  } else {
    await pushManifest(image.manifest, options.tag ?? image.manifest.digest);
  }
}

/** A tar archive (ustar) of regular files, as image layers hold them. */
export function tarArchive(files: Record<string, Buffer | string>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, raw] of Object.entries(files)) {
    const data = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
    const header = Buffer.alloc(512);
    const field = (value: string, offset: number, length: number) => header.write(value, offset, length, 'ascii');
    field(name, 0, 100);
    field('0000644\0', 100, 8);
    field('0000000\0', 108, 8);
    field('0000000\0', 116, 8);
    field(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
    field('00000000000\0', 136, 12);
    field('        ', 148, 8);
    field('0', 156, 1);
    field('ustar\0', 257, 6);
    field('00', 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/**
 * An image whose layers are real gzipped tar archives with `diff_id`s in its config: what daemons
 * that unpack layers (containerd, Docker, podman) accept. One layer per entry of `layers`.
 */
export function buildUnpackableImage(options: { layers: Record<string, Buffer | string>[]; platform?: Platform }): TestImage {
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const tars = options.layers.map((files) => tarArchive(files));
  const layers = tars.map((tar) => content(OCI_LAYER, gzipSync(tar)));
  const config = content(
    OCI_CONFIG,
    Buffer.from(JSON.stringify({
      ...platform,
      created: new Date(0).toISOString(),
      config: { Env: [`MANIFOLD_TEST=${randomBytes(4).toString('hex')}`], Cmd: ['/hello'] },
      rootfs: { type: 'layers', diff_ids: tars.map((tar) => sha256(tar)) },
      history: tars.map(() => ({ created: new Date(0).toISOString(), created_by: 'manifold test' })),
    })),
  );
  const manifest = content(
    OCI_MANIFEST,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptor(config), layers: layers.map((layer) => descriptor(layer)) })),
  );
  return { platform, config, layers, manifest, blobs: [config, ...layers] };
}

/** A multi-platform index of unpackable images, each with its own files (so no blob is shared). */
export function buildUnpackableIndex(options: { platforms: Platform[]; layers: Record<string, Buffer | string>[] }): TestIndex {
  const images = options.platforms.map((platform) => buildUnpackableImage({
    platform,
    layers: options.layers.map((files) => ({ ...files, [`platform-${platform.architecture}`]: randomBytes(64).toString('hex') })),
  }));
  const index = content(
    OCI_INDEX,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: images.map((image) => descriptor(image.manifest, { platform: image.platform })) })),
  );
  return { index, images, blobs: images.flatMap((image) => image.blobs) };
}

/** A view of a Buffer's bytes (no copy) that fetch accepts under both Node's and the DOM's types (the console tests use the latter). */
function bytesOf(buffer: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(buffer.buffer as ArrayBuffer, buffer.byteOffset, buffer.byteLength);
}
