// The one test suite every storage backend passes (DESIGN §8; as CNCF Distribution's
// registry/storage/driver/testsuites does for its drivers). A backend's test file calls
// backendSuite() with a way to open its store from configuration; the suite writes, follows, reads,
// ranges, deletes, lists and kills a writer through the store the services use (spool + backend).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ConfigInput } from '../../src/config.ts';
import { InvalidDigestError } from '../../src/storage/object-store.ts';
import type { ObjectInfo } from '../../src/storage/object-store.ts';
import type { SpooledObjectStore } from '../../src/storage/spooled-store.ts';
import { lateReadingDestination } from '../helpers/late-reader.ts';
import { fillDiskFrom } from '../helpers/full-disk.ts';

export const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const sha512 = (bytes: Buffer) => `sha512:${createHash('sha512').update(bytes).digest('hex')}`;

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A committed object's info: its digest and size, and when it was committed (a few minutes' clock skew allowed for a bucket). */
export function assertCommitted(info: ObjectInfo | null | undefined, expected: { digest: string; size: number }): void {
  assert.ok(info, `${expected.digest} is stored`);
  assert.deepEqual({ digest: info.digest, size: info.size }, expected);
  assert.ok(typeof info.modifiedAt === 'number' && Math.abs(info.modifiedAt - Date.now()) < 5 * 60_000, `modifiedAt is the commit time, got ${info.modifiedAt}`);
}

/** The bytes, or the stream's error (caught at once, so that a stream failing early is no unhandled rejection). */
export function settle(stream: Readable): Promise<Buffer | Error> {
  return collect(stream).catch((error: Error) => error);
}

/**
 * Waits (at most 5 s) until `reached` holds, then a little longer so that anything that should not
 * arrive has had its chance: the writer's chunks reach the file a moment after write() resolves, later
 * on a loaded machine.
 */
async function settled(reached: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 5_000; !reached() && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 20));
}

function assertFailed(outcome: Buffer | Error, pattern: RegExp): void {
  assert.ok(outcome instanceof Error, 'the follower must fail');
  assert.match(outcome.message, pattern);
}

/** A backend under test: the configuration of a fresh, empty store of it, and how to open one. */
export interface BackendSubject {
  /** Settings (loadConfig overrides) of an empty store; called once per suite run. */
  config(): Promise<ConfigInput>;
  /** Settings of a store whose backend cannot be reached (ping must answer false). */
  unreachableConfig(): ConfigInput;
  /** Opens the configured store (not initialised). */
  open(config: ConfigInput): Promise<SpooledObjectStore>;
}

