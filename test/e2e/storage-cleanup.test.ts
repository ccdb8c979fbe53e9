// Cleanup policies and eviction with real peers (issue 18): a policy of one day removes exactly the
// entries not downloaded for a day at its next run, and records how many and how many bytes; eviction
// and cleanup running all the time while 16 skopeo pulls fetch the very images being evicted break no
// pull (no failure, no BLOB_UNKNOWN, no wrong byte).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../helpers/e2e.ts';
import { buildImage, content, OCI_LAYER } from '../helpers/oci-image.ts';
import { personalToken } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { assertSameImage, startPullFixture } from '../helpers/pull-fixture.ts';
import type { PullFixture } from '../helpers/pull-fixture.ts';
import type { SkopeoClient } from '../helpers/skopeo.ts';
import { randomBytes } from 'node:crypto';

const KiB = 1024;
const DAY = 24 * 60 * 60 * 1000;

describe('cleanup policies and eviction', () => {
  const base = content(OCI_LAYER, randomBytes(128 * KiB));
  const images = Array.from({ length: 4 }, () => buildImage({ sharedLayers: [base], layerSizes: [256 * KiB, 64 * KiB] }));
  const old = buildImage({ layerSizes: [200 * KiB] });
  const recent = buildImage({ layerSizes: [150 * KiB] });
  let fixture: PullFixture;
  let server: TestManifold;
  let client: SkopeoClient;
  let apiToken: string;

  before(async () => {
    fixture = await startPullFixture({
      images: [
        ...images.map((one, index) => ({ repository: `busy/b${index}`, image: one, tag: '1' })),
        { repository: 'policy/old', image: old, tag: '1' },
        { repository: 'policy/recent', image: recent, tag: '1' },
      ],
      config: { storage: { evictionGraceSeconds: 0 }, cache: { cleanupCheckSeconds: 1 } },
    });
    ({ server, client } = fixture);
    apiToken = await personalToken(server, ['api']);
  });
  after(() => fixture?.stop());

  const api = (path: string, init: RequestInit = {}) => fetch(`${server.url}/api/v1${path}`, { ...init, headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json', ...init.headers } });

  it('a policy of one day removes exactly the entries not downloaded for a day at its next run, and records them', async () => {
    const db = server.manifold.database.db;
    for (const repository of ['policy/old', 'policy/recent']) assert.equal((await client.copy(`acme/hub/${repository}`, '1')).code, 0);
    await server.manifold.services.counter.flush();
    const put = await api('/groups/acme/cleanup_policy', { method: 'PUT', body: JSON.stringify({ keep_n_days_after_download: 1, cadence_days: 1 }) });
    assert.equal(put.status, 201);

    // The old image was last pulled two days ago; the run is due now.
    const twoDaysAgo = Date.now() - 2 * DAY;
    await db.updateTable('cache_entries').set({ downloaded_at: twoDaysAgo }).where('relative_path', 'like', '/policy/old/%').execute();
    const expected = await db.selectFrom('cache_entries').select(['id', 'size']).where('relative_path', 'like', '/policy/old/%').where('status', '=', 0).execute();
    assert.ok(expected.length >= 3, 'manifest, config and layer entries');
    const kept = await db.selectFrom('cache_entries').select('id').where('relative_path', 'like', '/policy/recent/%').where('status', '=', 0).execute();
    await db.updateTable('cleanup_policies').set({ next_run_at: Date.now() - 1000 }).execute();

    let runs: Array<{ reason: string; deleted_entries: number; deleted_bytes: number; finished_at: number; failure_message: string | null }> = [];
    await until(async () => {
      runs = await (await api('/groups/acme/cleanup_policy/runs')).json() as typeof runs;
      return runs.length > 0;
    }, 'the cleanup run', 15_000);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].reason, 'cleanup_policy');
    assert.equal(runs[0].failure_message, null);
    assert.equal(runs[0].deleted_entries, expected.length);
    assert.equal(runs[0].deleted_bytes, expected.reduce((sum, row) => sum + Number(row.size), 0));

    const policy = await (await api('/groups/acme/cleanup_policy')).json() as { last_run_at: number; last_run_deleted_entries: number; last_run_deleted_bytes: number; next_run_at: number };
    assert.equal(policy.last_run_deleted_entries, expected.length);
    assert.equal(policy.last_run_deleted_bytes, runs[0].deleted_bytes);
    assert.ok(policy.next_run_at > Date.now() + DAY - 60_000, 'the next run is a cadence later');

    // The run removed exactly those entries (and their objects); the recently pulled image is untouched.
    await until(async () => (await db.selectFrom('cache_entries').select('id').where('id', 'in', expected.map((row) => row.id)).execute()).length === 0, 'the destroyer', 10_000);
    const left = new Set((await db.selectFrom('cache_entries').select('id').where('relative_path', 'like', '/policy/recent/%').where('status', '=', 0).execute()).map((row) => row.id));
    assert.ok(kept.every((row) => left.has(row.id)), 'every entry of the recently pulled image is still live');
    assert.equal(await server.manifold.store.stat(old.layers[0].digest), null);
    assert.ok(await server.manifold.store.stat(recent.layers[0].digest));
    // The next pull of the old image works again (from the upstream).
    const again = await client.copy('acme/hub/policy/old', '1');
    assert.equal(again.code, 0, again.stderr);
    assertSameImage(again.layout, old);
  });

  it('16 pulls of the images being evicted and cleaned up all succeed with the right bytes', async () => {
    const { evictor, destroyer, cleanup } = server.manifold.services;
    const db = server.manifold.database.db;
    for (const [index] of images.entries()) assert.equal((await client.copy(`acme/hub/busy/b${index}`, '1')).code, 0);
    let evicting = true;
    let markedEntries = 0;
    let rounds = 0;
    const churn = (async () => {
      while (evicting) {
        // Eviction of everything (no grace), then a due cleanup policy over entries set back two days.
        const tally = await evictor.evict({}, {});
        markedEntries += tally.entries;
        await destroyer.runOnce();
        await db.updateTable('cache_entries').set({ downloaded_at: Date.now() - 2 * DAY }).where('status', '=', 0).execute();
        await db.updateTable('cleanup_policies').set({ next_run_at: 0 }).execute();
        markedEntries += (await cleanup.runDue()).entries;
        rounds++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    let results;
    try {
      results = await Promise.all(Array.from({ length: 16 }, (_, n) => client.copy(`acme/hub/busy/b${n % images.length}`, '1')));
    } finally {
      evicting = false;
      await churn;
    }
    const failed = results.filter((run) => run.code !== 0);
    assert.deepEqual(failed.map((run) => run.stderr), [], 'no pull failed');
    assert.ok(!results.some((run) => /BLOB_UNKNOWN|blob unknown/i.test(run.stderr)));
    for (const [n, run] of results.entries()) assertSameImage(run.layout, images[n % images.length]);
    assert.ok(rounds >= 2 && markedEntries > 0, `eviction and cleanup ran during the pulls (${rounds} rounds, ${markedEntries} entries)`);
  });
});
