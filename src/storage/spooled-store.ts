// The object store the services use (object-store.ts): a spool that fills write into (spool.ts) in
// front of one backend that holds the committed objects (backend.ts). Digests are validated here, once,
// for every backend.
import type { Readable } from 'node:stream';
import type { StorageBackend } from './backend.ts';
import { requireDigest } from './object-store.ts';
import type { ByteRange, ObjectInfo, ObjectStore, ObjectWriter } from './object-store.ts';
import { Spool } from './spool.ts';

export interface SpooledObjectStoreOptions {
  backend: StorageBackend;
  /** The local directory fills write into before the backend commits them. */
  spoolDirectory: string;
}

export class SpooledObjectStore implements ObjectStore {
  readonly backend: StorageBackend;
  readonly spool: Spool;
  /** Digests with read streams open in this process, and how many. */
  readonly #reading = new Map<string, number>();

  constructor(options: SpooledObjectStoreOptions) {
    const backend = options.backend;
    this.backend = backend;
    this.spool = new Spool({
      directory: options.spoolDirectory,
      commit: (spool) => backend.commit(spool),
      openCommitted: async (digest) => (backend.openLocal ? backend.openLocal(digest) : null),
    });
  }

  async init(): Promise<void> {
    await this.spool.init();
    await this.backend.init();
  }

  async stat(digest: string): Promise<ObjectInfo | null> {
    requireDigest(digest);
    return this.backend.stat(digest);
  }

  async read(digest: string, range?: ByteRange): Promise<Readable | null> {
    requireDigest(digest);
    const stream = await this.backend.read(digest, range);
    if (!stream) return null;
    this.#reading.set(digest, (this.#reading.get(digest) ?? 0) + 1);
    stream.once('close', () => {
      const left = (this.#reading.get(digest) ?? 1) - 1;
      if (left > 0) this.#reading.set(digest, left);
      else this.#reading.delete(digest);
    });
    return stream;
  }

  /** True while a stream of this object read in this process is open (the destroyer leaves it alone). */
  reading(digest: string): boolean {
    return this.#reading.has(digest);
  }

  async createWriter(expectedDigest: string | null): Promise<ObjectWriter> {
    return this.spool.createWriter(expectedDigest === null ? null : requireDigest(expectedDigest));
  }

  async delete(digest: string): Promise<void> {
    requireDigest(digest);
    return this.backend.delete(digest);
  }

  list(): AsyncIterable<ObjectInfo> {
    return this.backend.list();
  }

  async redirectUrl(digest: string): Promise<string | null> {
    requireDigest(digest);
    return this.backend.redirectUrl ? this.backend.redirectUrl(digest) : null;
  }

  async ping(): Promise<boolean> {
    const [spool, backend] = await Promise.all([this.spool.ping(), this.backend.ping()]);
    return spool && backend;
  }
}
