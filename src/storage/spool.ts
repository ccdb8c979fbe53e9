// The spool every fill writes into, whatever the backend (DESIGN §3.2, §8): a temporary file in a
// local directory, hashed as it is written, followed by readers while it grows (follow.ts), verified,
// and only then handed to the backend to commit (backend.ts). A killed process leaves only spool
// files, which the next start removes. The writer takes chunks ahead of the disk and writes those that
// arrived meanwhile in one writev; the hash comes from memory, so a failed write fails the object.
import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import type { Digest, DigestAlgorithm } from '../oci/reference.ts';
import type { VerifiedSpool } from './backend.ts';
import { GrowingFile } from './follow.ts';
import { PRIVATE_DIRECTORY, PRIVATE_FILE } from './object-store.ts';
import type { ByteRange, ObjectInfo, ObjectWriter } from './object-store.ts';

/**
 * Bytes a writer takes ahead of its file before write() makes the caller wait: room for the chunks
 * that arrive while one write is in flight (they are written together). 4 MiB was no faster in the
 * bench and raised the peak of 16 concurrent 512 MiB pulls by ~13 MB (bench/README.md).
 */
const WRITE_AHEAD_BYTES = 1024 * 1024;

/** A temporary file of another host sharing the directory is only a leftover once it is this old. */
const FOREIGN_TEMP_MAX_AGE_MS = 24 * 60 * 60 * 1000;

const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'host';
/** `<pid>@<host>.<random>.tmp`: who wrote it, so a start removes only what a dead process left. */
const TEMP_NAME = /^(\d+)@(.+)\.([0-9a-f]{16})\.tmp$/;

/** Temporary files being written by this process (whichever store instance opened them). */
const activeTempFiles = new Set<string>();

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The buffers left after the first `count` bytes of `buffers` were written (a short write). */
function dropBytes(buffers: Buffer[], count: number): Buffer[] {
  let index = 0;
  while (index < buffers.length && count >= buffers[index].length) count -= buffers[index++].length;
  const rest = buffers.slice(index);
  if (count > 0) rest[0] = rest[0].subarray(count);
  return rest;
}

async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
}

export interface SpoolOptions {
  /** The spool's directory. For the filesystem backend it is on the objects' filesystem, so a commit is a rename. */
  directory: string;
  /** The backend's commit of a verified spool. */
  commit(spool: VerifiedSpool): Promise<void>;
  /** The committed object as a local file (backends whose objects are files); null otherwise. */
  openCommitted(digest: string): Promise<FileHandle | null>;
}

/** The directory of temporary files that fills write into. */
export class Spool {
  readonly directory: string;
  readonly #options: SpoolOptions;

  constructor(options: SpoolOptions) {
    this.directory = path.resolve(options.directory);
    this.#options = options;
  }

