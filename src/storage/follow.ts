// Readers that follow an object while it is being written (DESIGN §3.2 single flight): every follower
// reads from the temporary file through its own position, so a slow follower costs neither the writer
// nor memory, and a follower that joins late still gets every byte from the first.
import { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { ByteRange } from './object-store.ts';

// Large reads: fewer syscalls, promises and buffers per byte served (measured in bench/run.ts).
const READ_CHUNK = 256 * 1024;

type State = { kind: 'writing' } | { kind: 'committed' } | { kind: 'failed'; error: Error };

/**
 * The shared state of one file being written: how many bytes are safely in it, whether it was
 * committed or failed, and its open handle (reference-counted: the writer holds one reference and each
 * follower one, so a follower keeps reading after the file was renamed into place).
 */
export class GrowingFile {
  #length = 0;
  #state: State = { kind: 'writing' };
  #handle: FileHandle | null;
  #references = 1;
  #changed = Promise.withResolvers<void>();
  readonly #openCommitted: () => Promise<FileHandle | null>;

  /**
   * @param handle the temporary file, opened for reading and writing; the writer's reference.
   * @param openCommitted opens the committed object, for followers that join after the writer let go.
   */
  constructor(handle: FileHandle, openCommitted: () => Promise<FileHandle | null>) {
    this.#handle = handle;
    this.#openCommitted = openCommitted;
  }

  /** Bytes written to the file so far (all of them once committed). */
  get length(): number {
    return this.#length;
  }

  get state(): State {
    return this.#state;
  }

  /** The writer has safely written `bytes` more bytes. */
  appended(bytes: number): void {
    this.#length += bytes;
    this.#notify();
  }

  committed(): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'committed' };
    this.#notify();
  }

  failed(error: Error): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'failed', error };
    this.#notify();
  }

  /** Resolves at the next append, commit or failure. */
  changed(): Promise<void> {
    return this.#changed.promise;
  }

  /** Takes a reference to the open handle; null once the writer and every follower let go of it. */
  acquire(): FileHandle | null {
    if (!this.#handle) return null;
    this.#references++;
    return this.#handle;
  }

  release(): void {
    if (--this.#references > 0 || !this.#handle) return;
    const handle = this.#handle;
    this.#handle = null;
    handle.close().catch(() => {});
  }

  openCommitted(): Promise<FileHandle | null> {
    return this.#openCommitted();
  }

  follow(range?: ByteRange): Readable {
    return new Follower(this, range);
  }

  #notify(): void {
    const previous = this.#changed;
    this.#changed = Promise.withResolvers<void>();
    previous.resolve();
  }
}

class Follower extends Readable {
  readonly #file: GrowingFile;
  readonly #range: ByteRange | undefined;
  #position: number;
  readonly #end: number;
  #handle: FileHandle | null;
  /** Whether #handle is a reference to the shared handle (released) or our own (closed). */
  #shared: boolean;
  #reading = false;

  constructor(file: GrowingFile, range?: ByteRange) {
    super({ highWaterMark: READ_CHUNK });
    if (range && (!Number.isSafeInteger(range.start) || range.start < 0 || !(range.end >= range.start))) {
      throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
    }
    this.#file = file;
    this.#range = range;
    this.#position = range?.start ?? 0;
    this.#end = range?.end ?? Infinity;
    // Taken now, synchronously: a follower created before the commit is sure to find the bytes.
    this.#handle = file.state.kind === 'failed' ? null : file.acquire();
    this.#shared = this.#handle !== null;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const state = this.#file.state;
    if (state.kind === 'failed') return callback(state.error);
    if (this.#handle) return callback();
    // Joined after the writer committed and let go of the file: read the committed object.
    this.#file.openCommitted().then((handle) => {
      if (!handle) return callback(new Error('the object is no longer stored'));
      this.#handle = handle;
      callback();
    }, callback);
  }

  override _read(size: number): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#next(Math.max(size, READ_CHUNK)).then(
      (chunk) => {
        this.#reading = false;
        if (chunk !== undefined && !this.destroyed) this.push(chunk);
      },
      (error: Error) => {
        this.#reading = false;
        this.destroy(error);
      },
    );
  }

  /** The next chunk, null at the end, or undefined when the stream was destroyed meanwhile. */
  async #next(size: number): Promise<Buffer | null | undefined> {
    for (;;) {
      if (this.destroyed) return undefined;
      const state = this.#file.state;
      if (state.kind === 'failed') throw state.error;
      if (this.#position > this.#end) return null;
      const available = this.#file.length;
      if (this.#position < available) {
        const length = Math.min(size, available - this.#position, this.#end - this.#position + 1);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await this.#handle!.read(buffer, 0, length, this.#position);
        if (this.destroyed) return undefined;
        if (bytesRead === 0) throw new Error('the object was truncated while being read');
        this.#position += bytesRead;
        return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
      }
      if (state.kind === 'committed') {
        if (this.#range && this.#range.start >= available) {
          throw new RangeError(`byte range ${this.#range.start}-${this.#range.end} starts beyond the object (${available} bytes)`);
        }
        return null;
      }
      await this.#file.changed();
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.#handle;
    this.#handle = null;
    if (handle && this.#shared) this.#file.release();
    else if (handle) handle.close().catch(() => {});
    callback(error);
  }
}
