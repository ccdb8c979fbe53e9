// The content-addressed object store (DESIGN §1 stored object, §3.2): the bytes of every cached
// manifest and blob, one copy per digest. What the services see: one implementation
// (spooled-store.ts), a fill spool in front of a backend (filesystem by default, or S3; backend.ts).
import type { Readable } from 'node:stream';
import type { Result } from '../result.ts';
import { parseDigest } from '../oci/reference.ts';
import type { Digest } from '../oci/reference.ts';

/** Modes of the directories and files the local stores create: the owner's only, like the keys (the umask may take more). */
export const PRIVATE_DIRECTORY = 0o700;
export const PRIVATE_FILE = 0o600;

/** Inclusive on both ends, like an HTTP `Range: bytes=start-end`. `end` may be Infinity ("to the end"). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectInfo {
  digest: string;
  size: number;
  /** When the object was committed (epoch ms), where the backend tells (stat and list of filesystem and S3). */
  modifiedAt?: number;
}

export interface ObjectStore {
  /** Creates directories and removes temporary files left by a killed process. */
  init(): Promise<void>;
  /** The committed object's size; null when it is not stored. */
  stat(digest: string): Promise<ObjectInfo | null>;
  /**
   * The committed object's bytes (optionally a range); null when it is not stored. The range's end is
   * clamped to the last byte; a start at or beyond the size throws a RangeError (HTTP 416).
   */
  read(digest: string, range?: ByteRange): Promise<Readable | null>;
  /**
   * Starts writing an object. expectedDigest null = digest unknown in advance (computed as sha256;
   * e.g. a manifest fetched by tag without Docker-Content-Digest).
   */
  createWriter(expectedDigest: string | null): Promise<ObjectWriter>;
  /** Removes the object; removing one that is not stored is not an error. */
  delete(digest: string): Promise<void>;
  /** Every committed object (repair, audits). */
  list(): AsyncIterable<ObjectInfo>;
  /** A pre-signed URL clients may fetch the committed object from directly; null when the backend does not redirect. */
  redirectUrl(digest: string): Promise<string | null>;
  /** True when the store can be read and written. */
  ping(): Promise<boolean>;
}

export interface ObjectWriter {
  /** Bytes taken by write() so far. */
  readonly bytesWritten: number;
  /**
   * Takes the next chunk. Resolves at once while little is on its way to storage, otherwise once that
   * has been written (backpressure). A failed write rejects this call or a later one, and verify().
   * Followers may be handed the chunk itself: the caller must not change it afterwards.
   */
  write(chunk: Buffer): Promise<void>;
  /**
   * Ends the write and checks the bytes against the digest (and the size if given). Once it is ok,
   * followers end at the last byte: what they passed on is exactly the object. Result reason 'invalid'
   * on a mismatch (the temporary file is removed, followers get the error).
   */
  verify(expectedSize?: number): Promise<Result<ObjectInfo>>;
  /**
   * Verifies (unless verify() already did) and makes the object durable and visible under its digest
   * (fsync, rename). Committing an object that already exists is fine (same bytes).
   */
  commit(expectedSize?: number): Promise<Result<ObjectInfo>>;
  /** Discards the temporary file; followers that have not ended get this error. */
  abort(reason: Error): Promise<void>;
  /**
   * A stream of the bytes written so far and those still to come (optionally a range); ends once the
   * bytes are verified, errors after abort or a failed verification (with `failure(reason)` when given).
   * Until the bytes are verified it holds back the end of its stream (the latest chunk written, a
   * range's last byte), so it never reaches its full length with bytes that fail verification. Any
   * number of followers, each at its own pace; a slow follower never holds back the writer and never
   * makes it buffer.
   */
  follow(range?: ByteRange, failure?: (reason: Error) => Error): Readable;
}

/** A digest the store cannot address: malformed, or of an algorithm it cannot verify. */
export class InvalidDigestError extends TypeError {
  constructor(digest: string) {
    super(`unsupported or malformed digest: ${JSON.stringify(digest.slice(0, 200))}`);
    this.name = 'InvalidDigestError';
  }
}

/** Parses a digest of a supported algorithm (sha256, sha512) or throws InvalidDigestError. */
export function requireDigest(value: string): Digest {
  const digest = parseDigest(value);
  if (!digest) throw new InvalidDigestError(value);
  return digest;
}

/** Validates a range against a size; returns the inclusive end clamped to the last byte. */
export function clampRange(range: ByteRange, size: number): { start: number; end: number } {
  if (!Number.isSafeInteger(range.start) || range.start < 0 || !(range.end >= range.start)) {
    throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
  }
  if (range.start >= size) throw new RangeError(`byte range ${range.start}-${range.end} starts beyond the object (${size} bytes)`);
  return { start: range.start, end: Math.min(range.end, size - 1) };
}
