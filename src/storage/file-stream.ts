// The stream of a committed object's file. Piped into an HTTP response (Fastify pipes a stream body),
// it copies through a few reused buffers and reuses each one only once the socket has written it: no
// fresh Buffer per chunk, so serving GB/s does not drive the garbage collector (bench/README.md has
// the measurements). Read any other way (for await, 'data'), it is an ordinary file stream.
import { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';

/** Bytes per read: fewer syscalls, socket writes and stream steps per byte than Node's 64 KiB. */
export const FILE_CHUNK_BYTES = 256 * 1024;
/** Buffers per piped stream: one being read while the others are being written. */
const BUFFERS_PER_COPY = 3;
/** Spare buffers kept for the next responses (a few MiB at most). */
const SPARE_BUFFERS_MAX = 48;

const spareBuffers: Buffer[] = [];

function takeBuffer(): Buffer {
  return spareBuffers.pop() ?? Buffer.allocUnsafeSlow(FILE_CHUNK_BYTES);
}

function giveBack(buffer: Buffer): void {
  if (spareBuffers.length < SPARE_BUFFERS_MAX) spareBuffers.push(buffer);
}

/** What a response (or any legacy or modern writable) offers: write with a completion callback. */
interface WritableTarget {
  write(chunk: Buffer, callback: (error?: Error | null) => void): boolean;
  end(): unknown;
}

function isWritableTarget(value: unknown): value is WritableTarget {
  return typeof (value as WritableTarget).write === 'function' && typeof (value as WritableTarget).end === 'function';
}

export class FileObjectStream extends Readable {
  #handle: FileHandle | null;
  #position: number;
  /** Inclusive. */
  readonly #end: number;
  #passed = 0;
  #copying = false;

  /** Reads bytes start..end (inclusive) of an open file; closes the handle when done or destroyed. */
  constructor(handle: FileHandle, start: number, end: number) {
    super({ highWaterMark: FILE_CHUNK_BYTES });
    this.#handle = handle;
    this.#position = start;
    this.#end = end;
  }

  /** Bytes handed on so far (to a reader or written to the piped destination). */
  get bytesPassed(): number {
    return this.#passed;
  }

  override _read(size: number): void {
    const length = Math.min(Math.max(size, FILE_CHUNK_BYTES), this.#end - this.#position + 1);
    if (length <= 0 || !this.#handle) {
      this.push(null);
      return;
    }
    const buffer = Buffer.allocUnsafe(length);
    this.#handle.read(buffer, 0, length, this.#position).then(
      ({ bytesRead }) => {
        if (this.destroyed) return;
        if (bytesRead === 0) return this.destroy(new Error('the object was truncated while being read'));
        this.#position += bytesRead;
        this.#passed += bytesRead;
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
      },
      (error: Error) => this.destroy(error),
    );
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    // Only a fresh stream piped once takes the fast path; anything else behaves like any Readable.
    if (this.#copying || this.readableFlowing !== null || this.readableLength > 0 || !isWritableTarget(destination)) {
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
    const buffers = Array.from({ length: BUFFERS_PER_COPY }, takeBuffer);
    // The write still using each buffer; a buffer is read into again only after it settled.
    const writes: Array<Promise<void> | null> = buffers.map(() => null);
    const settled: boolean[] = buffers.map(() => true);
    try {
      for (let slot = 0; this.#position <= this.#end; slot = (slot + 1) % buffers.length) {
        await writes[slot];
        if (this.destroyed || !this.#handle) return false;
        const buffer = buffers[slot];
        const length = Math.min(buffer.length, this.#end - this.#position + 1);
        const { bytesRead } = await this.#handle.read(buffer, 0, length, this.#position);
        if (this.destroyed) return false;
        if (bytesRead === 0) throw new Error('the object was truncated while being read');
        this.#position += bytesRead;
        settled[slot] = false;
        writes[slot] = new Promise<void>((resolve, reject) => {
          destination.write(buffer.subarray(0, bytesRead), (error) => {
            settled[slot] = true;
            if (error) reject(error);
            else resolve();
          });
        });
        // Counted as written once handed over; a failed write destroys the response anyway.
        this.#passed += bytesRead;
        writes[slot]!.catch(() => {});
      }
      await Promise.all(writes);
      if (end) destination.end();
      return !this.destroyed;
    } finally {
      // A buffer the socket may still be reading (a response cut mid-write) is left to the GC.
      buffers.forEach((buffer, slot) => settled[slot] && giveBack(buffer));
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = null;
    if (!handle) return callback(error);
    handle.close().then(() => callback(error), () => callback(error));
  }
}
