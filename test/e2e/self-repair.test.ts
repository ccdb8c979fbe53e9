// Self-repair and `manifold storage check` with a real Distribution upstream and real skopeo: object
// files deleted or truncated behind Manifold's back are refetched once by the next pull (never an
// error for the client), the check reports what pulls repaired, finds entries without objects and
// objects without entries, and --repair fixes both.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Distribution } from '../helpers/distribution.ts';
import { buildImage, OCI_MANIFEST, sha256 } from '../helpers/oci-image.ts';
import { basicToken, metricValue } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { assertSameImage, startPullFixture } from '../helpers/pull-fixture.ts';
import type { PullFixture } from '../helpers/pull-fixture.ts';
import type { SkopeoClient } from '../helpers/skopeo.ts';
import { logSince, settleLog } from '../helpers/e2e.ts';
import type { FilesystemObjectStore } from '../../src/storage/filesystem.ts';
import type { StorageCheckReport } from '../../src/services/storage-check.ts';

const MAIN = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

describe('self-repair and storage check', () => {
  const image = buildImage({ layerSizes: [3 * 1024, 200 * 1024, 2 * 1024 * 1024] });
  let fixture: PullFixture;
  let upstream: Distribution;
  let server: TestManifold;
  let client: SkopeoClient;

  before(async () => {
    // Hot manifests are answered from memory (checked against their digest) and never read from disk
    // again while they stay there; this test is about what a pull finds on disk.
    fixture = await startPullFixture({ images: [{ repository: 'library/app', image, tag: '1.0' }], config: { cache: { manifestMemoryBytes: 0 } } });
    ({ upstream, server, client } = fixture);
  });
  after(() => fixture?.stop());

  const objectPath = (digest: string) => (server.manifold.store as FilesystemObjectStore).objectPath(digest);

  /** `manifold storage check …` as the operator runs it, on the server's data directory and database. */
  function storageCheck(...args: string[]): { code: number | null; report: StorageCheckReport; stderr: string } {
    const run = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, 'storage', 'check', '--json', ...args], {
      env: { ...process.env, MANIFOLD_CONFIG: '', MANIFOLD_DATA_DIR: server.dataDir, DATABASE_URL: server.databaseUrl ?? '', MANIFOLD_LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.ok(run.stdout, `storage check printed nothing: ${run.stderr}`);
    return { code: run.status, report: JSON.parse(run.stdout) as StorageCheckReport, stderr: run.stderr };
  }

  async function copyAndCompare(): Promise<void> {
    const copied = await client.copy('acme/hub/library/app', '1.0');
    assert.equal(copied.code, 0, copied.stderr);
    assertSameImage(copied.layout, image);
  }

  it('a pull refetches a deleted and a truncated object once each, and storage check reports those repairs', async () => {
    await copyAndCompare();
    await server.manifold.services.pull.settle();
    const [, middle, large] = image.layers;
    unlinkSync(objectPath(large.digest));
    truncateSync(objectPath(middle.digest), 1000);
    unlinkSync(objectPath(image.manifest.digest));

    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    await copyAndCompare();
    await settleLog(upstream);
    const fetched = logSince(upstream, mark).filter((entry) => entry.method === 'GET' && entry.path.startsWith('/v2/library/')).map((entry) => entry.path).sort();
    assert.deepEqual(fetched, [
      `/v2/library/app/blobs/${large.digest}`,
      `/v2/library/app/blobs/${middle.digest}`,
      '/v2/library/app/manifests/1.0',
    ].sort(), 'exactly the damaged objects were fetched again, once each');

    await server.manifold.services.pull.settle();
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_storage_repairs_total', { reason: 'missing', source: 'pull' }), 2);
    assert.equal(metricValue(metrics, 'manifold_storage_repairs_total', { reason: 'size_mismatch', source: 'pull' }), 1);
    assert.ok(server.logs.some((line) => line.includes('self-repair') && line.includes(middle.digest)), 'the repair is logged');

    // Repaired: a third copy costs the upstream nothing.
    const again = upstream.accessLog.length;
    await copyAndCompare();
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, again).filter((entry) => entry.path.startsWith('/v2/library/')), []);

    const check = storageCheck();
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.report.damaged_entries.count, 0);
    assert.equal(check.report.orphan_objects.count, 0);
    assert.equal(check.report.pull_repairs.count, 3);
    const repaired = check.report.pull_repairs.items.map((r) => `${r.relative_path} ${r.reason}`).sort();
    assert.deepEqual(repaired, [
      `/library/app/blobs/${large.digest} missing`,
      `/library/app/blobs/${middle.digest} size_mismatch`,
      `/library/app/manifests/1.0 missing`,
    ].sort());
  });

  it('storage check finds an entry without its object and an object without entry; --repair fixes both', async () => {
    // An entry whose object vanished, found by the check before any pull.
    unlinkSync(objectPath(image.config.digest));
    // An object no entry refers to, older than the grace period; and a young one, perhaps a fill being committed.
    const orphan = randomBytes(5000);
    const young = randomBytes(700);
    for (const bytes of [orphan, young]) {
      const file = objectPath(sha256(bytes));
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, bytes);
    }
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    utimesSync(objectPath(sha256(orphan)), twoHoursAgo, twoHoursAgo);

    const found = storageCheck();
    assert.equal(found.code, 3, 'problems found and not repaired');
    assert.deepEqual(found.report.damaged_entries.items.map((e) => [e.relative_path, e.reason]), [[`/library/app/blobs/${image.config.digest}`, 'missing']]);
    assert.deepEqual(found.report.orphan_objects.items.map((o) => [o.digest, o.size]), [[sha256(orphan), orphan.length]]);
    assert.equal(found.report.young_objects_skipped, 1);
    assert.equal(found.report.repaired, null);
    assert.ok(existsSync(objectPath(sha256(orphan))), 'a check without --repair changes nothing');

    const repaired = storageCheck('--repair');
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.deepEqual(repaired.report.repaired, { entries_marked: 1, objects_deleted: 1, objects_kept: 0, objects_failed: 0 });
    assert.equal(existsSync(objectPath(sha256(orphan))), false, 'the orphan is deleted');
    assert.ok(existsSync(objectPath(sha256(young))), 'the young object is left alone');

    // The marked entry is a miss: the next pull fetches the config once, and the check is clean.
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    await copyAndCompare();
    await settleLog(upstream);
    assert.deepEqual(logSince(upstream, mark).filter((entry) => entry.path.startsWith('/v2/library/')).map((entry) => `${entry.method} ${entry.path}`), [`GET /v2/library/app/blobs/${image.config.digest}`]);
    await server.manifold.services.pull.settle();
    await server.manifold.services.destroyer.runOnce();
    const clean = storageCheck();
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(clean.report.damaged_entries.count, 0);
    assert.equal(clean.report.orphan_objects.count, 0);
  });
});

