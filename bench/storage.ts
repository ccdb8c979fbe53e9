// `npm run bench:storage`: Manifold on the filesystem, on S3 (s3rver on loopback, a process of its own),
// and three replicas on S3 and one PostgreSQL (cluster mode: one upstream fetch per blob for the
// cluster, the other replicas streaming from the owner), in one run, measured alternately: 16 concurrent
// cold pulls (3-layer image and a big layer; the three replicas get them round-robin: wall time and its
// ratio to one replica on the filesystem, upstream GETs per blob, peak RSS of each replica), and warm
// blob GET throughput on the filesystem, on S3 streamed through Manifold, and on S3 with
// storage.s3.redirect (clients follow the 307 to the bucket). One client implementation (fetch,
// following redirects) for all three GET modes.
//
// Settings: BENCH_BIG_LAYER_MB (default 512), BENCH_RUNS (default 3), BENCH_BLOB_SECONDS (default 8),
// BENCH_ONLY=concurrent,blob, BENCH_DATABASE_URL (the replicas' PostgreSQL; default the local `test`).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cleanUpNow, installCleanupHandlers, trackDirectory } from './lib/cleanup.ts';
import { skopeoPull } from './lib/clients.ts';
import { pushBigImage, pushSmallImage } from './lib/images.ts';
import type { PushedImage } from './lib/images.ts';
import { ManifoldCache } from './lib/manifold-cache.ts';
import { ManifoldCluster } from './lib/manifold-cluster.ts';
import { PeakMemory, summarize, timed } from './lib/measure.ts';
import { RegistryProcess } from './lib/registry-process.ts';
import { ensureTools } from './lib/tools.ts';
import { startS3Server } from '../test/helpers/s3-server.ts';
import type { TestS3Server } from '../test/helpers/s3-server.ts';

const MiB = 1024 * 1024;
const BIG_MIB = Number(process.env.BENCH_BIG_LAYER_MB ?? 512);
const REPLICAS = 3;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BLOB_SECONDS = Number(process.env.BENCH_BLOB_SECONDS ?? 8);
const CONCURRENCY = 16;
const PHASES = new Set((process.env.BENCH_ONLY ?? 'concurrent,blob').split(','));
const log = (message: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

type Mode = 'filesystem' | 's3' | 's3-redirect' | 's3-cluster';

function storageEnv(mode: Mode, s3: TestS3Server): (generation: number) => Record<string, string> {
  if (mode === 'filesystem') return () => ({});
  // Each start its own prefix: a cold start is an empty bucket.
  return (generation) => ({
    MANIFOLD_STORAGE_DRIVER: 's3',
    MANIFOLD_STORAGE_S3_BUCKET: s3.bucket,
    MANIFOLD_STORAGE_S3_ENDPOINT: s3.endpoint,
    MANIFOLD_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    MANIFOLD_STORAGE_S3_REGION: 'us-east-1',
    MANIFOLD_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
    MANIFOLD_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
    MANIFOLD_STORAGE_S3_PREFIX: `${mode}-${generation}/`,
    MANIFOLD_STORAGE_S3_REDIRECT: String(mode === 's3-redirect'),
  });
}

/** Closed loop of `connections` clients GETting one blob (following redirects) for `seconds`: MB/s. */
async function blobThroughput(url: string, headers: Record<string, string>, connections: number, seconds: number): Promise<number> {
  let bytes = 0;
  const deadline = Date.now() + seconds * 1000;
  const started = Date.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < deadline) {
      const response = await fetch(url, { headers });
      if (response.status !== 200) throw new Error(`blob GET answered ${response.status}`);
      for await (const chunk of response.body!) bytes += (chunk as Uint8Array).length;
    }
  }));
  return bytes / ((Date.now() - started) / 1000) / 1e6;
}

async function upstreamFetches(upstream: RegistryProcess, from: number, image: PushedImage): Promise<number[]> {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const entries = upstream.accessLogSince(from);
  return image.blobs.map((blob) => entries.filter((e) => e.method === 'GET' && e.path === `/v2/${image.image}/blobs/${blob.digest}` && e.status >= 200 && e.status < 300).length);
}

const line = (label: string, unit: string, values: Record<string, number[]>) => {
  const cells = Object.entries(values).map(([mode, list]) => {
    if (list.length === 0) return `${mode}: –`;
    const s = summarize(list);
    const digits = unit === 's' || unit === '×' ? 2 : 0;
    return `${mode}: ${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}, n=${list.length})`;
  });
  return `| ${label} | ${unit} | ${cells.join(' | ')} |`;
};

