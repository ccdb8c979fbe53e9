// Readers that follow an object while it is being written (DESIGN §3.2 single flight). A follower that
// has caught up with the writer is handed each chunk the writer appends, the same Buffer for all of
// them (no read, no copy); one that fell behind reads from the temporary file through its own
// position, into the reused buffers of its response (object-stream.ts). So a slow follower costs
// neither the writer nor memory, a follower that joins late still gets every byte from the first, and
// N followers at the head cost no more than one.
//
// Until the bytes are verified, a follower holds back the end of its stream: the writer's latest chunk
// (which may be the last one) and, for a range, the range's last byte. A response fed by a follower
// therefore never reaches its full length with bytes that fail verification: the client sees a broken
// transfer instead (the HTTP layer resets the connection on a stream error).
import type { Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import type { ByteRange } from './object-store.ts';
import { CHUNK_BYTES, ObjectStream } from './object-stream.ts';

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
   * The writer has safely written `chunks` at the end of the file. The last is held back; the chunk
   * held before and the others go to waiting followers as they are (not copied), so the writer must
   * not change a chunk afterwards.
   */
  appended(chunks: readonly Buffer[]): void {
    const written = chunks.filter((chunk) => chunk.length > 0);
    const last = written.pop();
    if (!last) return;
    const released = this.#latest ? { chunks: [this.#latest.chunk, ...written], start: this.#latest.start } : { chunks: written, start: this.#length };
    this.#length += written.reduce((sum, chunk) => sum + chunk.length, 0);
    this.#latest = { chunk: last, start: this.#length };
    this.#length += last.length;
    if (released.chunks.length > 0) this.#wake((follower) => follower.offer(released));
  }

  /** Every byte is written and verified: followers get the last chunk and end at the last byte. */
  completed(): void {
    if (this.#state.kind !== 'writing') return;
    this.#state = { kind: 'complete' };
    const last = this.#latest;
    this.#latest = null;
    this.#wake((follower) => (last ? follower.offer({ chunks: [last.chunk], start: last.start }) : follower.writerFinished()));
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

/** Consecutive chunks of the file from `start`, released by the writer. */
interface Released {
  chunks: readonly Buffer[];
  start: number;
}

class Follower extends ObjectStream {
  readonly #file: GrowingFile;
  readonly #range: ByteRange | undefined;
  readonly #failure: (reason: Error) => Error;
  #position: number;
  readonly #end: number;
  #handle: FileHandle | null;
  /** Whether #handle is a reference to the shared handle (released) or our own (closed). */
  #shared: boolean;
  /** Wakes the wait for the writer's next change: the chunks it released, or null (look at the file). */
  #wake: ((released: Released | null) => void) | null = null;
  /** Chunks the writer released while this follower waited, served before the file is read. */
  #released: Released | null = null;

  constructor(file: GrowingFile, range?: ByteRange, failure: (reason: Error) => Error = (reason) => reason) {
    super();
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

  /** Chunks released by the writer while this follower waited. */
  offer(released: Released): void {
    this.#wakeWith(released);
  }

  /** The writer completed without a chunk to release, or failed, while this follower waited. */
  writerFinished(): void {
    this.#wakeWith(null);
  }

  /** The next bytes: from the writer's chunk when at the head, from the file when behind; null at the end. */
  protected override async nextChunk(buffer: (wanted: number) => Buffer): Promise<Buffer | null> {
    for (;;) {
      const state = this.#file.state;
      if (state.kind === 'failed') throw this.#failure(state.error);
      if (this.#position > this.#end) return null;
      const limit = this.#limit();
      const piece = this.#releasedPiece(limit);
      if (piece) return piece;
      if (this.#position < limit) return this.#readFile(buffer(Math.min(CHUNK_BYTES, limit - this.#position)), limit);
      if (state.kind === 'complete') {
        if (this.#range && this.#range.start >= this.#file.length) {
          throw new RangeError(`byte range ${this.#range.start}-${this.#range.end} starts beyond the object (${this.#file.length} bytes)`);
        }
        return null;
      }
      this.#released = await new Promise<Released | null>((resolve) => {
        this.#wake = resolve;
        this.#file.wait(this);
      });
      if (this.destroyed) return null;
    }
  }

  /**
   * The part of a released chunk at this follower's position, within `limit` (no copy); null when the
   * released chunks hold nothing there (a range further on, a held-back byte before it).
   */
  #releasedPiece(limit: number): Buffer | null {
    if (!this.#released) return null;
    let start = this.#released.start;
    for (const chunk of this.#released.chunks) {
      const end = Math.min(start + chunk.length, limit);
      if (this.#position >= start && this.#position < end) {
        const piece = chunk.subarray(this.#position - start, end - start);
        this.#position += piece.length;
        return piece;
      }
      start += chunk.length;
    }
    this.#released = null;
    return null;
  }

  /**
   * Where this follower may pass bytes up to (exclusive): the released bytes of its range, and while
   * the writer is not verified, not the range's last byte either.
   */
  #limit(): number {
    // #end is inclusive (Infinity for the whole object).
    return this.#file.state.kind === 'complete' ? Math.min(this.#file.length, this.#end + 1) : Math.min(this.#file.releasable, this.#end);
  }

  /** The bytes from this follower's position up to `limit`, read into `into` (or its start). */
  async #readFile(into: Buffer, limit: number): Promise<Buffer> {
    this.#handle ??= await this.#openCommitted();
    const length = Math.min(into.length, limit - this.#position);
    const { bytesRead } = await this.#handle.read(into, 0, length, this.#position);
    if (bytesRead === 0) throw new Error('the object was truncated while being read');
    this.#position += bytesRead;
    return into.subarray(0, bytesRead);
  }

  /** Joined after the writer committed and let go of the file: the committed object. */
  async #openCommitted(): Promise<FileHandle> {
    const handle = await this.#file.openCommitted();
    if (!handle) throw new Error('the object is no longer stored');
    if (this.destroyed) {
      await handle.close().catch(() => {});
      throw new Error('the stream was destroyed');
    }
    return handle;
  }

  #wakeWith(released: Released | null): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.(released);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#file.stopWaiting(this);
    this.#wakeWith(null);
    this.#released = null;
    const handle = this.#handle;
    this.#handle = null;
    if (handle && this.#shared) this.#file.release();
    else if (handle) handle.close().catch(() => {});
    callback(error);
  }
}
