// The stream of a committed object's file (see object-stream.ts for how it is served).
import type { FileHandle } from 'node:fs/promises';
import { CHUNK_BYTES, ObjectStream } from './object-stream.ts';

export class FileObjectStream extends ObjectStream {
  #handle: FileHandle | null;
  #position: number;
  /** Inclusive. */
  readonly #end: number;

  /** Reads bytes start..end (inclusive) of an open file; closes the handle when done or destroyed. */
  constructor(handle: FileHandle, start: number, end: number) {
    super();
    this.#handle = handle;
    this.#position = start;
    this.#end = end;
  }

  protected override async nextChunk(buffer: (wanted: number) => Buffer): Promise<Buffer | null> {
    if (this.#position > this.#end || !this.#handle) return null;
    const wanted = Math.min(CHUNK_BYTES, this.#end - this.#position + 1);
    const into = buffer(wanted);
    const length = Math.min(into.length, wanted);
    const { bytesRead } = await this.#handle.read(into, 0, length, this.#position);
    if (bytesRead === 0) throw new Error('the object was truncated while being read');
    this.#position += bytesRead;
    return into.subarray(0, bytesRead);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = null;
    if (!handle) return callback(error);
    handle.close().then(() => callback(error), () => callback(error));
  }
}
