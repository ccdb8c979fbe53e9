// The S3 backend (DESIGN §8): one object per digest at <prefix><algorithm>/<hex> in one bucket, shared
// by every replica. A fill spools and verifies locally (spool.ts) and only then uploads the file
// (multipart above one part, each part read from the file as it is sent), so nothing unverified ever
// becomes visible: S3 shows an object only once its PutObject or CompleteMultipartUpload succeeded, and
// a failed upload is aborted. Hits are ranged GETs streamed through, or, with `redirect`, a pre-signed
// URL the client fetches itself.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { Logger } from '../log.ts';
import { parseDigest } from '../oci/reference.ts';
import type { StorageBackend, VerifiedSpool } from './backend.ts';
import { requireDigest } from './object-store.ts';
import type { ByteRange, ObjectInfo } from './object-store.ts';

const MiB = 1024 * 1024;
/** S3 allows at most this many parts; bigger objects get bigger parts. */
const MAX_PARTS = 10_000;
/** Parts uploaded at once per object. */
const PARTS_IN_FLIGHT = 2;
/** A multipart upload this old at a start is a leftover of a killed process (an upload of a spool takes minutes at most). */
const STALE_UPLOAD_MS = 60 * 60 * 1000;

export interface S3BackendOptions {
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
  region?: string;
  endpoint?: string;
  forcePathStyle: boolean;
  /** Static credentials; unset: the SDK's default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  redirect: boolean;
  redirectExpirySeconds: number;
  partSizeBytes: number;
  logger?: Logger;
}

function status(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** `length` bytes of the file from `start`, read by a descriptor of its own (the spool's handle is shared with the fill's followers). */
function fileRange(file: string, start: number, length: number): Readable {
  // createReadStream cannot express an empty range (end < start).
  return length === 0 ? Readable.from([]) : createReadStream(file, { start, end: start + length - 1, highWaterMark: MiB });
}

const isNotFound = (error: unknown) => status(error) === 404 || (error as Error)?.name === 'NoSuchKey' || (error as Error)?.name === 'NotFound';

export class S3Backend implements StorageBackend {
  readonly kind = 's3';
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  readonly #options: S3BackendOptions;

  constructor(options: S3BackendOptions) {
    this.#options = options;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.client = new S3Client({
      region: options.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION ? undefined : 'us-east-1'),
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      // Manifold verifies every object's digest before it uploads it; the SDK's default CRC trailers
      // (aws-chunked bodies) are not understood by several S3-compatible stores.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // A bucket that does not answer fails the request (and /readyz) instead of hanging it.
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
    });
  }

  /** The object's key. */
  key(digest: string): string {
    const { algorithm, hex } = requireDigest(digest);
    return `${this.prefix}${algorithm}/${hex}`;
  }

  /** Aborts multipart uploads a killed process left under the prefix (best effort: not every S3-compatible store lists them). */
  async init(): Promise<void> {
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId || !upload.Initiated || Date.now() - upload.Initiated.getTime() < STALE_UPLOAD_MS) continue;
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }));
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (error) {
      this.#options.logger?.warn({ err: (error as Error).message, bucket: this.bucket }, 'cannot list unfinished multipart uploads; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes them');
    }
  }

  async stat(digest: string): Promise<ObjectInfo | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }));
      return { digest, size: head.ContentLength ?? 0, modifiedAt: head.LastModified?.getTime() };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  }

  async read(digest: string, range?: ByteRange): Promise<Readable | null> {
    if (range && (!Number.isSafeInteger(range.start) || range.start < 0 || !(range.end >= range.start))) {
      throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
    }
    try {
      const got = await this.client.send(new GetObjectCommand({
        Bucket: this.bucket,
        Key: this.key(digest),
        Range: range ? `bytes=${range.start}-${Number.isFinite(range.end) ? range.end : ''}` : undefined,
      }));
      return got.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) return null;
      if (status(error) === 416 || (error as Error)?.name === 'InvalidRange') {
        throw new RangeError(`byte range ${range?.start}-${range?.end} starts beyond the object`, { cause: error });
      }
      throw error;
    }
  }

  /**
   * Uploads the verified spool, unless the object is already there: one PUT up to a part's size, else a
   * multipart upload that is aborted when any part fails. Every request body is a range of the spool
   * file read from disk as it is sent, so an upload holds no part in memory.
   */
  async commit(spool: VerifiedSpool): Promise<void> {
    const existing = await this.stat(spool.digest);
    if (existing && existing.size === spool.size) return;
    const key = this.key(spool.digest);
    const partSize = Math.max(this.#options.partSizeBytes, Math.ceil(spool.size / MAX_PARTS));
    if (spool.size <= partSize) {
      const body = fileRange(spool.path, 0, spool.size);
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: spool.size, ContentType: 'application/octet-stream' }));
      } finally {
        body.destroy();
      }
      return;
    }
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: 'application/octet-stream' }));
    const uploadId = created.UploadId!;
    try {
      const count = Math.ceil(spool.size / partSize);
      const parts: CompletedPart[] = new Array(count);
      let next = 0;
      // The first failure stops the other uploader from starting parts; both settle before the abort,
      // so no part is still reading the spool file when it is removed.
      let failure: { error: unknown } | null = null;
      const uploader = async () => {
        for (let index = next++; index < count && !failure; index = next++) {
          const start = index * partSize;
          const length = Math.min(partSize, spool.size - start);
          const body = fileRange(spool.path, start, length);
          try {
            const uploaded = await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: index + 1, Body: body, ContentLength: length }));
            parts[index] = { PartNumber: index + 1, ETag: uploaded.ETag };
          } catch (error) {
            failure ??= { error };
          } finally {
            body.destroy();
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARTS_IN_FLIGHT, count) }, uploader));
      if (failure) throw (failure as { error: unknown }).error;
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
    } catch (error) {
      // The parts never become an object; aborting frees them.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => {});
      throw error;
    }
  }

  async delete(digest: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }));
  }

  async *list(): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        const [algorithm, hex, ...rest] = (object.Key ?? '').slice(this.prefix.length).split('/');
        const digest = `${algorithm}:${hex}`;
        // Only keys a commit could have made; anything else under the prefix is not an object.
        if (rest.length > 0 || !parseDigest(digest)) continue;
        yield { digest, size: object.Size ?? 0, modifiedAt: object.LastModified?.getTime() };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async ping(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(5_000) });
      return true;
    } catch {
      return false;
    }
  }

  async redirectUrl(digest: string): Promise<string | null> {
    if (!this.#options.redirect) return null;
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }), { expiresIn: this.#options.redirectExpirySeconds });
  }
}
