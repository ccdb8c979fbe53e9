// DESIGN §3.1 rule 6: the winner is the first upstream that has the object once every upstream before it
// has answered "no"; at most N attempts at a time, each with a short timeout.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamClient } from '../../src/upstream/client.ts';
import type { ProbeResult, UpstreamResult, UpstreamTarget } from '../../src/upstream/client.ts';
import { FakeRegistry } from '../../test/helpers/fake-registry.ts';
import { buildImage } from '../../test/helpers/oci-image.ts';

const image = buildImage({ layerSizes: [10] });
const manifestPath = '/v2/team/app/manifests/v1';

function targetOf(registry: FakeRegistry | string, id: number): UpstreamTarget {
  return { id, url: typeof registry === 'string' ? registry : registry.url, username: null, password: null, tokenUrl: null };
}

describe('probe over fake registries', () => {
  const registries: FakeRegistry[] = [];
  let client: UpstreamClient;

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const registry = await FakeRegistry.start();
      registry.addImage('team/app', image, ['v1']);
      registries.push(registry);
    }
    client = new UpstreamClient({
      allowPrivate: true,
      connectTimeoutMs: 2_000,
      headersTimeoutMs: 5_000,
      bodyTimeoutMs: 5_000,
      probeTimeoutMs: 1_000,
      probeConcurrency: 3,
      maxManifestBytes: 4 * 1024 * 1024,
    });
  });
  after(async () => {
    await client.close();
    await Promise.all(registries.map((r) => r.close()));
  });
  afterEach(() => registries.forEach((r) => r.clearFaults()));

  const targets = () => registries.map((r, i) => targetOf(r, i + 1));
  const headAll = (list = targets()) => client.probe(list, (t, signal) => client.headManifest(t, 'team/app', 'v1', signal));

  it('a slow first upstream that has the object wins over a fast second one', async () => {
    registries[0].fault({ path: manifestPath, fault: { kind: 'delay', ms: 300 } });
    const result = await headAll();
    assert.equal(result.kind, 'found');
    const winner = result as Extract<ProbeResult<unknown>, { kind: 'found' }>;
    assert.equal(winner.index, 0);
    assert.equal(winner.target.id, 1);
    assert.deepEqual(winner.failures, []);
    // They were asked in parallel: the second answered while the first was still thinking.
    assert.equal(registries[1].received('HEAD', manifestPath).length > 0, true);
  });

  it('the first upstream answering 404 hands the win to the second', async () => {
    registries[0].fault({ path: manifestPath, fault: { kind: 'status', status: 404 } });
    const result = await headAll();
    assert.equal(result.kind, 'found');
    assert.equal((result as { index: number }).index, 1);
  });

  it('a failing first upstream counts as no, and its failure is reported', async () => {
    registries[0].fault({ path: manifestPath, fault: { kind: 'status', status: 500, body: 'broken' } });
    const result = await headAll();
    assert.equal(result.kind, 'found');
    assert.equal((result as { index: number }).index, 1);
    assert.equal(result.failures.length, 1);
    assert.equal(result.failures[0].upstreamId, 1);
    assert.equal(result.failures[0].failure.kind, 'unavailable');
  });

  it('none has it → not_found; failures among them are still reported', async () => {
    registries[0].fault({ path: manifestPath, fault: { kind: 'status', status: 502 } });
    registries[1].fault({ path: manifestPath, fault: { kind: 'status', status: 404 } });
    registries[2].fault({ path: manifestPath, fault: { kind: 'status', status: 404 } });
    const result = await headAll();
    assert.equal(result.kind, 'not_found');
    assert.deepEqual(result.failures.map((f) => f.upstreamId), [1]);
  });

  it('all fail → unavailable with every cause (error status, refused connection, timeout)', async () => {
    const closed = await FakeRegistry.start();
    const closedUrl = closed.url;
    await closed.close();
    registries[0].fault({ path: manifestPath, fault: { kind: 'status', status: 500, body: 'exploded' } });
    registries[2].fault({ path: manifestPath, fault: { kind: 'hang' } });
    const list = [targetOf(registries[0], 1), targetOf(closedUrl, 2), targetOf(registries[2], 3)];
    const result = await headAll(list);
    assert.equal(result.kind, 'unavailable');
    assert.equal((result as { rateLimited: boolean }).rateLimited, false);
    const causes = result.failures.map((f) => (f.failure.kind === 'unavailable' ? f.failure.cause : f.failure.kind));
    assert.deepEqual(result.failures.map((f) => f.upstreamId), [1, 2, 3]);
    assert.match(causes[0], /HTTP 500/);
    assert.match(causes[1], /connection refused/);
    assert.match(causes[2], /no answer within 1000 ms/);
  });

  it('all rate limited → unavailable and flagged as rate limited', async () => {
    for (const registry of registries) registry.fault({ path: manifestPath, fault: { kind: 'status', status: 429, headers: { 'retry-after': '30' } } });
    const result = await headAll();
    assert.equal(result.kind, 'unavailable');
    assert.equal((result as { rateLimited: boolean }).rateLimited, true);
    assert.ok(result.failures.every((f) => f.failure.kind === 'rate_limited' && f.failure.retryAfterSeconds === 30));
  });
});

