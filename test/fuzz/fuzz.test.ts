// The fuzz test of issue 14: a few thousand seeded hostile requests against a running Manifold (on the
// suite's database) and a real upstream. No 5xx other than a documented 503, every error body in its
// protocol's format, every request answered, and the server still serving at the end. The seed is
// printed; `npm run fuzz -- --seed <n> --requests <n>` replays or extends a run (test/fuzz/run.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, startFuzzTarget, stillServing } from './harness.ts';
import type { FuzzTarget } from './harness.ts';

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 2500);
const SEED = Number(process.env.FUZZ_SEED ?? 14);

describe('hostile requests', () => {
  let target: FuzzTarget;
  before(async () => {
    target = await startFuzzTarget();
  });
  after(() => target?.stop());

  it(`answers ${REQUESTS} of them (seed ${SEED}) in the protocol's error format, never with a 5xx, and keeps serving`, async () => {
    const report = await fuzz(target.port, target.context, { seed: SEED, requests: REQUESTS, concurrency: 8 });
    assert.equal(report.requests, REQUESTS);
    assert.deepEqual(report.failures, [], `statuses: ${JSON.stringify(report.statuses)}`);
    assert.deepEqual(await stillServing(target), []);
    // The generator reached past the first checks: successes, client errors and throttling all occurred.
    for (const status of ['200', '400', '401', '404']) assert.ok((report.statuses[status] ?? 0) > 0, `some ${status} answers: ${JSON.stringify(report.statuses)}`);
  });
});
