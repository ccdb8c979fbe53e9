// Where scrypt runs (DESIGN §5, issue 14): on the password hashing pool's worker threads, never on
// libuv's thread pool, which the object store's file reads and writes need. With every libuv thread
// held (each opening a FIFO that has no writer yet), a password check must still complete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashPassword, verifyPassword } from '../../src/auth/secrets.ts';
import { configurePasswordHashing, passwordHashingLoad, PasswordHashingBusyError, scryptOnPool } from '../../src/auth/password-hashing.ts';

const LIBUV_THREADS = Number(process.env.UV_THREADPOOL_SIZE ?? 4);

test('a password check completes while every libuv thread is busy', async () => {
  const stored = await hashPassword('correct horse battery');
  const dir = mkdtempSync(path.join(tmpdir(), 'manifold-fifo-'));
  const fifos = Array.from({ length: LIBUV_THREADS }, (_, i) => path.join(dir, `fifo-${i}`));
  for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
  // Each open waits on a libuv thread until a writer appears.
  const held: Promise<FileHandle>[] = fifos.map((fifo) => open(fifo, 'r'));
  try {
    const verdict = await Promise.race([
      verifyPassword('correct horse battery', stored),
      new Promise<'starved'>((resolve) => setTimeout(resolve, 30_000, 'starved').unref()),
    ]);
    assert.equal(verdict, true, 'scrypt must not wait for libuv\'s thread pool');
  } finally {
    // Release the threads: a writer that does not block, for each waiting reader.
    const writers = fifos.map((fifo) => openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    for (const handle of await Promise.all(held)) await handle.close();
    for (const fd of writers) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the pool is bounded: one thread here, and a full queue refuses at once', async () => {
  configurePasswordHashing({ threads: 1, queue: 2 });
  try {
    const task = { password: 'x', salt: new Uint8Array(16), keyLength: 32, N: 2 ** 14, r: 8, p: 5, maxmem: 256 * 1024 * 1024 };
    const running = [scryptOnPool(task), scryptOnPool(task), scryptOnPool(task)];
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(passwordHashingLoad().threads <= 1, JSON.stringify(passwordHashingLoad()));
    await assert.rejects(scryptOnPool(task), PasswordHashingBusyError);
    await Promise.all(running);
  } finally {
    configurePasswordHashing({ threads: 1, queue: 32 });
  }
});

test('password checks do not pile up listeners on the pool: no MaxListenersExceededWarning after many checks', async () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  try {
    const task = { password: 'x', salt: new Uint8Array(16), keyLength: 32, N: 2 ** 10, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
    for (let check = 0; check < 15; check++) await scryptOnPool(task);
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning').map((warning) => warning.message), []);
  } finally {
    process.off('warning', onWarning);
  }
});
