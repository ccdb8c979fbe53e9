// Where the first pull after a start spends its time (issue 19): a real Distribution with the bench's
// 3-layer image; Manifold started as `npm start` does; per run, (1) a skopeo pull right after a start
// (1 s idle first, as bench/run.ts measures it) and (2) the same cold pull in a process that has already
// pulled another image. With VERBOSE=1, Manifold's request lines (ms per request) for both.
//   RUNS=4 VERBOSE=1 FLAGS="--trace-gc" PROF=<dir>   (PROF: --cpu-prof per Manifold process, 200 µs)
// ./node_modules/.bin/node --disable-warning=ExperimentalWarning bench/first-pull.ts
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RegistryProcess } from './lib/registry-process.ts';
import { ManifoldCache } from './lib/manifold-cache.ts';
import { pushSmallImage } from './lib/images.ts';
import { skopeoPull } from './lib/clients.ts';

const MiB = 1024 * 1024;
const workDir = mkdtempSync(path.join(tmpdir(), 'first-pull-'));
const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: path.join(workDir, 'up'), logLevel: 'warn' });
const small = await pushSmallImage(upstream.url, 'bench/small', 'v1', [1 * MiB, 4 * MiB, 16 * MiB]);
const other = await pushSmallImage(upstream.url, 'bench/warm-up', 'v1', [256 * 1024, 1 * MiB]);
const nodeFlags = (process.env.FLAGS ?? '').split(' ').filter(Boolean);
if (process.env.PROF) nodeFlags.push('--cpu-prof-interval', '200');
const cache = await ManifoldCache.start(upstream.url, workDir, { nodeFlags, cpuProfileDir: process.env.PROF ? path.resolve(process.env.PROF) : undefined });
const logFile = path.join(workDir, 'manifold.log');
const logLength = () => readFileSync(logFile, 'utf8').length;
// With FLAGS=--trace-gc, V8's full collections appear among the request lines, where they happened.
const requestLines = (from: number) => readFileSync(logFile, 'utf8').slice(from).split('\n').filter((line) => line.includes('"msg":"request"') || line.includes('Mark-Compact')).map((line) => {
  if (!line.startsWith('{')) return `  ${line.trim()}`;
  const entry = JSON.parse(line) as { method: string; url: string; status: number; ms: number };
  return `  ${entry.method} ${entry.url.replace(/(sha256:[0-9a-f]{12})[0-9a-f]+/, '$1…')} ${entry.status} ${entry.ms} ms`;
});

async function timedPull(label: string): Promise<number> {
  const from = logLength();
  const started = performance.now();
  await skopeoPull(cache, small.image, small.tag, workDir);
  const ms = performance.now() - started;
  console.log(`${label}: ${ms.toFixed(0)} ms`);
  if (process.env.VERBOSE) console.log(requestLines(from).join('\n'));
  return ms;
}

const first: number[] = [];
const warm: number[] = [];
try {
  for (let run = 0; run < Number(process.env.RUNS ?? 3); run++) {
    await cache.restartEmpty();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    first.push(await timedPull('first pull after a start'));
    await cache.restartEmpty();
    await skopeoPull(cache, other.image, other.tag, workDir);
    warm.push(await timedPull('cold pull, process warm'));
  }
} finally {
  await cache.stop();
  await upstream.stop();
  rmSync(workDir, { recursive: true, force: true });
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`median: first pull after a start ${median(first).toFixed(0)} ms, cold pull in a warm process ${median(warm).toFixed(0)} ms`);