async function main(): Promise<void> {
  installCleanupHandlers();
  ensureTools();
  const workDir = trackDirectory(mkdtempSync(path.join(tmpdir(), 'manifold-bench-storage-')));
  const upstreamStorage = path.join(workDir, 'upstream-storage');
  mkdirSync(upstreamStorage);
  const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: upstreamStorage, logLevel: 'warn' });
  const s3 = await startS3Server({ bucket: 'bench' });
  const caches = new Map<Mode, ManifoldCache>();
  let cluster: ManifoldCluster | null = null;
  const report: string[] = [];
  try {
    const small = await pushSmallImage(upstream.url, 'bench/small', 'v1', [1 * MiB, 4 * MiB, 16 * MiB]);
    const bigFile = path.join(workDir, 'big.bin');
    const big = await pushBigImage(upstream.url, 'bench/big', 'v1', BIG_MIB * MiB, bigFile);
    rmSync(bigFile);
    const warmUp = await pushSmallImage(upstream.url, 'bench/warm-up', 'v1', [256 * 1024, 1 * MiB]);
    for (const mode of ['filesystem', 's3', 's3-redirect'] as const) {
      caches.set(mode, await ManifoldCache.start(upstream.url, path.join(workDir, mode === 'filesystem' ? '' : mode), { storageEnv: storageEnv(mode, s3) }));
    }

    if (PHASES.has('concurrent')) {
      const clusterDir = path.join(workDir, 's3-cluster');
      mkdirSync(clusterDir);
      cluster = await ManifoldCluster.start(upstream.url, clusterDir, { replicas: REPLICAS, storageEnv: storageEnv('s3-cluster', s3) });
      const modes = ['filesystem', 's3', 's3-cluster'] as const;
      for (const image of [small, big]) {
        const time: Record<string, number[]> = { filesystem: [], s3: [], 's3-cluster': [] };
        const ratio: Record<string, number[]> = { s3: [], 's3-cluster': [] };
        const rss: Record<string, number[]> = { filesystem: [], s3: [], 's3-cluster': [] };
        const fetches: Record<string, number[]> = { filesystem: [], s3: [], 's3-cluster': [] };
        for (let run = 1; run <= RUNS; run++) {
          for (const mode of modes) {
            // One replica, or three taking the clients round-robin.
            let replicas;
            if (mode === 's3-cluster') {
              await cluster.restartEmpty();
              replicas = cluster.replicas;
            } else {
              const cache = caches.get(mode)!;
              await cache.restartEmpty();
              replicas = [cache];
            }
            for (const replica of replicas) await skopeoPull(replica, warmUp.image, warmUp.tag, workDir);
            const from = upstream.logPosition();
            const memory = replicas.map((replica) => new PeakMemory(replica.pid));
            const seconds = await timed(async () => {
              await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => skopeoPull(replicas[i % replicas.length], image.image, image.tag, workDir)));
            });
            const peaks = memory.map((m) => m.stop() / 1e6);
            const perBlob = await upstreamFetches(upstream, from, image);
            time[mode].push(seconds);
            if (mode !== 'filesystem') ratio[mode].push(seconds / time.filesystem[time.filesystem.length - 1]);
            rss[mode].push(...peaks);
            fetches[mode].push(Math.max(...perBlob));
            log(`${CONCURRENCY} cold pulls of ${image.image}, ${mode}, run ${run}: ${seconds.toFixed(2)} s, upstream GETs per blob ${perBlob.join(',')}, peak ${peaks.map((peak) => peak.toFixed(0)).join('/')} MB`);
          }
        }
        const what = image === small ? '3-layer image (21 MiB)' : `${BIG_MIB} MiB layer`;
        report.push(line(`${CONCURRENCY} concurrent cold pulls, ${what}: wall time`, 's', time));
        report.push(line(`${CONCURRENCY} concurrent cold pulls, ${what}: wall time / filesystem's in the same run`, '×', ratio));
        report.push(line(`${CONCURRENCY} concurrent cold pulls, ${what}: upstream GETs of the most-fetched blob`, 'GETs', fetches));
        report.push(line(`${CONCURRENCY} concurrent cold pulls, ${what}: peak RSS per replica`, 'MB', rss));
      }
      await cluster.stop();
      cluster = null;
    }

    if (PHASES.has('blob')) {
      const modes = ['filesystem', 's3', 's3-redirect'] as const;
      for (const mode of modes) await skopeoPull(caches.get(mode)!, big.image, big.tag, workDir);
      for (const connections of [1, 16]) {
        const rate: Record<string, number[]> = { filesystem: [], s3: [], 's3-redirect': [] };
        const rss: Record<string, number[]> = { filesystem: [], s3: [], 's3-redirect': [] };
        for (let run = 1; run <= RUNS; run++) {
          for (const mode of modes) {
            const cache = caches.get(mode)!;
            const repository = cache.repository(big.image);
            const headers = await cache.requestHeaders(repository);
            const memory = new PeakMemory(cache.pid);
            const mbps = await blobThroughput(`${cache.url}/v2/${repository}/blobs/${big.largestLayer.digest}`, headers, connections, BLOB_SECONDS);
            rss[mode].push(memory.stop() / 1e6);
            rate[mode].push(mbps);
            log(`warm blob GET, ${connections} client(s), ${mode}, run ${run}: ${mbps.toFixed(0)} MB/s`);
          }
        }
        report.push(line(`warm blob GET, cached ${BIG_MIB} MiB layer, ${connections} client(s), fetch client following redirects`, 'MB/s', rate));
        report.push(line(`peak RSS of Manifold during that`, 'MB', rss));
      }
    }
    console.log(['| measurement | unit | results (median (min–max)) |', '|---|---|---|', ...report].join('\n'));
  } finally {
    for (const cache of caches.values()) await cache.stop().catch(() => {});
    await cluster?.stop().catch(() => {});
    await upstream.stop();
    await s3.stop();
    cleanUpNow();
  }
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
  cleanUpNow();
  process.exit(1);
});
