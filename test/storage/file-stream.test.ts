import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { FileObjectStream } from '../../src/storage/file-stream.ts';
import { CHUNK_BYTES, dropSpareBuffers } from '../../src/storage/object-stream.ts';
import { lateReadingDestination } from '../helpers/late-reader.ts';

/** The largest chunk a piped stream wrote to `destination` so far. */
function largestWrite(destination: Writable): () => number {
  let largest = 0;
  const write = destination.write.bind(destination) as (chunk: Buffer, callback: (error?: Error | null) => void) => boolean;
  destination.write = ((chunk: Buffer, callback: (error?: Error | null) => void) => {
    largest = Math.max(largest, chunk.length);
    return write(chunk, callback);
  }) as typeof destination.write;
  return () => largest;
}

describe('FileObjectStream', () => {
  let dir: string;
  let file: string;
  const bytes = randomBytes(CHUNK_BYTES * 7 + 12_345);

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'manifold-file-stream-'));
    file = path.join(dir, 'object');
    writeFileSync(file, bytes);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('piped, it delivers every byte although its buffers are reused, and then ends', async () => {
    const stream = new FileObjectStream(await open(file, 'r'), 0, bytes.length - 1);
    const { destination, received } = lateReadingDestination();
    stream.pipe(destination);
    await Promise.all([finished(destination), finished(stream)]);
    assert.ok(received().equals(bytes));
    assert.equal(stream.bytesPassed, bytes.length);
  });

  test('its buffers are kept for the next responses until let go (memory release when quiet)', async () => {
    dropSpareBuffers();
    const stream = new FileObjectStream(await open(file, 'r'), 0, bytes.length - 1);
    const { destination, received } = lateReadingDestination();
    stream.pipe(destination);
    await Promise.all([finished(destination), finished(stream)]);
    assert.ok(received().equals(bytes));
    assert.equal(dropSpareBuffers(), 2 * CHUNK_BYTES, 'the two buffers of the copy were kept');
    assert.equal(dropSpareBuffers(), 0, 'and are gone once let go');
    const again = new FileObjectStream(await open(file, 'r'), 0, bytes.length - 1);
    const next = lateReadingDestination();
    again.pipe(next.destination);
    await Promise.all([finished(next.destination), finished(again)]);
    assert.ok(next.received().equals(bytes), 'the next response allocates afresh');
  });

  test('16 copies at once hold 12 MiB of buffers, not 16: past 8 MiB a copy reads in 256 KiB chunks; every client gets every byte', async () => {
    const largest: number[] = [];
    const copies = await Promise.all(Array.from({ length: 16 }, async () => {
      const stream = new FileObjectStream(await open(file, 'r'), 0, bytes.length - 1);
      const { destination, received } = lateReadingDestination();
      const biggest = largestWrite(destination);
      stream.pipe(destination);
      return { done: Promise.all([finished(destination), finished(stream)]), received, biggest };
    }));
    for (const copy of copies) {
      await copy.done;
      assert.ok(copy.received().equals(bytes));
      largest.push(copy.biggest());
    }
    assert.deepEqual(largest.toSorted((a, b) => b - a), [...Array(8).fill(CHUNK_BYTES), ...Array(8).fill(256 * 1024)]);

    // The budget is given back as copies end: the next one reads 512 KiB chunks again.
    const next = new FileObjectStream(await open(file, 'r'), 0, bytes.length - 1);
    const { destination, received } = lateReadingDestination();
    const biggest = largestWrite(destination);
    next.pipe(destination);
    await Promise.all([finished(destination), finished(next)]);
    assert.ok(received().equals(bytes));
    assert.equal(biggest(), CHUNK_BYTES);
  });

  test('piped with a range, it delivers exactly that range', async () => {
    const start = 1_000;
    const end = CHUNK_BYTES * 3 + 17;
    const stream = new FileObjectStream(await open(file, 'r'), start, end);
    const { destination, received } = lateReadingDestination();
    stream.pipe(destination);
    await finished(destination);
    assert.ok(received().equals(bytes.subarray(start, end + 1)));
    assert.equal(stream.bytesPassed, end - start + 1);
  });

  test('read as an ordinary stream, it yields the bytes', async () => {
    const stream = new FileObjectStream(await open(file, 'r'), 5, bytes.length - 1);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(bytes.subarray(5)));
    assert.equal(stream.bytesPassed, bytes.length - 5);
  });

  test('read as an ordinary stream, a short range holds a buffer of about its size, not a whole chunk', async () => {
    const stream = new FileObjectStream(await open(file, 'r'), 100, 109);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(bytes.subarray(100, 110)));
    for (const chunk of chunks) assert.ok(chunk.buffer.byteLength <= 8192, `a ${chunk.buffer.byteLength}-byte buffer for 10 bytes`);
  });

  test('destroyed mid-copy (the client went away), it stops and closes the file', async () => {
    const handle = await open(file, 'r');
    const stream = new FileObjectStream(handle, 0, bytes.length - 1);
    const { destination } = lateReadingDestination();
    stream.pipe(destination);
    await new Promise((resolve) => setTimeout(resolve, 5));
    stream.destroy();
    await finished(stream).catch(() => {});
    assert.ok(stream.bytesPassed < bytes.length);
    await assert.rejects(handle.stat(), /closed|EBADF/);
  });
});
