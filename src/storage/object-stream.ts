// The stream every stored or filling object is served through. Piped into an HTTP response (Fastify
// pipes a stream body), it reads into a few reused buffers and reuses each one only once the socket has
// written it: no fresh Buffer per chunk, so serving GB/s to many clients neither drives the garbage
// collector nor leaves dead buffers resident until it runs (bench/README.md has the measurements). Read
// any other way (for await, 'data'), it is an ordinary stream with a fresh Buffer per chunk.
import { Readable } from 'node:stream';

/**
 * Bytes per read: fewer syscalls, socket writes and stream steps per byte than Node's 64 KiB (512 KiB
 * served a stored blob 1.3-1.4× as fast as 256 KiB for a few MB more at the peak; bench/README.md).
 */
export const CHUNK_BYTES = 512 * 1024;
/** Buffers per piped stream: one being read while the other is being written. */
const BUFFERS_PER_COPY = 2;
/** Spare buffers kept for the next responses (12 MiB at most). */
const SPARE_BUFFERS_MAX = 24;
/**
 * What the copies in flight hold in buffers together, at most (issue 19): past it a new copy reads in
 * smaller chunks, down to MIN_CHUNK_BYTES, so that 16 clients at once do not hold 16 MiB (the peak of the
 * bench's 16 concurrent pulls); the first few, which a busy link serves fastest, keep the large ones.
 */
const COPY_BUFFER_BUDGET = 8 * 1024 * 1024;
const MIN_CHUNK_BYTES = 256 * 1024;

const spareBuffers: Buffer[] = [];
/** Bytes of the buffers the copies in flight hold. */
let copyBufferBytes = 0;

/** The chunk size of a copy starting now: CHUNK_BYTES while the budget allows. */
function copyChunkBytes(): number {
  let size = CHUNK_BYTES;
  while (size > MIN_CHUNK_BYTES && copyBufferBytes + BUFFERS_PER_COPY * size > COPY_BUFFER_BUDGET) size /= 2;
  return size;
}

function takeBuffer(size: number): Buffer {
  return (size === CHUNK_BYTES ? spareBuffers.pop() : undefined) ?? Buffer.allocUnsafeSlow(size);
}

function giveBack(buffer: Buffer): void {
  if (buffer.length === CHUNK_BYTES && spareBuffers.length < SPARE_BUFFERS_MAX) spareBuffers.push(buffer);
}

/**
 * Lets the spare buffers go (up to 12 MiB, kept from the last busy period): called when the server has gone
 * quiet (src/memory-release.ts); the next responses allocate afresh. Returns the bytes let go.
 */
export function dropSpareBuffers(): number {
  const bytes = spareBuffers.length * CHUNK_BYTES;
  spareBuffers.length = 0;
  return bytes;
}

/** What a response (or any legacy or modern writable) offers: write with a completion callback. */
interface WritableTarget {
  write(chunk: Buffer, callback: (error?: Error | null) => void): boolean;
  end(): unknown;
}

function isWritableTarget(value: unknown): value is WritableTarget {
  return typeof (value as WritableTarget).write === 'function' && typeof (value as WritableTarget).end === 'function';
}

export abstract class ObjectStream extends Readable {
  #passed = 0;
  #reading = false;
  #copying = false;

  constructor() {
    super({ highWaterMark: CHUNK_BYTES });
  }

  /** Bytes handed on so far (to a reader or written to the piped destination). */
  get bytesPassed(): number {
    return this.#passed;
  }

  /**
   * The next bytes: read into `buffer(wanted)` (a buffer for at most CHUNK_BYTES, perhaps longer than
   * `wanted`; the bytes go to its start), or a Buffer already in memory that nobody changes; null at the
   * end. Called again only after the previous call settled.
   */
  protected abstract nextChunk(buffer: (wanted: number) => Buffer): Promise<Buffer | null>;

  override _read(): void {
    if (this.#reading || this.#copying) return;
    this.#reading = true;
    this.nextChunk((wanted) => Buffer.allocUnsafe(Math.min(wanted, CHUNK_BYTES))).then(
      (chunk) => {
        this.#reading = false;
        if (this.destroyed) return;
        if (chunk) this.#passed += chunk.length;
        this.push(chunk);
      },
      (error: Error) => {
        this.#reading = false;
        this.destroy(error);
      },
    );
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    // Only a fresh stream piped once takes the fast path; anything else behaves like any Readable.
    if (this.#copying || this.#reading || this.readableFlowing !== null || this.readableLength > 0 || !isWritableTarget(destination)) {
      return super.pipe(destination, options);
    }
    this.#copying = true;
    this.#copyTo(destination, options?.end !== false).then(
      (finished) => {
        if (!finished || this.destroyed) return;
        // Ends the readable side too, so whoever waits for its end (Fastify's end-of-stream) sees it.
        this.push(null);
        this.resume();
      },
      (error: Error) => this.destroy(error),
    );
    return destination;
  }

  /** Copies the bytes; false when the stream was destroyed meanwhile (the client went away). */
  async #copyTo(destination: WritableTarget, end: boolean): Promise<boolean> {
    const size = copyChunkBytes();
    const buffers = Array.from({ length: BUFFERS_PER_COPY }, () => takeBuffer(size));
    copyBufferBytes += size * BUFFERS_PER_COPY;
    // The write still using each slot; a slot's buffer is read into again only after it settled.
    const writes: Array<Promise<void> | null> = buffers.map(() => null);
    const settled: boolean[] = buffers.map(() => true);
    try {
      for (let slot = 0; ; slot = (slot + 1) % buffers.length) {
        await writes[slot];
        if (this.destroyed) return false;
        const chunk = await this.nextChunk(() => buffers[slot]);
        if (this.destroyed) return false;
        if (!chunk) break;
        settled[slot] = false;
        writes[slot] = new Promise<void>((resolve, reject) => {
          destination.write(chunk, (error) => {
            settled[slot] = true;
            if (error) reject(error);
            else resolve();
          });
        });
        // Counted as written once handed over; a failed write destroys the response anyway.
        this.#passed += chunk.length;
        writes[slot]!.catch(() => {});
      }
      await Promise.all(writes);
      if (end) destination.end();
      return !this.destroyed;
    } finally {
      copyBufferBytes -= size * BUFFERS_PER_COPY;
      // A buffer the socket may still be reading (a response cut mid-write) is left to the GC.
      buffers.forEach((buffer, slot) => settled[slot] && giveBack(buffer));
    }
  }
}
