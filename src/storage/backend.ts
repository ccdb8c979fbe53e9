// The small interface every storage backend implements (DESIGN §8): where committed objects live.
// What every backend shares, the spool a fill writes into (temporary file, hashing while writing,
// followers, hold-back, verification), is spool.ts; a backend only ever sees a spool that is complete
// and verified, so nothing unverified can become visible under a digest whatever the backend.
// Every backend passes one test suite (test/storage/backend-suite.ts).
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ByteRange, ObjectInfo } from './object-store.ts';

/** A complete temporary file whose bytes hash to `digest`, handed to a backend to commit. */
export interface VerifiedSpool {
  readonly digest: string;
  readonly size: number;
  /** The temporary file. The backend may move it (rename); whatever is left at this path is removed after the commit. */
  readonly path: string;
  /** The file, open for reading and writing; the backend reads or syncs it but never closes it. */
  readonly handle: FileHandle;
}

export interface StorageBackend {
  /** What it is, for logs and /readyz (`filesystem`, `s3`). */
  readonly kind: string;
  /** Prepares the backend at start and removes what a killed process left on its side (not the spool's files). */
  init(): Promise<void>;
  /** The committed object's size; null when it is not stored. Digests are validated by the caller. */
  stat(digest: string): Promise<ObjectInfo | null>;
  /**
   * The committed object's bytes, or a range of them; null when it is not stored. The range's end is
   * clamped to the last byte; a start at or beyond the size throws a RangeError.
   */
  read(digest: string, range?: ByteRange): Promise<Readable | null>;
  /** Makes a verified spool durable and visible under its digest, atomically; an existing object with that digest stays as it is. */
  commit(spool: VerifiedSpool): Promise<void>;
  /** Removes the object; removing one that is not stored is not an error. */
  delete(digest: string): Promise<void>;
  /** Every committed object, in no particular order (repair, audits). */
  list(): AsyncIterable<ObjectInfo>;
  /** True when objects can be read and written now. */
  ping(): Promise<boolean>;
  /** A URL a client may fetch the committed object from directly (pre-signed), or null; only backends configured to redirect offer it. */
  redirectUrl?(digest: string): Promise<string | null>;
  /**
   * A backend whose objects are local files opens one: fill followers that join after the commit read
   * it through their own position. Other backends leave it out (the fill's clients then read the store).
   */
  openLocal?(digest: string): Promise<FileHandle | null>;
}
