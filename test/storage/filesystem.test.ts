// The filesystem backend: the shared backend suite, and what only a backend of local files does.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FilesystemObjectStore } from '../../src/storage/filesystem.ts';
import { openObjectStore } from '../../src/storage/open.ts';
import { loadConfig } from '../../src/config.ts';
import { backendSuite, collect, settle, sha256 } from './backend-suite.ts';

const directories: string[] = [];
after(() => directories.forEach((directory) => rmSync(directory, { recursive: true, force: true })));
const temporaryDirectory = (prefix: string) => {
  const directory = mkdtempSync(path.join(tmpdir(), prefix));
  directories.push(directory);
  return directory;
};

backendSuite('filesystem', {
  config: async () => ({ dataDir: temporaryDirectory('manifold-objects-') }),
  unreachableConfig: () => ({ storage: { path: path.join(temporaryDirectory('manifold-missing-'), 'missing', 'objects') } }),
  open: (config) => openObjectStore(loadConfig({}, config)),
});

describe('file modes', () => {
  test('the objects directory, its subdirectories and the objects are for the owner only (0700/0600)', async () => {
    const parent = temporaryDirectory('manifold-modes-');
    const previousUmask = process.umask(0o022);
    try {
      const objects = new FilesystemObjectStore({ root: path.join(parent, 'objects') });
      await objects.init();
      const bytes = randomBytes(1000);
      const writer = await objects.createWriter(sha256(bytes));
      await writer.write(bytes);
      const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);
      const spooled = readdirSync(path.join(objects.root, 'tmp'));
      assert.equal(mode(path.join(objects.root, 'tmp', spooled[0])), '600', 'the spooled object');
      assert.equal((await writer.commit()).ok, true);
      const file = objects.objectPath(sha256(bytes));
      assert.equal(mode(file), '600', 'the object');
      for (const directory of [objects.root, path.join(objects.root, 'tmp'), path.join(objects.root, 'sha256'), path.dirname(file)]) {
        assert.equal(mode(directory), '700', directory);
      }
    } finally {
      process.umask(previousUmask);
    }
  });
});

describe('filesystem layout', () => {
  test('a committed object is one file under <root>/<algorithm>/<two hex>/<hex>; writes spool in <root>/tmp', async () => {
    const root = temporaryDirectory('manifold-layout-');
    const store = new FilesystemObjectStore({ root });
    await store.init();
    const bytes = randomBytes(1000);
    const writer = await store.createWriter(sha256(bytes));
    await writer.write(bytes);
    assert.equal(readdirSync(path.join(root, 'tmp')).length, 1);
    assert.equal((await writer.commit()).ok, true);
    const hex = sha256(bytes).slice('sha256:'.length);
    assert.equal(store.objectPath(sha256(bytes)), path.join(root, 'sha256', hex.slice(0, 2), hex));
    assert.equal(existsSync(store.objectPath(sha256(bytes))), true);
    assert.deepEqual(readdirSync(path.join(root, 'tmp')), []);
  });

  test('bytes that fail verification leave no file under the digest', async () => {
    const root = temporaryDirectory('manifold-layout-');
    const store = new FilesystemObjectStore({ root });
    await store.init();
    const expected = randomBytes(5000);
    const writer = await store.createWriter(sha256(expected));
    await writer.write(randomBytes(5000));
    assert.equal((await writer.commit()).ok, false);
    assert.equal(existsSync(store.objectPath(sha256(expected))), false);
  });

  test('a follower that joins after the commit reads the committed file', async () => {
    const root = temporaryDirectory('manifold-layout-');
    const store = new FilesystemObjectStore({ root });
    await store.init();
    const bytes = randomBytes(1_000_000);
    const writer = await store.createWriter(sha256(bytes));
    await writer.write(bytes);
    assert.equal((await writer.commit(bytes.length)).ok, true);
    assert.deepEqual(await settle(writer.follow({ start: 10, end: 19 })), bytes.subarray(10, 20));
    assert.ok((await collect(writer.follow())).equals(bytes));
  });
});

describe('opening the configured store', () => {
  test('the filesystem store lives under dataDir/objects unless storage.path says otherwise', async () => {
    const dataDir = temporaryDirectory('manifold-data-');
    const configured = await openObjectStore(loadConfig({}, { dataDir }));
    assert.ok(configured instanceof FilesystemObjectStore);
    assert.equal(configured.root, path.join(dataDir, 'objects'));
    await configured.init();
    assert.equal(await configured.ping(), true);
    const elsewhere = await openObjectStore(loadConfig({}, { dataDir, storage: { path: path.join(dataDir, 'blobs') } }));
    assert.equal((elsewhere as FilesystemObjectStore).root, path.join(dataDir, 'blobs'));
  });
});
