// Readers that follow an object while it is being written (DESIGN §3.2 single flight). A follower that
// has caught up with the writer is handed each chunk the writer appends, the same Buffer for all of
// them (no read, no copy); one that fell behind reads from the temporary file through its own
// position. So a slow follower costs neither the writer nor memory, a follower that joins late still
// gets every byte from the first, and N followers at the head cost no more than one.
import { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { ByteRange } from './object-store.ts';

// Large reads: fewer syscalls, promises and buffers per byte served (measured in bench/run.ts).
const READ_CHUNK = 256 * 1024;

/** complete: every byte is written and verified (what happens to the file afterwards is the writer's). */
type State = { kind: 'writing' } | { kind: 'complete' } | { kind: 'failed'; error: Error };

/**
 * The shared state of one file being written: how many bytes are safely in it, whether it is complete
 * or failed, and its open handle (reference-counted: the writer holds one reference and each
 * follower one, so a follower keeps reading after the file was renamed into place).
 */
export class GrowingFile {
  #length = 0;
  #state: State = { kind: 'writing' };
  #handle: FileHandle | null;
  #references = 1;
  /** Followers that have read everything written so far and want the next chunk. */
  readonly #waiting = new Set<Follower>();
  readonly #openCommitted: () => Promise<FileHandle | null>;

  /**
   * @param handle the temporary file, opened for reading and writing; the writer's reference.
   * @param openCommitted opens the committed object, for followers that join after the writer let go.
   */
  constructor(handle: FileHandle, openCommitted: () => Promise<FileHandle | null>) {
    this.#handle = handle;
    this.#openCommitted = openCommitted;
  }

  /** Bytes written to the file so far (all of them once complete). */
  get length(): number {
    return this.#length;
  }

  get state(): State {
    return this.#state;
  }

  /**
   * The writer has safely written `chunk` at the end of the file. Waiting followers get the chunk
   * itself, so the writer must not change it afterwards.
   */
  appended(chunk: Buffer): void {
    const start = this.#length;
    this.#length += chunk.length;
    this.#wake((follower) => follower.offer(chunk, start));
  }

  /** Every byte is written and verified: followers end at the last one. */
  completed(): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'complete' };
    this.#wake((follower) => follower.writerFinished());
  }

  failed(error: Error): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'failed', error };
    this.#wake((follower) => follower.writerFinished());
  }

  /** Wakes `follower` at the next change (append, completion or failure), once. */
  wait(follower: Follower): void {
    this.#waiting.add(follower);
  }

  stopWaiting(follower: Follower): void {
    this.#waiting.delete(follower);
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

  #wake(each: (follower: Follower) => void): void {
    if (this.#waiting.size === 0) return;
    // A follower may wait again while being woken: it is woken by the next change, not this one.
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const follower of waiting) each(follower);
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
  /** A file read is in flight or the follower waits for the writer: _read has nothing to start. */
  #busy = false;

  constructor(file: GrowingFile, range?: ByteRange) {
    super({ highWaterMark: READ_CHUNK });
    if (range && (!Number.isSafeInteger(range.start) || range.start < 0 || !(range.end >= range.start))) {
      throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
    }
    this.#file = file;
    this.#range = range;
    this.#position = range?.start ?? 0;
    this.#end = range?.end ?? Infinity;
    // Taken now, synchronously: a follower created while the writer holds the file is sure to find the bytes.
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
    if (this.#busy) return;
    this.#advance(Math.max(size, READ_CHUNK));
  }

  /** A chunk the writer appended at `start` while this follower waited for it. */
  offer(chunk: Buffer, start: number): void {
    this.#busy = false;
    if (this.destroyed) return;
    const end = start + chunk.length;
    if (this.#position < start) return this.#advance(READ_CHUNK); // cannot happen: it waited at the end
    if (this.#position >= end) {
      // A range that starts further on: wait for more.
      this.#busy = true;
      this.#file.wait(this);
      return;
    }
    const piece = chunk.subarray(this.#position - start, Math.min(end, this.#end + 1) - start);
    this.#position += piece.length;
    // The stream asks for more (or learns that the range is done) through _read when it has room.
    this.push(piece);
  }

  /** The writer completed or failed while this follower waited. */
  writerFinished(): void {
    this.#busy = false;
    if (!this.destroyed) this.#advance(READ_CHUNK);
  }

  /** Hands on the next bytes: from the file when behind, the end, an error, or waits for the writer. */
  #advance(size: number): void {
    const state = this.#file.state;
    if (state.kind === 'failed') return void this.destroy(state.error);
    if (this.#position > this.#end) return void this.push(null);
    const available = this.#file.length;
    if (this.#position < available) {
      const length = Math.min(size, available - this.#position, this.#end - this.#position + 1);
      this.#busy = true;
      this.#readFile(length).then(
        (chunk) => {
          this.#busy = false;
          if (chunk && !this.destroyed) this.push(chunk);
        },
        (error: Error) => {
          this.#busy = false;
          this.destroy(error);
        },
      );
      return;
    }
    if (state.kind === 'complete') {
      if (this.#range && this.#range.start >= available) {
        return void this.destroy(new RangeError(`byte range ${this.#range.start}-${this.#range.end} starts beyond the object (${available} bytes)`));
      }
      return void this.push(null);
    }
    this.#busy = true;
    this.#file.wait(this);
  }

  /** The next `length` bytes from the file, or null when the stream was destroyed meanwhile. */
  async #readFile(length: number): Promise<Buffer | null> {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.#handle!.read(buffer, 0, length, this.#position);
    if (this.destroyed) return null;
    if (bytesRead === 0) throw new Error('the object was truncated while being read');
    this.#position += bytesRead;
    return bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#file.stopWaiting(this);
    const handle = this.#handle;
    this.#handle = null;
    if (handle && this.#shared) this.#file.release();
    else if (handle) handle.close().catch(() => {});
    callback(error);
  }
}
