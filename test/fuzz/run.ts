// `npm run fuzz -- [--requests 100000] [--seed 14] [--concurrency 8]`: the fuzz test's generator and
// judge for longer runs, against a Manifold on SQLite (or PostgreSQL with TEST_DATABASE_URL) and a real
// upstream. Prints progress, the statuses seen and every failure (at most 50); exits 1 on a failure.
import { parseArgs } from 'node:util';
import { fuzz, startFuzzTarget, stillServing } from './harness.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '100000' }, seed: { type: 'string', default: String(Date.now() % 100000) }, concurrency: { type: 'string', default: '8' } } });
const requests = Number(values.requests);
const seed = Number(values.seed);
const target = await startFuzzTarget();
let failed: boolean;
try {
  const started = Date.now();
  console.log(`fuzzing ${target.server.url} with ${requests} requests, seed ${seed}`);
  const report = await fuzz(target.port, target.context, {
    seed, requests, concurrency: Number(values.concurrency),
    onProgress: (done) => console.log(`${done} requests, ${((Date.now() - started) / 1000).toFixed(0)} s`),
  });
  const serving = await stillServing(target);
  console.log(`statuses: ${JSON.stringify(report.statuses)}`);
  for (const failure of [...report.failures, ...serving]) console.log(`FAIL ${failure}`);
  failed = report.failures.length > 0 || serving.length > 0;
  console.log(`${report.requests - report.failures.length} passed, ${report.failures.length + serving.length} failed (seed ${seed}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
} finally {
  await target.stop();
}
process.exitCode = failed ? 1 : 0;
