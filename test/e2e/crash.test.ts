// A Manifold killed with SIGKILL in the middle of a fill (DESIGN §3.2): it leaves only a temporary object,
// which the next start removes; the pull then succeeds, and no object with wrong bytes is ever stored or
// served. Manifold runs as a child process here (`manifold serve`) on a data directory and database the
// in-process server prepared.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../src/db/connect.ts';
import { buildImage } from '../helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, dropSchema, personalToken, startManifold } from '../helpers/manifold.ts';
import { spawnManifold } from '../helpers/manifold-process.ts';
import type { ManifoldProcess } from '../helpers/manifold-process.ts';
import { SlowRegistry } from '../helpers/slow-registry.ts';
import { SkopeoClient } from '../helpers/skopeo.ts';
import { rawGet, until } from '../helpers/e2e.ts';

/** Every committed object file under objects/<algorithm>/<xx>/<hex>, with whether its bytes hash to its name. */
function committedObjects(objectsDir: string): { digest: string; intact: boolean }[] {
  const found: { digest: string; intact: boolean }[] = [];
  for (const algorithm of ['sha256', 'sha512']) {
    const root = path.join(objectsDir, algorithm);
    if (!existsSync(root)) continue;
    for (const fanout of readdirSync(root)) {
      for (const hex of readdirSync(path.join(root, fanout))) {
        const actual = createHash(algorithm).update(readFileSync(path.join(root, fanout, hex))).digest('hex');
        found.push({ digest: `${algorithm}:${hex}`, intact: actual === hex });
      }
    }
  }
  return found;
}

describe('SIGKILL in the middle of a fill', () => {
  const image = buildImage({ layerSizes: [1024, 4 * 1024 * 1024] });
  const layer = image.layers[1];
  const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-crash-'));
  const schema = `e2e_crash_${process.pid}_${randomBytes(3).toString('hex')}`;
  const objectsDir = path.join(dataDir, 'objects');
  let upstream: SlowRegistry;
  let databaseUrl: string | undefined;
  let token: string;
  let running: ManifoldProcess | null = null;

  before(async () => {
    upstream = await SlowRegistry.start();
    upstream.addImage('library/app', image, ['1']);
    const setup = await startManifold({}, { dataDir, schema });
    await createVirtualRegistry(setup, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
    token = await personalToken(setup);
    databaseUrl = setup.databaseUrl;
    await setup.stop();
  });
  after(async () => {
    await running?.kill('SIGKILL');
    await upstream?.close();
    rmSync(dataDir, { recursive: true, force: true });
    await dropSchema(schema);
  });

  it('restarts cleanly: the temporary object is gone, the pull succeeds, no object has wrong bytes', async () => {
    const first = await spawnManifold({ dataDir, databaseUrl });
    running = first;
    const gate = upstream.gate(layer.digest, 1024 * 1024);
    // Handled at once: on a loaded machine the kill may come before the response headers (socket hang up).
    const pulling = rawGet(`${first.url}/v2/acme/hub/library/app/blobs/${layer.digest}`, { authorization: basicToken(token) })
      .catch((error: Error) => ({ complete: false, error: error.message }));
    await gate.reached;
    const tmp = path.join(objectsDir, 'tmp');
    await until(() => readdirSync(tmp).some((name) => statSync(path.join(tmp, name)).size >= 1024 * 1024), 'the fill to have written the first megabyte');

    await first.kill('SIGKILL');
    running = null;
    gate.release();
    const cut = await pulling;
    assert.equal(cut.complete, false, 'the killed server\'s client did not get a complete blob');
    assert.ok(readdirSync(tmp).length >= 1, 'the kill left a temporary object behind');
    assert.ok(!committedObjects(objectsDir).some((o) => o.digest === layer.digest), 'the half-written layer was never committed');
    const database = openDatabase(databaseUrl ? { url: databaseUrl } : { sqlitePath: path.join(dataDir, 'manifold.db') });
    try {
      const entries = await database.db.selectFrom('cache_entries').select('relative_path').where('digest', '=', layer.digest).execute();
      assert.deepEqual(entries, [], 'and has no cache entry');
    } finally {
      await database.close();
    }

    const second = await spawnManifold({ dataDir, databaseUrl });
    running = second;
    assert.deepEqual(readdirSync(tmp), [], 'the start removed the leftover temporary object');
    const pullClient = new SkopeoClient(second.host);
    try {
      assert.equal((await pullClient.login('admin', token)).code, 0);
      const copied = await pullClient.copy('acme/hub/library/app', '1');
      assert.equal(copied.code, 0, copied.stderr);
      assert.equal(copied.layout!.topDigest, image.manifest.digest);
      for (const blob of image.blobs) assert.ok(copied.layout!.blob(blob.digest).equals(blob.bytes));
    } finally {
      pullClient.cleanup();
    }
    const served = await rawGet(`${second.url}/v2/acme/hub/library/app/blobs/${layer.digest}`, { authorization: basicToken(token) });
    assert.equal(served.status, 200);
    assert.ok(served.complete && served.body.equals(layer.bytes), 'the cached layer has exactly the right bytes');
    const objects = committedObjects(objectsDir);
    assert.ok(objects.some((o) => o.digest === layer.digest));
    assert.deepEqual(objects.filter((o) => !o.intact), [], 'every stored object hashes to its name');
    await second.kill('SIGTERM');
    running = null;
  });
});
