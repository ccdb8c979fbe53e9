// Response bodies: small ones read whole with a ceiling, blobs handed on as a stream that can never end
// "cleanly" short of what the upstream announced.
import { pipeline, Transform } from 'node:stream';
import type { Readable } from 'node:stream';

export class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

const ignore = () => {};

/** Drains a body nobody needs (keeps the connection reusable); its errors no longer matter. */
export function discard(body: Readable): void {
  body.on('error', ignore);
  body.resume();
}

/** Drops a body without reading it (the connection is closed); its errors no longer matter. */
export function abandon(body: Readable): void {
  body.on('error', ignore);
  body.destroy();
}

/** Reads a body up to `limit` bytes; past that the body is destroyed and BodyTooLargeError thrown. */
export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > limit) {
      abandon(body);
      throw new BodyTooLargeError(limit);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}

/** Reads a small body as text for an error message; never throws. */
export async function readMessage(body: Readable, limit = 64 * 1024): Promise<string> {
  try {
    return (await readLimited(body, limit)).toString('utf8');
  } catch {
    abandon(body);
    return '';
  }
}

export class TruncatedBodyError extends Error {
  readonly code = 'MANIFOLD_TRUNCATED_BODY';
  constructor(message: string) {
    super(message);
    this.name = 'TruncatedBodyError';
  }
}

/**
 * The body as a stream that errors, rather than ends, when fewer (or more) bytes arrive than
 * `expected`. Errors and aborts of the source reach the returned stream; destroying the returned stream
 * destroys the source (and so frees the connection).
 */
export function guardedBody(source: Readable, expected: number | null, host: string): Readable {
  let seen = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (expected !== null && seen > expected) callback(new TruncatedBodyError(`${host}: the body is longer than its Content-Length ${expected}`));
      else callback(null, chunk);
    },
    flush(callback) {
      if (expected !== null && seen !== expected) callback(new TruncatedBodyError(`${host}: the body ended after ${seen} of ${expected} bytes`));
      else callback();
    },
  });
  pipeline(source, guard, () => {
    // pipeline already destroyed the guard with the error (if any); nothing else to do
  });
  return guard;
}