describe('probe scheduling', () => {
  const client = new UpstreamClient({
    allowPrivate: true,
    connectTimeoutMs: 1_000,
    headersTimeoutMs: 1_000,
    bodyTimeoutMs: 1_000,
    probeTimeoutMs: 200,
    probeConcurrency: 3,
    maxManifestBytes: 1024,
  });
  after(() => client.close());
  const many = (n: number) => Array.from({ length: n }, (_, i) => targetOf(`http://upstream-${i}.invalid`, i + 1));
  const later = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

  it('runs at most 3 attempts at a time and asks every upstream when none has it', async () => {
    let inFlight = 0;
    let most = 0;
    const asked: number[] = [];
    const result = await client.probe(many(7), async (t): Promise<UpstreamResult<string>> => {
      asked.push(t.id);
      most = Math.max(most, ++inFlight);
      await later(10 + (t.id % 3) * 5, null);
      inFlight--;
      return { kind: 'not_found', status: 404 };
    });
    assert.equal(result.kind, 'not_found');
    assert.equal(most, 3);
    assert.deepEqual(asked.sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7]);
  });

  it('stops asking and aborts lower-priority attempts once the winner is known', async () => {
    const asked: number[] = [];
    const aborted: number[] = [];
    const result = await client.probe(many(6), (t, signal): Promise<UpstreamResult<string>> => {
      asked.push(t.id);
      signal.addEventListener('abort', () => aborted.push(t.id));
      if (t.id === 1) return later(5, { kind: 'found', value: 'first' });
      return new Promise(() => {}); // never answers on its own
    });
    assert.equal(result.kind, 'found');
    assert.equal((result as { value: string }).value, 'first');
    assert.deepEqual(asked, [1, 2, 3]);
    assert.deepEqual(aborted.sort(), [2, 3]);
  });

  it("never aborts the winner's signal (its value may be a stream still being read)", async () => {
    let winnerSignal: AbortSignal | null = null;
    const result = await client.probe(many(2), (t, signal): Promise<UpstreamResult<string>> => {
      if (t.id === 1) return later(150, { kind: 'not_found', status: 404 });
      winnerSignal = signal;
      return Promise.resolve({ kind: 'found', value: 'second' });
    });
    assert.equal((result as { index: number }).index, 1);
    await later(250, null); // past the winner's own probe timeout
    assert.equal(winnerSignal!.aborted, false);
  });

  it('an attempt that ignores its signal still ends at the probe timeout', async () => {
    const result = await client.probe(many(2), (t): Promise<UpstreamResult<string>> =>
      t.id === 1 ? new Promise(() => {}) : Promise.resolve({ kind: 'found', value: 'second' }));
    assert.equal(result.kind, 'found');
    assert.equal((result as { index: number }).index, 1);
    assert.match(JSON.stringify(result.failures), /no answer within 200 ms/);
  });

  it('an attempt that throws counts as a failure; no targets is not_found', async () => {
    const thrown = await client.probe(many(1), () => Promise.reject(new Error('bug')));
    assert.equal(thrown.kind, 'unavailable');
    assert.deepEqual(await client.probe([], () => Promise.reject(new Error('never called'))), { kind: 'not_found', failures: [] });
  });
});
