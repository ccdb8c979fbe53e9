// Prefetch with a real Distribution upstream, the real CLI and real skopeo: `manifold prefetch` of a
// multi-platform image for one platform fetches only that platform's manifest and blobs, shows its
// progress up to done = total, and the next pull of that platform costs the upstream nothing. Through
// the API a job is created, read and canceled (an in-process upstream holds blobs so that the job is
// caught running); a job whose replica stopped is taken over.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Distribution } from '../helpers/distribution.ts';
import { buildImage, buildIndex } from '../helpers/oci-image.ts';
import { createVirtualRegistry, personalToken } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { startPullFixture } from '../helpers/pull-fixture.ts';
import type { PullFixture } from '../helpers/pull-fixture.ts';
import type { SkopeoClient } from '../helpers/skopeo.ts';
import { logSince, settleLog, until } from '../helpers/e2e.ts';
import { SlowRegistry } from '../helpers/slow-registry.ts';
import type { PrefetchJobView } from '../../src/services/prefetch-jobs.ts';

const MAIN = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

describe('prefetch', () => {
  const index = buildIndex({ platforms: [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }], layerSizes: [16 * 1024, 700 * 1024] });
  const [amd64, arm64] = index.images;
  let fixture: PullFixture;
  let upstream: Distribution;
  let slow: SlowRegistry;
  let server: TestManifold;
  let client: SkopeoClient;
  let apiToken: string;
  let registryId: number;

  before(async () => {
    fixture = await startPullFixture({ images: [{ repository: 'library/multi', image: index, tag: '1.0' }] });
    ({ upstream, server, client, registryId } = fixture);
    slow = await SlowRegistry.start();
    apiToken = await personalToken(server, ['api']);
  });
  after(async () => {
    await fixture?.stop();
    await slow?.close();
  });

  /** The CLI as a child process on the server's data (asynchronously: the server runs in this process). */
  function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, ...args], {
        env: { ...process.env, MANIFOLD_CONFIG: '', MANIFOLD_DATA_DIR: server.dataDir, DATABASE_URL: server.databaseUrl ?? '', MANIFOLD_LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
      const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  const api = (pathname: string, init: RequestInit = {}) => fetch(`${server.url}/api/v1${pathname}`, {
    ...init,
    headers: { authorization: `Bearer ${apiToken}`, ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers },
  });

  const upstreamGets = (mark: number) => logSince(upstream, mark).filter((entry) => entry.method === 'GET' && entry.path.startsWith('/v2/library/multi/')).map((entry) => entry.path).sort();

  it('manifold prefetch of one platform fetches only its blobs, reaches done = total, and the next pull costs the upstream nothing', async () => {
    await settleLog(upstream);
    const mark = upstream.accessLog.length;
    const run = await cli('prefetch', 'acme/hub', 'library/multi:1.0', '--platform', 'linux/arm64', '--json');
    assert.equal(run.code, 0, run.stderr);
    const job = JSON.parse(run.stdout) as PrefetchJobView;
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(job.platforms, ['linux/arm64']);
    const expectedBytes = index.index.size + arm64.manifest.size + arm64.blobs.reduce((sum, blob) => sum + blob.size, 0);
    assert.deepEqual(job.progress, { total_objects: 2 + arm64.blobs.length, done_objects: 2 + arm64.blobs.length, failed_objects: 0, total_bytes: expectedBytes, done_bytes: expectedBytes });
    assert.match(run.stderr, /\[#{24}\] 100% .* 5\/5 objects {2}succeeded/, 'the progress ends at 100 %');

    await settleLog(upstream);
    assert.deepEqual(upstreamGets(mark), [
      '/v2/library/multi/manifests/1.0',
      `/v2/library/multi/manifests/${arm64.manifest.digest}`,
      ...arm64.blobs.map((blob) => `/v2/library/multi/blobs/${blob.digest}`),
    ].sort(), 'the index, the arm64 manifest and its blobs; nothing of amd64');

    const shown = await api(`/prefetch_jobs/${job.id}`);
    assert.equal(shown.status, 200);
    assert.deepEqual((await shown.json() as PrefetchJobView).progress, job.progress);

    const pulled = upstream.accessLog.length;
    const copied = await client.copy('acme/hub/library/multi', '1.0', { arch: 'arm64', variant: 'v8' });
    assert.equal(copied.code, 0, copied.stderr);
    for (const blob of arm64.blobs) assert.ok(copied.layout!.blob(blob.digest).equals(blob.bytes));
    await settleLog(upstream);
    assert.deepEqual(upstreamGets(pulled), [], 'the pull of the prefetched platform came from the cache');
    assert.deepEqual(logSince(upstream, pulled).filter((entry) => entry.path.startsWith('/v2/library/')), []);
  });

  it('a running job whose replica stopped is queued again and finished by a live one', async () => {
    const created = await server.manifold.services.prefetchJobs.create(server.admin, registryId, { images: ['library/multi:1.0'], platforms: ['linux/amd64'] });
    assert.ok(created.ok);
    const db = server.manifold.database.db;
    // As if another replica had claimed it and died: running, its heartbeat a minute old.
    await db.updateTable('prefetch_jobs').set({ status: 'running', owner: 'a-replica-that-died', heartbeat_at: Date.now() - 60_000, attempts: 1 }).where('id', '=', created.value.id).execute();
    let job: PrefetchJobView | null = null;
    await until(async () => {
      job = (await (await api(`/prefetch_jobs/${created.value.id}`)).json()) as PrefetchJobView;
      return job.status === 'succeeded' || job.status === 'failed';
    }, 'the job taken over and finished', 15_000);
    assert.equal(job!.status, 'succeeded', job!.error ?? '');
    assert.equal(job!.attempts, 2);
    const expectedBytes = index.index.size + amd64.manifest.size + amd64.blobs.reduce((sum, blob) => sum + blob.size, 0);
    assert.deepEqual(job!.progress, { total_objects: 2 + amd64.blobs.length, done_objects: 2 + amd64.blobs.length, failed_objects: 0, total_bytes: expectedBytes, done_bytes: expectedBytes });
  });

  it('DELETE cancels a running job: it stops, fetches nothing more, and says canceled', async () => {
    const image = buildImage({ layerSizes: [64 * 1024, 64 * 1024, 64 * 1024, 64 * 1024] });
    slow.addImage('library/held', image, ['1']);
    const held = image.layers.slice(0, 3).map((layer) => slow.gate(layer.digest, 1000));
    const slowRegistry = await createVirtualRegistry(server, { group: 'slowgroup', registry: 'slow', upstreamUrls: [slow.url] });

    const posted = await api(`/registries/${slowRegistry.registry.id}/prefetch`, { method: 'POST', body: JSON.stringify({ images: ['library/held:1'] }) });
    assert.equal(posted.status, 202);
    const job = await posted.json() as PrefetchJobView;
    assert.equal(posted.headers.get('location'), `/api/v1/prefetch_jobs/${job.id}`);
    await Promise.all(held.map((gate) => gate.reached));

    const canceled = await api(`/prefetch_jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(canceled.status, 200);
    assert.equal((await canceled.json() as PrefetchJobView).status, 'canceled');
    await until(() => server.manifold.services.prefetchRunner.running === 0, 'the runner to stop the job', 10_000);
    held.forEach((gate) => gate.release());
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(slow.received('GET', `/v2/library/held/blobs/${image.layers[3].digest}`).length, 0, 'the blob not yet started is never fetched');

    const after = await (await api(`/prefetch_jobs/${job.id}`)).json() as PrefetchJobView;
    assert.equal(after.status, 'canceled');
    assert.ok(after.progress.done_objects < after.progress.total_objects);
    const again = await api(`/prefetch_jobs/${job.id}`, { method: 'DELETE' });
    assert.equal(again.status, 409);

    const audit = await server.manifold.database.db.selectFrom('audit_events').select(['action', 'target_id']).where('target_type', '=', 'prefetch_job').execute();
    assert.ok(audit.some((event) => event.action === 'prefetch.create' && Number(event.target_id) === job.id));
    assert.ok(audit.some((event) => event.action === 'prefetch.cancel' && Number(event.target_id) === job.id));
  });
});
