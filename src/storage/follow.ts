// Readers that follow an object while it is being written (DESIGN §3.2 single flight). A follower that
// has caught up with the writer is handed each chunk the writer appends, the same Buffer for all of
// them (no read, no copy); one that fell behind reads from the temporary file through its own
// position. So a slow follower costs neither the writer nor memory, a follower that joins late still
// gets every byte from the first, and N followers at the head cost no more than one.
//
// Until the bytes are verified, a follower holds back the end of its stream: the writer's latest chunk
// (which may be the last one) and, for a range, the range's last byte. A response fed by a follower
// therefore never reaches its full length with bytes that fail verification: the client sees a broken
// transfer instead (the HTTP layer resets the connection on a stream error).
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
  /** The writer's latest chunk, held back from followers until the next one or the verification. */
  #latest: { chunk: Buffer; start: number } | null = null;
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

  /** Bytes followers may pass on: all but the latest chunk while writing, all once complete. */
  get releasable(): number {
    return this.#latest ? this.#latest.start : this.#length;
  }

  get state(): State {
    return this.#state;
  }

  /**
   * The writer has safely written `chunk` at the end of the file. It is held back, and the chunk before
   * it goes to waiting followers as it is (not copied), so the writer must not change a chunk afterwards.
   */
  appended(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const previous = this.#latest;
    this.#latest = { chunk, start: this.#length };
    this.#length += chunk.length;
    if (previous) this.#wake((follower) => follower.offer(previous.chunk, previous.start));
  }

  /** Every byte is written and verified: followers get the last chunk and end at the last byte. */
  completed(): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'complete' };
    const last = this.#latest;
    this.#latest = null;
    this.#wake((follower) => (last ? follower.offer(last.chunk, last.start) : follower.writerFinished()));
  }

  failed(error: Error): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'failed', error };
    this.#latest = null;
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

  /** @param failure the error a follower ends with when the write fails (default: the writer's reason). */
  follow(range?: ByteRange, failure?: (reason: Error) => Error): Readable {
    return new Follower(this, range, failure);
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
  readonly #failure: (reason: Error) => Error;
  #position: number;
  readonly #end: number;
  #handle: FileHandle | null;
  /** Whether #handle is a reference to the shared handle (released) or our own (closed). */
  #shared: boolean;
  /** A file read is in flight or the follower waits for the writer: _read has nothing to start. */
  #busy = false;
  #passed = 0;

  constructor(file: GrowingFile, range?: ByteRange, failure: (reason: Error) => Error = (reason) => reason) {
    super({ highWaterMark: READ_CHUNK });
    if (range && (!Number.isSafeInteger(range.start) || range.start < 0 || !(range.end >= range.start))) {
      throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
    }
    this.#file = file;
    this.#range = range;
    this.#failure = failure;
    this.#position = range?.start ?? 0;
    this.#end = range?.end ?? Infinity;
    // Taken now, synchronously: a follower created while the writer holds the file is sure to find the bytes.
    this.#handle = file.state.kind === 'failed' ? null : file.acquire();
    this.#shared = this.#handle !== null;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const state = this.#file.state;
    if (state.kind === 'failed') return callback(this.#failure(state.error));
    if (this.#handle) return callback();
    // Joined after the writer committed and let go of the file: read the committed object.
    this.#file.openCommitted().then((handle) => {
      if (!handle) return callback(new Error('the object is no longer stored'));
      this.#handle = handle;
      callback();
    }, callback);
  }

  /** Bytes handed on so far. */
  get bytesPassed(): number {
    return this.#passed;
  }

  override _read(size: number): void {
    if (this.#busy) return;
    this.#advance(Math.max(size, READ_CHUNK));
  }

  /** A chunk of the file at `start`, released by the writer while this follower waited. */
  offer(chunk: Buffer, start: number): void {
    this.#busy = false;
    if (this.destroyed) return;
    const end = Math.min(start + chunk.length, this.#limit());
    // Not where this follower stands (a range further on, a held-back byte before it): the file decides.
    if (this.#position < start || this.#position >= end) return this.#advance(READ_CHUNK);
    const piece = chunk.subarray(this.#position - start, end - start);
    this.#position += piece.length;
    this.#passed += piece.length;
    // The stream asks for more (or learns that it is done) through _read when it has room.
    this.push(piece);
  }

  /** The writer completed without a chunk to release, or failed, while this follower waited. */
  writerFinished(): void {
    this.#busy = false;
    if (!this.destroyed) this.#advance(READ_CHUNK);
  }

  /**
   * Where this follower may pass bytes up to (exclusive): the released bytes of its range, and while
   * the writer is not verified, not the range's last byte either.
   */
  #limit(): number {
    // #end is inclusive (Infinity for the whole object).
    return this.#file.state.kind === 'complete' ? Math.min(this.#file.length, this.#end + 1) : Math.min(this.#file.releasable, this.#end);
  }

  /** Hands on the next bytes: from the file when behind, the end, an error, or waits for the writer. */
  #advance(size: number): void {
    const state = this.#file.state;
    if (state.kind === 'failed') return void this.destroy(this.#failure(state.error));
    if (this.#position > this.#end) return void this.push(null);
    const limit = this.#limit();
    if (this.#position < limit) {
      const length = Math.min(size, limit - this.#position);
      this.#busy = true;
      this.#readFile(length).then(
        (chunk) => {
          this.#busy = false;
          if (!chunk || this.destroyed) return;
          this.#passed += chunk.length;
          this.push(chunk);
        },
        (error: Error) => {
          this.#busy = false;
          this.destroy(error);
        },
      );
      return;
    }
    if (state.kind === 'complete') {
      if (this.#range && this.#range.start >= this.#file.length) {
        return void this.destroy(new RangeError(`byte range ${this.#range.start}-${this.#range.end} starts beyond the object (${this.#file.length} bytes)`));
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
