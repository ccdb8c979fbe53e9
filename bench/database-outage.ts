// `node --disable-warning=ExperimentalWarning bench/database-outage.ts`: how long `/readyz` and a
// cached blob GET (1 MiB, permission in memory) take while PostgreSQL is healthy, stopped and frozen
// (SIGSTOP of the postmaster and its backends). `manifold serve` runs as a child process on a private
// PostgreSQL cluster (PostgreSQL 15 binaries, see test/helpers/private-postgres.ts) in front of Debian's
// docker-registry. Prints one line per state and request: median, p95 and max of BENCH_SAMPLES (30).
// The first request after a freeze is timed on its own: it is the one that waits until the freeze is
// noticed (a query running for 1.5 s makes the pool probe the server, which gives up after 0.9 s).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Distribution } from '../test/helpers/distribution.ts';
import { basicToken, createVirtualRegistry, personalToken, startManifold } from '../test/helpers/manifold.ts';
import { spawnManifold } from '../test/helpers/manifold-process.ts';
import { buildImage, pushImage } from '../test/helpers/oci-image.ts';
import { startPrivatePostgres } from '../test/helpers/private-postgres.ts';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 30);

async function timedGet(url: string, authorization?: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const response = await fetch(url, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(60_000) });
  await response.arrayBuffer();
  return { status: response.status, ms: performance.now() - started };
}

function summary(label: string, samples: { status: number; ms: number }[]): string {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const statuses = [...new Set(samples.map((s) => s.status))].join(',');
  return `${label.padEnd(34)} status ${statuses.padEnd(7)} median ${at(0.5).toFixed(1).padStart(7)} ms  p95 ${at(0.95).toFixed(1).padStart(7)} ms  max ${sorted.at(-1)!.toFixed(1).padStart(7)} ms  (n=${samples.length})`;
}

const postgres = await startPrivatePostgres();
const upstream = await Distribution.start();
const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-bench-outage-'));
let manifold: Awaited<ReturnType<typeof spawnManifold>> | undefined;
try {
  const image = buildImage({ layerSizes: [1024 * 1024] });
  await pushImage(upstream.url, 'library/app', image, { tag: '1' });
  const setup = await startManifold({ database: { url: postgres.url } }, { dataDir, schema: 'bench' });
  await createVirtualRegistry(setup, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
  const token = basicToken(await personalToken(setup));
  await setup.stop();
  manifold = await spawnManifold({ dataDir, databaseUrl: postgres.url, env: { MANIFOLD_LOG_LEVEL: 'warn' } });
  const blob = `${manifold.url}/v2/acme/hub/library/app/blobs/${image.layers[0].digest}`;
  const readyz = `${manifold.url}/readyz`;
  if ((await timedGet(blob, token)).status !== 200) throw new Error('the blob did not fill');

  const sample = async (url: string, authorization?: string) => {
    const samples = [];
    for (let i = 0; i < SAMPLES; i++) samples.push(await timedGet(url, authorization));
    return samples;
  };
  const lines: string[] = [];
  lines.push(summary('healthy: /readyz', await sample(readyz)));
  lines.push(summary('healthy: cached blob GET', await sample(blob, token)));

  await postgres.stop();
  lines.push(summary('stopped: first cached blob GET', [await timedGet(blob, token)]));
  lines.push(summary('stopped: /readyz', await sample(readyz)));
  lines.push(summary('stopped: cached blob GET', await sample(blob, token)));
  await postgres.start();
  for (let i = 0; (await timedGet(readyz)).status !== 200; i++) {
    if (i > 100) throw new Error('not ready after the restart');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await sample(blob, token);

  // Keep the remembered permission fresh, then freeze.
  await timedGet(blob, token);
  await postgres.freeze();
  await new Promise((resolve) => setTimeout(resolve, 100));
  lines.push(summary('frozen: first cached blob GET', [await timedGet(blob, token)]));
  lines.push(summary('frozen: /readyz', await sample(readyz)));
  lines.push(summary('frozen: cached blob GET', await sample(blob, token)));
  postgres.thaw();
  const thawed = performance.now();
  for (let i = 0; (await timedGet(readyz)).status !== 200; i++) {
    if (i > 100) throw new Error('not ready after the thaw');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  lines.push(`ready again ${(performance.now() - thawed).toFixed(0)} ms after SIGCONT`);
  console.log(lines.join('\n'));
} finally {
  await manifold?.kill('SIGTERM');
  await upstream.stop();
  await postgres.destroy();
  rmSync(dataDir, { recursive: true, force: true });
}
