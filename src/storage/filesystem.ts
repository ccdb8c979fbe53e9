// The default backend: one file per digest under <root>/<algorithm>/<first two hex>/<hex>. Its spool is
// <root>/tmp/, on the same filesystem, so a commit is fsync + rename (atomic) + directory fsync: a file
// under its digest always holds exactly those bytes.
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { DIGEST_ALGORITHMS, parseDigest } from '../oci/reference.ts';
import type { StorageBackend, VerifiedSpool } from './backend.ts';
import { FileObjectStream } from './file-stream.ts';
import { PRIVATE_DIRECTORY, clampRange, requireDigest } from './object-store.ts';
import type { ByteRange, ObjectInfo } from './object-store.ts';
import { SpooledObjectStore } from './spooled-store.ts';

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class FilesystemBackend implements StorageBackend {
  readonly kind = 'filesystem';
  readonly root: string;
  /** Fan-out directories known to exist. */
  readonly #directories = new Set<string>();

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  async init(): Promise<void> {
    // Owner only, like the keys: cached images may be private ones.
    for (const algorithm of Object.keys(DIGEST_ALGORITHMS)) await mkdir(path.join(this.root, algorithm), { recursive: true, mode: PRIVATE_DIRECTORY });
  }

  /** The file of a committed object. */
  objectPath(digest: string): string {
    const { algorithm, hex } = requireDigest(digest);
    return path.join(this.root, algorithm, hex.slice(0, 2), hex);
  }

  async stat(digest: string): Promise<ObjectInfo | null> {
    try {
      const info = await stat(this.objectPath(digest));
      return { digest, size: info.size, modifiedAt: info.mtimeMs };
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async read(digest: string, range?: ByteRange): Promise<Readable | null> {
    const handle = await this.openLocal(digest);
    if (!handle) return null;
    try {
      const { size } = await handle.stat();
      const { start, end } = range ? clampRange(range, size) : { start: 0, end: Math.max(size - 1, 0) };
      // An empty object: a stream that ends at once (createReadStream cannot express end < start).
      if (size === 0) {
        await handle.close();
        return Readable.from([]);
      }
      return new FileObjectStream(handle, start, end);
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  /** Makes the spool durable, renames it into place and makes the new name durable. */
  async commit(spool: VerifiedSpool): Promise<void> {
    await spool.handle.sync();
    const target = this.objectPath(spool.digest);
    const directory = path.dirname(target);
    if (!this.#directories.has(directory)) {
      const created = await mkdir(directory, { recursive: true, mode: PRIVATE_DIRECTORY });
      if (created) await fsyncDirectory(path.dirname(directory));
      this.#directories.add(directory);
    }
    await rename(spool.path, target);
    await fsyncDirectory(directory);
  }

  async delete(digest: string): Promise<void> {
    try {
      await unlink(this.objectPath(digest));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  async *list(): AsyncIterable<ObjectInfo> {
    for (const algorithm of Object.keys(DIGEST_ALGORITHMS)) {
      const top = path.join(this.root, algorithm);
      for (const fanOut of await readdirIfPresent(top)) {
        for (const hex of await readdirIfPresent(path.join(top, fanOut))) {
          const digest = `${algorithm}:${hex}`;
          // Only names a commit could have made; anything else in the tree is not an object.
          if (!parseDigest(digest) || hex.slice(0, 2) !== fanOut) continue;
          const info = await this.stat(digest);
          if (info) yield info;
        }
      }
    }
  }

  async ping(): Promise<boolean> {
    try {
      await access(this.root, constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  async openLocal(digest: string): Promise<FileHandle | null> {
    try {
      return await open(this.objectPath(digest), 'r');
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }
}

async function readdirIfPresent(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

export interface FilesystemObjectStoreOptions {
  root: string;
}

/** The object store on the filesystem backend, spooling into <root>/tmp. */
export class FilesystemObjectStore extends SpooledObjectStore {
  readonly root: string;
  declare readonly backend: FilesystemBackend;

  constructor(options: FilesystemObjectStoreOptions) {
    const backend = new FilesystemBackend(options.root);
    super({ backend, spoolDirectory: path.join(backend.root, 'tmp') });
    this.root = backend.root;
  }

  /** The file of a committed object (for diagnostics and tests; callers go through read()). */
  objectPath(digest: string): string {
    return this.backend.objectPath(digest);
  }
}
