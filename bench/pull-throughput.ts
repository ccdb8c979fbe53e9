// Blob throughput through Manifold and the server's memory while it streams (issue 5, "Measure"):
// a layer of N MB in a real Distribution, Manifold as a child process (`manifold serve`, the way it runs
// in production), and HTTP clients that read and discard the bytes.
//
//   node --disable-warning=ExperimentalWarning bench/pull-throughput.ts            (layers of 64 and 256 MB)
//   BENCH_LAYER_MB=256,1024 node --disable-warning=ExperimentalWarning bench/pull-throughput.ts
//
// For each layer size: the cold fill with 16 clients at once (one upstream fetch, 16 followers), then
// warm reads with 1 client (best of 3) and with 16 clients at once. Memory is the server's resident set,
// sampled every 20 ms from /proc/<pid>/status during each phase (VmRSS), and its high-water mark
// (VmHWM). Streaming means the peak must not grow with the layer size.
import { randomBytes, createHash } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Distribution } from '../test/helpers/distribution.ts';
import { content, OCI_LAYER, pushImage, buildImage } from '../test/helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, dropSchema, personalToken, startManifold } from '../test/helpers/manifold.ts';
import { spawnManifold } from '../test/helpers/manifold-process.ts';

const MiB = 1024 * 1024;
const CLIENTS = 16;
const sizes = (process.env.BENCH_LAYER_MB ?? '64,256').split(',').map(Number);

function status(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** Samples the process's VmRSS while `work` runs; resolves with the work's result and the peak. */
async function sampled<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; peakRss: number; seconds: number }> {
  let peakRss = status(pid).rss;
  const timer = setInterval(() => (peakRss = Math.max(peakRss, status(pid).rss)), 20);
  const start = process.hrtime.bigint();
  try {
    const value = await work();
    return { value, peakRss: Math.max(peakRss, status(pid).rss), seconds: Number(process.hrtime.bigint() - start) / 1e9 };
  } finally {
    clearInterval(timer);
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS * 2 });

/** GETs the URL, hashes and discards the body; resolves with the digest of what arrived. */
function pull(url: string, authorization: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => hash.update(chunk));
      res.on('end', () => (res.complete ? resolve(`sha256:${hash.digest('hex')}`) : reject(new Error('incomplete body'))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function pullAll(count: number, url: string, authorization: string, digest: string): Promise<void> {
  const digests = await Promise.all(Array.from({ length: count }, () => pull(url, authorization)));
  if (digests.some((d) => d !== digest)) throw new Error('a client got wrong bytes');
}

const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
const rate = (bytes: number, seconds: number) => `${(bytes / MiB / seconds).toFixed(0)} MiB/s`;

const upstream = await Distribution.start();
const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-bench-pull-'));
const schema = `bench_pull_${process.pid}`;
const rows: string[] = [];
try {
  // The layers, pushed under one tag each; only their blobs are pulled.
  const layers = sizes.map((size) => content(OCI_LAYER, randomBytes(size * MiB)));
  for (const [i, layer] of layers.entries()) {
    const image = buildImage({ layerSizes: [] });
    await pushImage(upstream.url, 'library/big', { ...image, layers: [layer], blobs: [image.config, layer] }, { tag: `l${i}` });
  }
  const setup = await startManifold({}, { dataDir, schema });
  await createVirtualRegistry(setup, { group: 'bench', registry: 'hub', upstreamUrls: [upstream.url] });
  const authorization = basicToken(await personalToken(setup));
  const databaseUrl = setup.databaseUrl;
  await setup.stop();

  const server = await spawnManifold({ dataDir, databaseUrl, env: { MANIFOLD_LOG_LEVEL: 'warn' } });
  try {
    const idle = status(server.pid).rss;
    console.log(`Manifold pid ${server.pid}, ${databaseUrl ? 'PostgreSQL' : 'SQLite'}, idle RSS ${mb(idle)}`);
    for (const [i, layer] of layers.entries()) {
      const url = `${server.url}/v2/bench/hub/library/big/blobs/${layer.digest}`;
      const cold = await sampled(server.pid, () => pullAll(CLIENTS, url, authorization, layer.digest));
      let best = Infinity;
      let warmOnePeak = 0;
      for (let run = 0; run < 3; run++) {
        const one = await sampled(server.pid, () => pullAll(1, url, authorization, layer.digest));
        best = Math.min(best, one.seconds);
        warmOnePeak = Math.max(warmOnePeak, one.peakRss);
      }
      const warm = await sampled(server.pid, () => pullAll(CLIENTS, url, authorization, layer.digest));
      rows.push(`| ${sizes[i]} MiB | ${rate(layer.size * CLIENTS, cold.seconds)} (${cold.seconds.toFixed(2)} s), peak RSS ${mb(cold.peakRss)} | ${rate(layer.size, best)}, peak RSS ${mb(warmOnePeak)} | ${rate(layer.size * CLIENTS, warm.seconds)} (${warm.seconds.toFixed(2)} s), peak RSS ${mb(warm.peakRss)} |`);
      console.log(rows.at(-1));
    }
    const { hwm } = status(server.pid);
    console.log(`\n| layer | cold, ${CLIENTS} clients at once (aggregate) | warm, 1 client (best of 3) | warm, ${CLIENTS} clients at once (aggregate) |`);
    console.log('|---|---|---|---|');
    for (const row of rows) console.log(row);
    console.log(`\nidle RSS ${mb(idle)}; VmHWM (peak over the whole run) ${mb(hwm)}`);
  } finally {
    await server.kill('SIGTERM');
  }
} finally {
  agent.destroy();
  await upstream.stop();
  rmSync(dataDir, { recursive: true, force: true });
  await dropSchema(schema);
}