describe('an eviction racing a hit is not a repair', () => {
  const image = buildImage({ layerSizes: [64 * 1024] });
  const repository = 'acme/hub/library/raced';
  let fixture: PullFixture;
  let server: TestManifold;
  let authorization: string;

  before(async () => {
    fixture = await startPullFixture({
      images: [{ repository: 'library/raced', image, tag: '1.0' }],
      // Manifests are read from disk on every hit (no memory), and entries are evictable at once.
      config: { cache: { manifestMemoryBytes: 0 }, storage: { evictionGraceSeconds: 0 } },
    });
    server = fixture.server;
    authorization = basicToken(fixture.token);
  });
  after(() => fixture?.stop());

  async function get(kind: 'manifests' | 'blobs', reference: string): Promise<Buffer> {
    const response = await fetch(`${server.url}/v2/${repository}/${kind}/${reference}`, { headers: { authorization, accept: OCI_MANIFEST } });
    assert.equal(response.status, 200, await response.clone().text());
    return Buffer.from(await response.arrayBuffer());
  }

  async function pullAll(): Promise<void> {
    assert.ok((await get('manifests', '1.0')).equals(image.manifest.bytes));
    for (const blob of image.blobs) assert.ok((await get('blobs', blob.digest)).equals(blob.bytes), `blob ${blob.digest} is identical`);
    await server.manifold.services.pull.settle();
  }

  /** Every entry is evicted and destroyed the moment the pull, having found its entry, asks the store for `digest`. */
  function evictWhenAsked(method: 'stat' | 'read', digest: string): () => void {
    const store = server.manifold.store;
    const original = store[method];
    let raced = false;
    const { evictor, destroyer } = server.manifold.services;
    store[method] = async (asked: string, ...rest: unknown[]) => {
      if (asked === digest && !raced) {
        raced = true;
        const tally = await evictor.evict({}, { usedBefore: Date.now() + 60_000 });
        assert.ok(tally.entries > 0, 'the eviction marked the entries');
        await destroyer.runOnce();
      }
      return (original as (...args: unknown[]) => Promise<never>).call(store, asked, ...rest);
    };
    return () => {
      store[method] = original as never;
      assert.ok(raced, `the pull asked the store (${method}) for ${digest}`);
    };
  }

  it('a blob or manifest hit whose entry is evicted meanwhile succeeds as a miss and records no repair', async () => {
    await pullAll();
    const layer = image.layers[0];
    let restore = evictWhenAsked('stat', layer.digest);
    try {
      assert.ok((await get('blobs', layer.digest)).equals(layer.bytes), 'the blob is served whole');
    } finally {
      restore();
    }

    await pullAll();
    restore = evictWhenAsked('read', image.manifest.digest);
    try {
      assert.ok((await get('manifests', '1.0')).equals(image.manifest.bytes), 'the manifest is served whole');
    } finally {
      restore();
    }
    await pullAll();

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(metricValue(metrics, 'manifold_storage_repairs_total'), 0, 'no repair is counted');
    assert.ok(!server.logs.some((line) => line.includes('self-repair')), 'no repair is logged');
    const report = await server.manifold.services.storageCheck.run({ repair: false });
    assert.equal(report.pull_repairs.count, 0, 'storage check lists no repair by a pull');
    assert.equal(report.damaged_entries.count, 0);
  });
});