export function backendSuite(name: string, subject: BackendSubject): void {
  describe(`storage backend suite: ${name}`, () => {
  let config: ConfigInput;
  let store: SpooledObjectStore;

  before(async () => {
    config = await subject.config();
    store = await subject.open(config);
    await store.init();
  });

  const spoolFiles = () => store.spool.files();
  const listed = async () => {
    const all: ObjectInfo[] = [];
    for await (const info of store.list()) all.push(info);
    return all.map((info) => info.digest);
  };

  async function put(bytes: Buffer): Promise<string> {
    const writer = await store.createWriter(sha256(bytes));
    await writer.write(bytes);
    const result = await writer.commit(bytes.length);
    assert.equal(result.ok, true);
    return sha256(bytes);
  }

  describe('writing and reading objects', () => {
    test('a committed object is stored under its digest with its size', async () => {
      const bytes = randomBytes(100_000);
      const writer = await store.createWriter(sha256(bytes));
      await writer.write(bytes.subarray(0, 40_000));
      await writer.write(bytes.subarray(40_000));
      assert.equal(writer.bytesWritten, bytes.length);
      assert.equal(await store.stat(sha256(bytes)), null, 'not readable before the commit');
      assert.equal(await store.read(sha256(bytes)), null);
      const result = await writer.commit(bytes.length);
      assert.deepEqual(result, { ok: true, value: { digest: sha256(bytes), size: bytes.length } });
      assertCommitted(await store.stat(sha256(bytes)), { digest: sha256(bytes), size: bytes.length });
      assert.deepEqual(await collect((await store.read(sha256(bytes)))!), bytes);
      assert.deepEqual(await spoolFiles(), []);
    });

    test('a write without a known digest is hashed and stored under the computed sha256', async () => {
      const bytes = Buffer.from('{"schemaVersion":2}');
      const writer = await store.createWriter(null);
      await writer.write(bytes);
      const result = await writer.commit();
      assert.deepEqual(result, { ok: true, value: { digest: sha256(bytes), size: bytes.length } });
      assert.deepEqual(await collect((await store.read(sha256(bytes)))!), bytes);
    });

    test('sha512 digests are supported', async () => {
      const bytes = randomBytes(1000);
      const writer = await store.createWriter(sha512(bytes));
      await writer.write(bytes);
      assert.equal((await writer.commit()).ok, true);
      assert.deepEqual(await collect((await store.read(sha512(bytes)))!), bytes);
    });

    test('unknown algorithms and malformed digests are refused', async () => {
      await assert.rejects(store.createWriter(`md5:${'a'.repeat(32)}`), InvalidDigestError);
      await assert.rejects(store.createWriter('sha256:abc'), InvalidDigestError);
      await assert.rejects(store.stat(`sha1:${'a'.repeat(40)}`), InvalidDigestError);
      await assert.rejects(store.read('../../etc/passwd'), InvalidDigestError);
      await assert.rejects(store.delete(`sha256:${'A'.repeat(64)}`), InvalidDigestError);
      assert.deepEqual(await spoolFiles(), []);
    });

    test('bytes that do not hash to the expected digest are refused and leave nothing', async () => {
      const expected = randomBytes(5000);
      const writer = await store.createWriter(sha256(expected));
      await writer.write(randomBytes(5000));
      const result = await writer.commit();
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.reason, 'invalid');
      assert.equal(await store.stat(sha256(expected)), null);
      assert.equal((await listed()).includes(sha256(expected)), false, 'nothing listed under the digest');
      assert.deepEqual(await spoolFiles(), []);
    });

    test('a size that is not the expected size is refused', async () => {
      const bytes = randomBytes(300);
      const writer = await store.createWriter(sha256(bytes));
      await writer.write(bytes);
      const result = await writer.commit(301);
      assert.equal(!result.ok && result.reason, 'invalid');
      assert.equal(await store.stat(sha256(bytes)), null);
      assert.deepEqual(await spoolFiles(), []);
    });

    test('committing an object that is already stored keeps it', async () => {
      const bytes = randomBytes(2048);
      await put(bytes);
      await put(bytes);
      assert.deepEqual(await collect((await store.read(sha256(bytes)))!), bytes);
    });

    test('an aborted write leaves nothing', async () => {
      const bytes = randomBytes(2048);
      const writer = await store.createWriter(sha256(bytes));
      await writer.write(bytes);
      await writer.abort(new Error('upstream went away'));
      assert.equal(await store.stat(sha256(bytes)), null);
      assert.deepEqual(await spoolFiles(), []);
      await assert.rejects(writer.write(bytes));
    });

    test('an empty object can be stored and read', async () => {
      const empty = Buffer.alloc(0);
      await put(empty);
      assertCommitted(await store.stat(sha256(empty)), { digest: sha256(empty), size: 0 });
      assert.deepEqual(await collect((await store.read(sha256(empty)))!), empty);
    });

    test('delete removes an object; deleting a missing one is fine', async () => {
      const digest = await put(randomBytes(10));
      await store.delete(digest);
      assert.equal(await store.stat(digest), null);
      assert.equal(await store.read(digest), null);
      await store.delete(digest);
    });

    test('ping answers true while the store is usable, false when its backend cannot be reached', async () => {
      assert.equal(await store.ping(), true);
      const unreachable = await subject.open(subject.unreachableConfig());
      assert.equal(await unreachable.ping(), false);
    });
  });

  describe('range reads', () => {
    const bytes = randomBytes(200_001);
    let digest: string;
    before(async () => {
      digest = await put(bytes);
    });

    test('return exactly the requested bytes', async () => {
      for (const [start, end] of [[0, 0], [0, 99], [1, 1], [65_535, 65_536], [100_000, 200_000], [199_999, 200_000], [12_345, 150_000]]) {
        const body = await collect((await store.read(digest, { start, end }))!);
        assert.deepEqual(body, bytes.subarray(start, end + 1), `bytes ${start}-${end}`);
      }
    });

    test('an end beyond the object is clamped to its last byte', async () => {
      assert.deepEqual(await collect((await store.read(digest, { start: 200_000, end: 999_999_999 }))!), bytes.subarray(200_000));
      assert.deepEqual(await collect((await store.read(digest, { start: 5, end: Infinity }))!), bytes.subarray(5));
    });

    test('a start beyond the object or an inverted range is refused', async () => {
      await assert.rejects(store.read(digest, { start: 200_001, end: 200_005 }), RangeError);
      await assert.rejects(store.read(digest, { start: 10, end: 9 }), RangeError);
      await assert.rejects(store.read(digest, { start: -1, end: 9 }), RangeError);
    });
  });

  describe('following an object while it is written', () => {
    test('every follower sees every byte once the writer commits, whenever it joined', async () => {
      const bytes = randomBytes(1_000_000);
      const writer = await store.createWriter(sha256(bytes));
      const early = settle(writer.follow());
      const chunks = [bytes.subarray(0, 300_000), bytes.subarray(300_000, 700_000), bytes.subarray(700_000)];
      await writer.write(chunks[0]);
      const middle = settle(writer.follow());
      const ranged = settle(writer.follow({ start: 250_000, end: 750_000 }));
      await writer.write(chunks[1]);
      await writer.write(chunks[2]);
      const beforeCommit = settle(writer.follow({ start: 999_000, end: Infinity }));
      assert.equal((await writer.commit(bytes.length)).ok, true);
      assert.deepEqual(await early, bytes);
      assert.deepEqual(await middle, bytes);
      assert.deepEqual(await ranged, bytes.subarray(250_000, 750_001));
      assert.deepEqual(await beforeCommit, bytes.subarray(999_000));
    });

    test('a follower passes on every byte but the latest chunk before the bytes are verified', async () => {
      const bytes = randomBytes(10_000);
      const writer = await store.createWriter(sha256(bytes));
      const follower = writer.follow();
      await writer.write(bytes.subarray(0, 4000));
      await writer.write(bytes.subarray(4000, 7000));
      const first = await new Promise<Buffer>((resolve) => follower.once('data', resolve));
      follower.pause();
      assert.deepEqual(first, bytes.subarray(0, 4000));
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(follower.readableLength, 0, 'the latest chunk (it may be the last) is held back');
      await writer.write(bytes.subarray(7000));
      await settled(() => follower.readableLength >= 3000);
      assert.equal(follower.readableLength, 3000, 'a new chunk releases the one before');
      assert.equal((await writer.verify(bytes.length)).ok, true);
      const rest = await collect(follower);
      assert.deepEqual(Buffer.concat([first, rest]), bytes, 'the verification releases the last chunk and ends the stream');
      assert.equal((await writer.commit()).ok, true);
    });

    test("a range follower passes on its range's last byte only once the bytes are verified", async () => {
      const bytes = randomBytes(10_000);
      const writer = await store.createWriter(sha256(bytes));
      const follower = writer.follow({ start: 100, end: 4999 });
      await writer.write(bytes.subarray(0, 6000));
      await writer.write(bytes.subarray(6000));
      const received: Buffer[] = [];
      follower.on('data', (chunk: Buffer) => received.push(chunk));
      await settled(() => Buffer.concat(received).length >= 4899);
      assert.deepEqual(Buffer.concat(received), bytes.subarray(100, 4999), 'all but the last byte of the range');
      assert.equal(follower.readableEnded, false);
      assert.equal((await writer.verify(bytes.length)).ok, true);
      await new Promise((resolve) => follower.once('end', resolve));
      assert.deepEqual(Buffer.concat(received), bytes.subarray(100, 5000));
      assert.equal((await writer.commit()).ok, true);
    });

    test('followers end once the bytes are verified, before the object is committed', async () => {
      const bytes = randomBytes(300_000);
      const digest = sha256(bytes);
      const writer = await store.createWriter(digest);
      const follower = settle(writer.follow());
      await writer.write(bytes);
      assert.deepEqual(await writer.verify(bytes.length), { ok: true, value: { digest, size: bytes.length } });
      assert.deepEqual(await follower, bytes);
      assert.equal(await store.stat(digest), null, 'not stored before the commit');
      assert.equal((await writer.commit()).ok, true);
      assertCommitted(await store.stat(digest), { digest, size: bytes.length });
    });

    test('followers get an error when the writer aborts', async () => {
      const bytes = randomBytes(50_000);
      const writer = await store.createWriter(sha256(bytes));
      const follower = settle(writer.follow());
      await writer.write(bytes.subarray(0, 20_000));
      const late = settle(writer.follow());
      await writer.abort(new Error('upstream reset'));
      assertFailed(await follower, /upstream reset/);
      assertFailed(await late, /upstream reset/);
      assertFailed(await settle(writer.follow()), /upstream reset/);
      assert.deepEqual(await spoolFiles(), []);
    });

    test('followers get an error when the commit finds the wrong bytes', async () => {
      const expected = randomBytes(50_000);
      const writer = await store.createWriter(sha256(expected));
      const follower = settle(writer.follow());
      await writer.write(randomBytes(50_000));
      const result = await writer.commit();
      assert.equal(result.ok, false);
      assertFailed(await follower, /hash/);
    });

    test('followers reading at different speeds while small chunks arrive all get exactly their bytes', async () => {
      const bytes = randomBytes(600_000);
      const writer = await store.createWriter(sha256(bytes));
      const ranges = [undefined, undefined, { start: 0, end: 0 }, { start: 12_345, end: 400_000 }, { start: 599_999, end: Infinity }, { start: 250_000, end: Infinity }];
      // Fast followers take the writer's chunks as they come; slow ones fall behind and read the file.
      const readers = ranges.map((range, index) => {
        const follower = writer.follow(range);
        const slow = index % 2 === 1;
        return (async () => {
          const chunks: Buffer[] = [];
          for await (const chunk of follower) {
            chunks.push(chunk as Buffer);
            if (slow) await new Promise((resolve) => setTimeout(resolve, 1));
          }
          return Buffer.concat(chunks);
        })();
      });
      for (let offset = 0; offset < bytes.length; offset += 7_000) {
        await writer.write(bytes.subarray(offset, offset + 7_000));
        if (offset % 70_000 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal((await writer.commit(bytes.length)).ok, true);
      const results = await Promise.all(readers);
      ranges.forEach((range, index) => {
        const expected = range ? bytes.subarray(range.start, range.end === Infinity ? undefined : range.end + 1) : bytes;
        assert.deepEqual(results[index], expected, `follower ${index} (${range ? `${range.start}-${range.end}` : 'whole'})`);
      });
    });

    test('piped (as responses take them), followers at the head and behind get exactly their bytes through reused buffers', async () => {
      const bytes = randomBytes(3 * 1024 * 1024 + 4321);
      const writer = await store.createWriter(sha256(bytes));
      const ranges = [undefined, { start: 100_000, end: 2_500_000 }, undefined];
      const piped = ranges.map((range) => {
        const follower = writer.follow(range);
        const target = lateReadingDestination();
        follower.pipe(target.destination);
        return { follower, target };
      });
      for (let offset = 0; offset < bytes.length; offset += 300_000) {
        await writer.write(bytes.subarray(offset, offset + 300_000));
        if (offset === 900_000) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // One more follower joins once every byte is written: it reads them all from the file.
      const late = writer.follow();
      const lateTarget = lateReadingDestination();
      late.pipe(lateTarget.destination);
      assert.equal((await writer.commit(bytes.length)).ok, true);
      await Promise.all([...piped.map((p) => p.target.ended), lateTarget.ended]);
      piped.forEach(({ follower, target }, index) => {
        const range = ranges[index];
        const expected = range ? bytes.subarray(range.start, range.end + 1) : bytes;
        assert.ok(target.received().equals(expected), `follower ${index} got other bytes`);
        assert.equal((follower as Readable & { bytesPassed: number }).bytesPassed, expected.length, `follower ${index} counted other bytes`);
      });
      assert.ok(lateTarget.received().equals(bytes));
    });

    test('piped, a follower holds back the latest chunk until the verification and breaks on a failed fill', async () => {
      const bytes = randomBytes(100_000);
      const writer = await store.createWriter(sha256(bytes));
      const follower = writer.follow();
      const target = lateReadingDestination();
      follower.pipe(target.destination);
      await writer.write(bytes.subarray(0, 40_000));
      await writer.write(bytes.subarray(40_000, 70_000));
      await settled(() => target.received().length >= 40_000);
      assert.ok(target.received().equals(bytes.subarray(0, 40_000)), 'all but the latest chunk');
      const failed = new Promise<Error>((resolve) => follower.once('error', resolve));
      await writer.abort(new Error('upstream reset'));
      assert.match((await failed).message, /upstream reset/);
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.equal(target.received().length, 40_000, 'nothing of the failed fill after the error');
      assert.equal(target.destination.writableEnded, false, 'the response is not ended as if complete');
    });

    test('chunks given while a write is in flight reach the file together; followers still hold back only the latest', async () => {
      const bytes = randomBytes(64 * 7_000);
      const writer = await store.createWriter(sha256(bytes));
      const follower = writer.follow();
      const received: Buffer[] = [];
      follower.on('data', (chunk: Buffer) => received.push(chunk));
      // Given in one go, as an upstream socket hands over what it has buffered.
      const writes = [];
      for (let offset = 0; offset < bytes.length; offset += 7_000) writes.push(writer.write(bytes.subarray(offset, offset + 7_000)));
      await Promise.all(writes);
      await settled(() => Buffer.concat(received).length >= bytes.length - 7_000);
      assert.deepEqual(Buffer.concat(received), bytes.subarray(0, bytes.length - 7_000), 'everything but the last chunk given');
      assert.equal((await writer.verify(bytes.length)).ok, true);
      await new Promise((resolve) => follower.once('end', resolve));
      assert.deepEqual(Buffer.concat(received), bytes);
      assert.equal((await writer.commit()).ok, true);
      assert.deepEqual(await collect((await store.read(sha256(bytes)))!), bytes);
    });

    test('write() lets the caller run ahead of the disk by a bounded amount, then makes it wait', async () => {
      const bytes = randomBytes(8 * 1024 * 1024);
      const writer = await store.createWriter(sha256(bytes));
      const settled: boolean[] = [];
      const writes = [];
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) {
        const index = settled.push(false) - 1;
        writes.push(writer.write(bytes.subarray(offset, offset + 64 * 1024)).then(() => (settled[index] = true)));
      }
      await Promise.resolve();
      await Promise.resolve();
      assert.equal(settled[0], true, 'the first chunk is taken at once');
      assert.equal(settled.at(-1), false, 'with 8 MiB on its way to the file, the caller waits');
      await Promise.all(writes);
      assert.equal((await writer.commit(bytes.length)).ok, true);
      assert.deepEqual(await collect((await store.read(sha256(bytes)))!), bytes);
    });

    test('a write the disk refuses fails the object: later writes and verify() reject, followers break, nothing is left', async () => {
      const bytes = randomBytes(300_000);
      const writer = await store.createWriter(sha256(bytes));
      const follower = settle(writer.follow());
      const freeDisk = await fillDiskFrom(0);
      try {
        await writer.write(bytes.subarray(0, 100_000));
        await new Promise((resolve) => setTimeout(resolve, 20));
      } finally {
        freeDisk();
      }
      await assert.rejects(writer.write(bytes.subarray(100_000)), /ENOSPC/);
      await assert.rejects(writer.verify(bytes.length), /ENOSPC|finished/);
      assertFailed(await follower, /ENOSPC/);
      assert.deepEqual(await spoolFiles(), []);
      assert.equal(await store.stat(sha256(bytes)), null);
    });

    test('a follower that does not read holds back neither the writer nor memory', async () => {
      const bytes = randomBytes(8 * 1024 * 1024);
      const writer = await store.createWriter(sha256(bytes));
      const idle = writer.follow();
      idle.pause();
      // Let it start reading: it reads ahead at most its high-water mark.
      await writer.write(bytes.subarray(0, 1024 * 1024));
      await new Promise((resolve) => setImmediate(resolve));
      for (let offset = 1024 * 1024; offset < bytes.length; offset += 1024 * 1024) {
        await writer.write(bytes.subarray(offset, offset + 1024 * 1024));
      }
      assert.equal((await writer.commit()).ok, true, 'the writer finished while the follower read nothing');
      assert.ok(idle.readableLength <= 1024 * 1024, `the follower buffered ${idle.readableLength} bytes`);
      assert.deepEqual(await collect(idle), bytes);
    });
  });
  describe('commits, deletes and listing', () => {
    test('concurrent commits of one digest all succeed and leave one object with those bytes', async () => {
      const bytes = randomBytes(3 * 1024 * 1024 + 17);
      const writers = await Promise.all(Array.from({ length: 4 }, () => store.createWriter(sha256(bytes))));
      for (let offset = 0; offset < bytes.length; offset += 256 * 1024) {
        await Promise.all(writers.map((writer) => writer.write(bytes.subarray(offset, offset + 256 * 1024))));
      }
      const results = await Promise.all(writers.map((writer) => writer.commit(bytes.length)));
      assert.deepEqual(results.map((r) => r.ok), [true, true, true, true]);
      assertCommitted(await store.stat(sha256(bytes)), { digest: sha256(bytes), size: bytes.length });
      assert.ok((await collect((await store.read(sha256(bytes)))!)).equals(bytes));
      assert.equal((await listed()).filter((digest) => digest === sha256(bytes)).length, 1);
      assert.deepEqual(await spoolFiles(), []);
    });

    test('a delete while a reader is reading gives that reader all the bytes or an error, never other bytes', async () => {
      const bytes = randomBytes(8 * 1024 * 1024);
      const digest = await put(bytes);
      const reader = (await store.read(digest))!;
      const first = await new Promise<Buffer>((resolve, reject) => {
        reader.once('data', resolve);
        reader.once('error', reject);
      });
      reader.pause();
      await store.delete(digest);
      assert.equal(await store.stat(digest), null, 'gone for new requests at once');
      assert.equal(await store.read(digest), null);
      const rest = await settle(reader);
      if (rest instanceof Error) return;
      assert.ok(Buffer.concat([first, rest]).equals(bytes), 'a reader that completes has exactly the bytes');
    });

    test('list names every committed object with its size, and not deleted or uncommitted ones', async () => {
      const kept = randomBytes(1234);
      const deleted = randomBytes(99);
      const keptDigest = await put(kept);
      const deletedDigest = await put(deleted);
      await store.delete(deletedDigest);
      const pending = await store.createWriter(sha256(randomBytes(10)));
      await pending.write(randomBytes(10));
      const all: ObjectInfo[] = [];
      for await (const info of store.list()) all.push(info);
      assertCommitted(all.find((info) => info.digest === keptDigest), { digest: keptDigest, size: kept.length });
      assert.equal(all.some((info) => info.digest === deletedDigest), false);
      assert.equal(all.every((info) => /^sha(256|512):[0-9a-f]+$/.test(info.digest)), true);
      await pending.abort(new Error('done'));
    });

    test('a store without a redirect answers no redirect URL', async () => {
      const digest = await put(randomBytes(10));
      assert.equal(await store.redirectUrl(digest), null);
    });
  });

  describe('a write interrupted by a killed process', () => {
    test('leaves only a spool file, which the next start removes; nothing is visible under the digest', async () => {
      const bytes = Buffer.alloc(512 * 1024, 7);
      const digest = sha256(bytes);
      const fixture = path.join(import.meta.dirname, 'fixtures', 'interrupted-write.ts');
      const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', fixture, JSON.stringify(config), digest], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (data: Buffer) => { if (data.toString().includes('written')) resolve(); });
        child.once('exit', () => reject(new Error('the writer exited before writing')));
      });
      child.kill('SIGKILL');
      assert.equal(await exited, 'SIGKILL');

      const restarted = await subject.open(config);
      const leftovers = (await restarted.spool.files()).length;
      assert.ok(leftovers >= 1, 'the killed writer left its spool file');
      assert.equal(await restarted.stat(digest), null, 'nothing readable under the digest');
      await restarted.init();
      assert.deepEqual(await restarted.spool.files(), []);
      assert.equal(await restarted.stat(digest), null);
      assert.equal((await listed()).includes(digest), false);
    });

    test('a start keeps the spool files of writes in progress', async () => {
      const bytes = randomBytes(100);
      const writer = await store.createWriter(sha256(bytes));
      await writer.write(bytes);
      await (await subject.open(config)).init();
      assert.equal((await spoolFiles()).length, 1);
      assert.equal((await writer.commit()).ok, true);
      assert.deepEqual(await spoolFiles(), []);
    });
  });
  });
}
