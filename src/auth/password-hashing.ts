// Where scrypt runs: a small pool of worker threads (piscina), bounded in threads and queue. Node's own
// crypto.scrypt runs on libuv's thread pool (4 threads), the one the object store's file reads and writes
// wait for: 16 clients guessing passwords turned a 0.14 s cached pull into 23 s. Here a guess costs one
// pool thread at a lowered priority, and a full queue refuses at once instead of growing without bound.
import os from 'node:os';
import { Piscina } from 'piscina';
import type { ScryptTask } from './password-worker.ts';

export interface PasswordHashingOptions {
  /** Worker threads computing scrypt at once. */
  threads: number;
  /** Checks that may wait for a thread; more are refused (PasswordHashingBusyError). */
  queue: number;
  /** Told of a worker thread that failed outside a check (a check's own failure is its caller's). */
  onWorkerError?: (error: unknown) => void;
}

/** Thrown when the queue is full: the caller answers "try again later", never waits. */
export class PasswordHashingBusyError extends Error {
  constructor() {
    super('password checks are queued to the limit; try again shortly');
    this.name = 'PasswordHashingBusyError';
  }
}

/** One thread on a 2-core machine, at most half the cores elsewhere; a queue of a few per thread. */
export function defaultPasswordHashing(): PasswordHashingOptions {
  const threads = Math.max(1, Math.floor(os.availableParallelism() / 2));
  return { threads, queue: threads * 16 };
}

let pool: Piscina<ScryptTask, Uint8Array> | null = null;
let options: PasswordHashingOptions = defaultPasswordHashing();

function currentPool(): Piscina<ScryptTask, Uint8Array> {
  if (pool) return pool;
  pool = new Piscina<ScryptTask, Uint8Array>({
    // Beside this module: the source, or the build's password-worker.js beside main.js (scripts/build-server.ts).
    filename: new URL(import.meta.url.endsWith('.ts') ? './password-worker.ts' : './password-worker.js', import.meta.url).href,
    minThreads: 0,
    maxThreads: options.threads,
    maxQueue: options.queue,
    // Kept a few seconds after the last check, so a burst of logins does not start a thread per check; not
    // longer: an idle thread (its own V8 isolate) holds about 20 MB, a start costs some 40 ms (issue 19).
    idleTimeout: 5_000,
    // Below the event loop and the file I/O threads: a pull is served first when the CPU is busy.
    niceIncrement: 5,
    // Workers inherit the process's flags (type stripping); no atomics wait, they hold no handles.
    atomics: 'disabled',
  });
  // A thread that fails outside a check (it could not load its module, it ran out of memory) is reported
  // here; unheard, it would end the server. Piscina then starts no more threads, so the pool is dropped:
  // the checks waiting in it fail now instead of waiting for ever, and the next check starts a new pool.
  // Once per pool: a listener added per check was a leak (every sign-in kept one more).
  const current = pool;
  current.on('error', (error: unknown) => {
    options.onWorkerError?.(error);
    if (pool === current) pool = null;
    void current.destroy();
  });
  return current;
}

/** Sets the pool's bounds (server start); a pool already running is replaced once its work is done. */
export function configurePasswordHashing(next: PasswordHashingOptions): void {
  options = next;
  const previous = pool;
  pool = null;
  void previous?.close();
}

/** Computes scrypt on the pool. */
export async function scryptOnPool(task: ScryptTask): Promise<Buffer> {
  const current = currentPool();
  if (current.queueSize >= options.queue) throw new PasswordHashingBusyError();
  try {
    return Buffer.from(await current.run(task));
  } catch (error) {
    if (/queue is at limit/i.test((error as Error).message ?? '')) throw new PasswordHashingBusyError();
    throw error;
  }
}

/** What the pool is doing (tests, metrics). */
export function passwordHashingLoad(): { threads: number; queued: number; maxThreads: number } {
  return { threads: pool?.threads.length ?? 0, queued: pool?.queueSize ?? 0, maxThreads: options.threads };
}

/** Ends the pool's threads (shutdown). */
export async function closePasswordHashing(): Promise<void> {
  const previous = pool;
  pool = null;
  await previous?.destroy();
}