  /** Creates the directory and removes the temporary files a killed process left. */
  async init(): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: PRIVATE_DIRECTORY });
    for (const name of await readdir(this.directory)) {
      const file = path.join(this.directory, name);
      if (activeTempFiles.has(file)) continue;
      if (await isLeftover(name, file)) await removeFile(file);
    }
  }

  /** The temporary files in the directory now (diagnostics and tests). */
  async files(): Promise<string[]> {
    return readdir(this.directory);
  }

  /** Starts a spool file; expected null = digest unknown in advance (computed as sha256). */
  async createWriter(expected: Digest | null): Promise<ObjectWriter> {
    const tempPath = path.join(this.directory, `${process.pid}@${HOST}.${randomBytes(8).toString('hex')}.tmp`);
    activeTempFiles.add(tempPath);
    let handle: FileHandle;
    try {
      handle = await open(tempPath, 'wx+', PRIVATE_FILE);
    } catch (error) {
      activeTempFiles.delete(tempPath);
      throw error;
    }
    return new SpoolWriter({
      handle,
      tempPath,
      expected,
      algorithm: expected?.algorithm ?? 'sha256',
      commit: this.#options.commit,
      openCommitted: this.#options.openCommitted,
    });
  }

  /** True when the directory can be read and written. */
  async ping(): Promise<boolean> {
    try {
      await access(this.directory, constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }
}

async function isLeftover(name: string, file: string): Promise<boolean> {
  const match = TEMP_NAME.exec(name);
  if (!match) return true;
  if (match[2] === HOST) {
    const pid = Number(match[1]);
    // Our own pid before our first write can only be a previous process's (containers reuse pids).
    return pid === process.pid || !processAlive(pid);
  }
  // Another host's file (a shared volume): a leftover once nobody touched it for long.
  try {
    return Date.now() - (await stat(file)).mtimeMs > FOREIGN_TEMP_MAX_AGE_MS;
  } catch {
    return false;
  }
}

/** finishing: verify() or commit() has begun, no more writes. */
type WriterState = 'writing' | 'finishing' | 'committed' | 'failed';

interface WriterParts {
  handle: FileHandle;
  tempPath: string;
  expected: Digest | null;
  algorithm: DigestAlgorithm;
  /** The backend's commit of the verified file. */
  commit(spool: VerifiedSpool): Promise<void>;
  /** The committed object as a local file, for followers that join after the writer let go; null when there is none. */
  openCommitted(digest: string): Promise<FileHandle | null>;
}

class SpoolWriter implements ObjectWriter {
  readonly #parts: WriterParts;
  readonly #hash: Hash;
  readonly #file: GrowingFile;
  #state: WriterState = 'writing';
  #failure: Error | null = null;
  /** Bytes taken by write() (hashed), whether or not they have reached the file yet. */
  #taken = 0;
  /** Chunks taken but not yet handed to the file, and the batch write that will carry them. */
  #pending: Buffer[] = [];
  #pendingBatch: Promise<void> | null = null;
  /** Bytes taken that are not in the file yet (pending or being written). */
  #unwritten = 0;
  /** Batches run one after another; this settles when the last one has. */
  #queue: Promise<void> = Promise.resolve();
  #verify: Promise<Result<ObjectInfo>> | null = null;
  #commit: Promise<Result<ObjectInfo>> | null = null;
  #digest: string | null = null;

  constructor(parts: WriterParts) {
    this.#parts = parts;
    this.#hash = createHash(parts.algorithm);
    this.#file = new GrowingFile(parts.handle, async () => (this.#digest ? parts.openCommitted(this.#digest) : null));
  }

  get bytesWritten(): number {
    return this.#taken;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.#state !== 'writing') return Promise.reject(this.#failure ?? new Error('the object writer is already finished'));
    if (chunk.length === 0) return Promise.resolve();
    this.#hash.update(chunk);
    this.#taken += chunk.length;
    this.#unwritten += chunk.length;
    this.#pending.push(chunk);
    this.#pendingBatch ??= this.#scheduleBatch();
    // The caller waits for the disk only once too much is on its way there.
    return this.#unwritten > WRITE_AHEAD_BYTES ? this.#pendingBatch : Promise.resolve();
  }

  /**
   * The next batch: it starts once the one in flight has landed and takes every chunk that arrived
   * meanwhile, so a writer fed faster than one write per event loop turn makes few, large writes.
   */
  #scheduleBatch(): Promise<void> {
    const run = this.#queue.then(() => this.#writePending());
    // Registered first: a failure is recorded before anything waiting on the queue looks at it.
    const settled = run.catch(async (error: Error) => {
      await this.#fail(error);
      throw error;
    });
    settled.catch(() => {});
    this.#queue = run.then(
      () => {},
      () => {},
    );
    return settled;
  }

  async #writePending(): Promise<void> {
    const chunks = this.#pending;
    this.#pending = [];
    this.#pendingBatch = null;
    if (this.#failure) throw this.#failure;
    let position = this.#file.length;
    let rest = chunks;
    while (rest.length > 0) {
      const { bytesWritten } = await this.#parts.handle.writev(rest, position);
      if (bytesWritten === 0) throw new Error('the temporary file took no bytes');
      position += bytesWritten;
      rest = dropBytes(rest, bytesWritten);
    }
    this.#unwritten -= position - this.#file.length;
    this.#file.appended(chunks);
  }

  verify(expectedSize?: number): Promise<Result<ObjectInfo>> {
    if (this.#verify) return this.#verify;
    if (this.#state !== 'writing') return Promise.reject(this.#failure ?? new Error('the object writer is already finished'));
    this.#state = 'finishing';
    this.#verify = this.#runVerify(expectedSize);
    return this.#verify;
  }

  commit(expectedSize?: number): Promise<Result<ObjectInfo>> {
    if (this.#commit || (this.#state !== 'writing' && !this.#verify)) {
      return Promise.reject(this.#failure ?? new Error('the object writer is already finished'));
    }
    this.#commit = this.#runCommit(expectedSize);
    return this.#commit;
  }

  async abort(reason: Error): Promise<void> {
    if (this.#state === 'finishing') await (this.#commit ?? this.#verify)?.catch(() => {});
    await this.#fail(reason);
  }

  follow(range?: ByteRange, failure?: (reason: Error) => Error): Readable {
    return this.#file.follow(range, failure);
  }

  async #runVerify(expectedSize: number | undefined): Promise<Result<ObjectInfo>> {
    await this.#queue;
    if (this.#failure) throw this.#failure;
    const digest = `${this.#parts.algorithm}:${this.#hash.digest('hex')}`;
    const size = this.#file.length;
    const expected = this.#parts.expected;
    let mismatch: string | null = null;
    if (expected && expected.value !== digest) mismatch = `the bytes hash to ${digest}, not ${expected.value}`;
    else if (expectedSize !== undefined && expectedSize !== size) mismatch = `${size} bytes written, ${expectedSize} expected`;
    if (mismatch) {
      await this.#fail(new Error(`object rejected: ${mismatch}`));
      return err('invalid', `object rejected: ${mismatch}`);
    }
    this.#file.completed();
    return ok({ digest, size });
  }

  async #runCommit(expectedSize: number | undefined): Promise<Result<ObjectInfo>> {
    const verified = await this.verify(expectedSize);
    if (!verified.ok) return verified;
    try {
      const { handle, tempPath } = this.#parts;
      await this.#parts.commit({ ...verified.value, path: tempPath, handle });
      // A backend that moved the file left nothing here; one that copied it (S3) leaves the copy.
      await removeFile(tempPath).catch(() => {});
      this.#digest = verified.value.digest;
      this.#state = 'committed';
      this.#letGo();
      return verified;
    } catch (error) {
      await this.#fail(error as Error);
      throw error;
    }
  }

  /**
   * Ends the write without an object: the temporary file goes, and followers get the error unless the
   * bytes were already verified (then they read on through their open handle: the bytes are right).
   */
  async #fail(error: Error): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'failed') return;
    this.#state = 'failed';
    this.#failure = error;
    this.#file.failed(error);
    await this.#queue;
    await removeFile(this.#parts.tempPath).catch(() => {});
    this.#letGo();
  }

  #letGo(): void {
    activeTempFiles.delete(this.#parts.tempPath);
    this.#file.release();
  }
}
