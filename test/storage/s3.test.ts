// The S3 backend against a real S3-compatible server (s3rver on loopback): the shared backend suite,
// and what only a bucket does (keys, redirect URLs, nothing visible before an upload completes).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { loadConfig } from '../../src/config.ts';
import { openObjectStore } from '../../src/storage/open.ts';
import type { S3Backend } from '../../src/storage/s3.ts';
import type { SpooledObjectStore } from '../../src/storage/spooled-store.ts';
import { startS3Server } from '../helpers/s3-server.ts';
import type { TestS3Server } from '../helpers/s3-server.ts';
import { assertCommitted, backendSuite, collect, sha256 } from './backend-suite.ts';

let server: TestS3Server;
const directories: string[] = [];
before(async () => {
  server = await startS3Server();
});
after(async () => {
  await server?.stop();
  directories.forEach((directory) => rmSync(directory, { recursive: true, force: true }));
});
const temporaryDirectory = (prefix: string) => {
  const directory = mkdtempSync(path.join(tmpdir(), prefix));
  directories.push(directory);
  return directory;
};
let prefixes = 0;

backendSuite('s3', {
  // Each run its own prefix in the one bucket, as replicas of separate deployments would have.
  config: async () => ({ dataDir: temporaryDirectory('manifold-s3-data-'), storage: server.storage({ prefix: `suite-${++prefixes}/` }) }),
  unreachableConfig: () => ({ dataDir: temporaryDirectory('manifold-s3-data-'), storage: server.storage({ bucket: 'no-such-bucket' }) }),
  open: (config) => openObjectStore(loadConfig({}, config)),
});

describe('S3 specifics', () => {
  let store: SpooledObjectStore;
  before(async () => {
    store = await openObjectStore(loadConfig({}, { dataDir: temporaryDirectory('manifold-s3-data-'), storage: server.storage({ prefix: 'specifics/', redirect: true, partSizeMb: 5 }) }));
    await store.init();
  });

  test('an object is one key <prefix><algorithm>/<hex>; a large one is uploaded in parts and reads back whole and in ranges', async () => {
    const bytes = randomBytes(12 * 1024 * 1024 + 3);
    const writer = await store.createWriter(sha256(bytes));
    for (let offset = 0; offset < bytes.length; offset += 1024 * 1024) await writer.write(bytes.subarray(offset, offset + 1024 * 1024));
    assert.equal((await writer.commit(bytes.length)).ok, true);
    const backend = store.backend as S3Backend;
    assert.equal(backend.key(sha256(bytes)), `specifics/sha256/${sha256(bytes).slice(7)}`);
    const direct = await backend.client.send(new GetObjectCommand({ Bucket: server.bucket, Key: backend.key(sha256(bytes)) }));
    assert.ok(Buffer.from(await direct.Body!.transformToByteArray()).equals(bytes));
    assert.ok((await collect((await store.read(sha256(bytes), { start: 5 * 1024 * 1024 - 1, end: 10 * 1024 * 1024 }))!)).equals(bytes.subarray(5 * 1024 * 1024 - 1, 10 * 1024 * 1024 + 1)));
  });

  test('nothing is visible under the digest before the verified spool is uploaded, nor after a failed verification', async () => {
    const bytes = randomBytes(300_000);
    const writer = await store.createWriter(sha256(bytes));
    await writer.write(bytes);
    assert.equal((await writer.verify(bytes.length)).ok, true);
    assert.equal(await store.stat(sha256(bytes)), null, 'verified but not committed: not in the bucket');
    assert.equal((await writer.commit()).ok, true);
    assertCommitted(await store.stat(sha256(bytes)), { digest: sha256(bytes), size: bytes.length });

    const expected = randomBytes(6 * 1024 * 1024);
    const wrong = await store.createWriter(sha256(expected));
    await wrong.write(randomBytes(6 * 1024 * 1024));
    assert.equal((await wrong.commit()).ok, false);
    assert.equal(await store.stat(sha256(expected)), null);
  });

  test('a multipart upload that fails part-way is aborted and leaves no object; the spool goes too', async () => {
    const bytes = randomBytes(11 * 1024 * 1024);
    const backend = store.backend as S3Backend;
    const send = backend.client.send.bind(backend.client);
    const sent: string[] = [];
    backend.client.send = (async (command: { constructor: { name: string }; input: { PartNumber?: number } }) => {
      sent.push(command.constructor.name);
      if (command.constructor.name === 'UploadPartCommand' && command.input.PartNumber === 2) throw new Error('connection reset by the bucket');
      return send(command as never);
    }) as typeof backend.client.send;
    try {
      const writer = await store.createWriter(sha256(bytes));
      await writer.write(bytes);
      await assert.rejects(writer.commit(bytes.length), /connection reset by the bucket/);
    } finally {
      backend.client.send = send;
    }
    assert.ok(sent.includes('CreateMultipartUploadCommand'));
    assert.ok(sent.includes('AbortMultipartUploadCommand'), 'the upload was aborted');
    assert.equal(sent.includes('CompleteMultipartUploadCommand'), false);
    assert.equal(await store.stat(sha256(bytes)), null);
    assert.deepEqual(await store.spool.files(), []);
  });

  test('with redirect on, a committed object has a pre-signed URL that serves its bytes and ranges', async () => {
    const bytes = randomBytes(100_000);
    const writer = await store.createWriter(sha256(bytes));
    await writer.write(bytes);
    assert.equal((await writer.commit()).ok, true);
    const url = await store.redirectUrl(sha256(bytes));
    assert.ok(url);
    assert.match(url, /X-Amz-Signature=/);
    assert.match(url, /X-Amz-Expires=1200/);
    const whole = await fetch(url);
    assert.equal(whole.status, 200);
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bytes));
    const ranged = await fetch(url, { headers: { range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20)));
  });

  test('a configuration without a bucket is refused at start, naming the setting', () => {
    assert.throws(() => loadConfig({ MANIFOLD_STORAGE_DRIVER: 's3' }), /storage\.s3\.bucket \(MANIFOLD_STORAGE_S3_BUCKET\): required/);
    assert.throws(() => loadConfig({}, { storage: { driver: 's3', s3: { bucket: 'b-1', accessKeyId: 'x' } } }), /secretAccessKey/);
  });
});
