// `npm run bench`: Manifold next to CNCF Distribution's pull-through cache (proxy mode), on this machine,
// in one run, against one upstream (Debian's docker-registry with generated images). Both caches are
// measured alternately (Manifold, Distribution, Manifold, …); each figure is printed as median and
// spread with the ratio Manifold/Distribution and the target. See bench/README.md.
//
//   npm run bench                  full run (512 MB layer; about 10 minutes on 2 CPUs)
//   BENCH_QUICK=1 npm run bench    smoke check: 64 MB layer, fewer and shorter runs
//
// Other settings: BENCH_BIG_LAYER_MB, BENCH_ONLY=pull,big,concurrent,manifest,blob (phases),
// BENCH_OUTPUT=<file.md> (also write the report there), BENCH_CPU_PROF=<dir> (Manifold under
// `node --cpu-prof`, one profile per Manifold process), BENCH_MANIFOLD_FLAGS="--trace-gc" (Node flags after
// those of `npm start`), BENCH_MANIFOLD_LOG_LEVEL, BENCH_NO_INSTALL=1.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CacheUnderTest } from './lib/cache.ts';
import { cleanUpNow, installCleanupHandlers, trackDirectory } from './lib/cleanup.ts';
import { MANIFEST_ACCEPT, requestRate, skopeoPull, wrk } from './lib/clients.ts';
import { DistributionProxy } from './lib/distribution-proxy.ts';
import { pushBigImage, pushSmallImage } from './lib/images.ts';
import type { PushedImage } from './lib/images.ts';
import { ManifoldCache } from './lib/manifold-cache.ts';
import { BareNodeServer, RATE_WHEN_TARGET_SET } from './lib/bare-node.ts';
import { CpuTime, PeakMemory, residentBytes, residentParts, summarize, timed } from './lib/measure.ts';
import { logTail } from './lib/processes.ts';
import { RegistryProcess } from './lib/registry-process.ts';
import { markdownEnvironment, markdownTable, newFigure, summaryText, verdicts } from './lib/report.ts';
import type { CacheName, Figure } from './lib/report.ts';
import { describeEnvironment, ensureTools } from './lib/tools.ts';

const MiB = 1024 * 1024;
const MB = 1e6;
const QUICK = process.env.BENCH_QUICK === '1';
const SETTINGS = {
  bigLayerMiB: Number(process.env.BENCH_BIG_LAYER_MB ?? (QUICK ? 64 : 512)),
  smallLayersMiB: '1+4+16',
  pullRuns: QUICK ? 2 : 5,
  bigRuns: QUICK ? 1 : 3,
  concurrentRuns: QUICK ? 1 : 3,
  concurrency: 16,
  requestRuns: QUICK ? 1 : 3,
  requestSeconds: QUICK ? 3 : 8,
  blobRuns: QUICK ? 1 : 3,
  blobSeconds: QUICK ? 4 : 10,
};
const SMALL_LAYERS = [1 * MiB, 4 * MiB, 16 * MiB];
const PHASES = new Set((process.env.BENCH_ONLY ?? 'pull,big,concurrent,manifest,blob').split(',').map((p) => p.trim()));

const log = (message: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

const atMost = (factor: number) => ({ text: `≤ ${factor}× Distribution`, met: (m: { median: number }, d: { median: number } | null) => d !== null && m.median <= factor * d.median });
const atMostMB = (limit: number) => ({ text: `Manifold ≤ ${limit} MB`, met: (m: { median: number; max: number }) => m.max <= limit });
const atLeastRate = (rate: number) => ({ text: `Manifold ≥ ${rate.toLocaleString('en-US')} req/s`, met: (m: { median: number }) => m.median >= rate });
const atLeast = (factor: number) => ({ text: `≥ ${factor}× Distribution`, met: (m: { median: number }, d: { median: number } | null) => d !== null && m.median >= factor * d.median });

const bigLabel = `${SETTINGS.bigLayerMiB} MiB`;
const figures = {
  smallCold: newFigure('1', 'cold pull, 3-layer image (21 MiB), skopeo', 's', 2, atMost(1.1)),
  smallFirst: newFigure('1', 'first pull after the cache process started (cold), 3-layer image, skopeo', 's', 2, atMost(1.2)),
  passwordFirst: newFigure('1', 'password sign-in (GET /auth/token, Basic admin:<password>), first after a start, after that pull', 's', 3, undefined, 'Distribution has no sign-in'),
  passwordWarm: newFigure('1', 'password sign-in, the next one (remembered for 10 s: no scrypt)', 's', 3),
  idleMemory: newFigure('6', 'RSS after start, idle (1 s after ready, before any pull)', 'MB', 0, atMostMB(90)),
  smallWarm: newFigure('1', 'warm pull, 3-layer image, skopeo', 's', 2),
  bigCold: newFigure('2', `cold pull, one ${bigLabel} layer, skopeo`, 's', 2, atMost(1.1)),
  bigWarm: newFigure('2', `warm pull, one ${bigLabel} layer, skopeo`, 's', 2),
  concurrentSmallTime: newFigure('3', `${SETTINGS.concurrency} concurrent cold pulls, 3-layer image: wall time`, 's', 2, atMost(1.1)),
  concurrentSmallFetches: newFigure('3', `${SETTINGS.concurrency} concurrent cold pulls, 3-layer image: upstream GETs of the most-fetched blob`, 'GETs', 0, { text: 'exactly 1 per blob', met: (m) => m.min === 1 && m.max === 1 }),
  concurrentSmallMemory: newFigure('6', `peak RSS during ${SETTINGS.concurrency} concurrent cold pulls, 3-layer image`, 'MB', 0, atMostMB(120)),
  concurrentSmallCpu: newFigure('3', `CPU time of the cache during ${SETTINGS.concurrency} concurrent cold pulls, 3-layer image`, 's', 2),
  concurrentSmallUpstreamCpu: newFigure('3', `CPU time of the upstream during ${SETTINGS.concurrency} concurrent cold pulls, 3-layer image`, 's', 2),
  concurrentBigTime: newFigure('3', `${SETTINGS.concurrency} concurrent cold pulls, ${bigLabel} layer: wall time`, 's', 2, atMost(1.1)),
  concurrentBigFetches: newFigure('3', `${SETTINGS.concurrency} concurrent cold pulls, ${bigLabel} layer: upstream GETs of the most-fetched blob`, 'GETs', 0, { text: 'exactly 1 per blob', met: (m) => m.min === 1 && m.max === 1 }),
  concurrentBigMemory: newFigure('6', `peak RSS during ${SETTINGS.concurrency} concurrent cold pulls, ${bigLabel} layer`, 'MB', 0, atMostMB(120)),
  concurrentBigIdleMemory: newFigure('6', `RSS just before that round (started, one small image pulled)`, 'MB', 0),
  concurrentBigCpu: newFigure('3', `CPU time of the cache during ${SETTINGS.concurrency} concurrent cold pulls, ${bigLabel} layer`, 's', 2),
  concurrentBigUpstreamCpu: newFigure('3', `CPU time of the upstream during ${SETTINGS.concurrency} concurrent cold pulls, ${bigLabel} layer`, 's', 2),
  manifestGet: newFigure('4', 'manifest GET by tag, 16 connections, wrk', 'req/s', 0, atLeastRate(10_000), 'Manifold: Bearer JWT; Distribution and upstream: no auth'),
  manifestHead: newFigure('4', 'manifest HEAD by tag, 16 connections, undici', 'req/s', 0, atLeast(1.5), 'Manifold: Bearer JWT; Distribution: no auth'),
  manifestDigest: newFigure('4', 'manifest GET by digest, 16 connections, wrk', 'req/s', 0, atLeastRate(10_000), 'Manifold: Bearer JWT; Distribution and upstream: no auth'),
  manifestGetCpu: newFigure('4', 'CPU time of the cache per manifest GET by tag', 'µs', 0),
  manifestGetUpstream: newFigure('4', 'upstream requests during the manifest GET by tag run (warm, inside max_age)', 'requests', 0, { text: 'Manifold 0 (issue 16)', met: (m) => m.max === 0 }),
  manifestDigestCpu: newFigure('4', 'CPU time of the cache per manifest GET by digest', 'µs', 0),
  manifestMemory: newFigure('6', 'peak RSS during the manifest load', 'MB', 0, atMostMB(120)),
  manifestAfterMemory: newFigure('6', 'RSS 2 s after the manifest load', 'MB', 0),
  blobOne: newFigure('5', `blob GET, cached ${bigLabel} layer, 1 client`, 'MB/s', 0, atLeast(1)),
  blobMany: newFigure('5', `blob GET, cached ${bigLabel} layer, 16 clients`, 'MB/s', 0, atLeast(1)),
  blobOneCpu: newFigure('5', 'CPU time of the cache per GB served, blob GET, 1 client', 's', 2),
  blobManyCpu: newFigure('5', 'CPU time of the cache per GB served, blob GET, 16 clients', 's', 2),
  blobOneMemory: newFigure('6', 'peak RSS during blob GET, 1 client', 'MB', 0),
  blobManyMemory: newFigure('6', 'peak RSS during blob GET, 16 clients', 'MB', 0),
} satisfies Record<string, Figure>;

/** Which images each cache holds now (a cold restart forgets them). */
const cached = new Map<CacheUnderTest, Set<string>>();
/** The by-tag against by-digest ratio of the manifest phase, for the report. */
let tagAgainstDigest: string | null = null;
/** The bare node:http server's manifest rate (the machine's gauge, bench/lib/bare-node.ts), for the report. */
let machineGauge: string | null = null;
/** Concurrent rounds in which a pull failed, for the report. */
const failedRounds: string[] = [];

/** A small image of its own that each cache pulls right after a restart (see restartEmpty). */
let warmUpImage: PushedImage | null = null;

/**
 * Restarts the cache on empty storage. Then, unless `firstPull`, it pulls an unrelated image once, so
 * that a cold pull measures an empty cache in a running process (what users meet: a new image through
 * a cache that runs) and not the first request after a process start, which pays the JIT warm-up of a
 * JavaScript runtime once per process. The first pull after a start is a figure of its own.
 */
async function restartEmpty(cache: CacheUnderTest, workDir: string, options: { firstPull?: boolean } = {}): Promise<void> {
  await cache.restartEmpty();
  cached.set(cache, new Set());
  if (!options.firstPull && warmUpImage) await pull(cache, warmUpImage, workDir);
}

async function pull(cache: CacheUnderTest, image: PushedImage, workDir: string): Promise<number> {
  const seconds = await timed(() => skopeoPull(cache, image.image, image.tag, workDir));
  cached.get(cache)?.add(image.image);
  return seconds;
}

async function ensureCached(cache: CacheUnderTest, image: PushedImage, workDir: string): Promise<void> {
  if (!cached.get(cache)?.has(image.image)) await pull(cache, image, workDir);
}

/** GETs with a 2xx answer per blob of `image` in the upstream's access log since `from`. */
async function upstreamFetches(upstream: RegistryProcess, from: number, image: PushedImage): Promise<number[]> {
  const count = () => {
    const entries = upstream.accessLogSince(from);
    return image.blobs.map((blob) => entries.filter((e) => e.method === 'GET' && e.path === `/v2/${image.image}/blobs/${blob.digest}` && e.status >= 200 && e.status < 300).length);
  };
  // Access log lines trail the responses by a moment.
  const deadline = Date.now() + 10_000;
  while (!count().every((n) => n > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise((resolve) => setTimeout(resolve, 500));
  return count();
}

async function main(): Promise<void> {
  installCleanupHandlers();
  ensureTools();
  const environment = describeEnvironment();
  const workDir = trackDirectory(mkdtempSync(path.join(tmpdir(), 'manifold-bench-')));
  const cpuProfileDir = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : undefined;
  if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });

  log(`upstream: docker-registry with a 3-layer image and a ${bigLabel} layer`);
  const upstreamStorage = path.join(workDir, 'upstream-storage');
  mkdirSync(upstreamStorage);
  const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: upstreamStorage, logLevel: 'warn' });
  const caches: CacheUnderTest[] = [];
  try {
    const small = await pushSmallImage(upstream.url, 'bench/small', 'v1', SMALL_LAYERS);
    warmUpImage = await pushSmallImage(upstream.url, 'bench/warm-up', 'v1', [256 * 1024, 1 * MiB]);
    const bigLayerFile = path.join(workDir, 'big-layer.bin');
    const big = await pushBigImage(upstream.url, 'bench/big', 'v1', SETTINGS.bigLayerMiB * MiB, bigLayerFile);
    rmSync(bigLayerFile);

    log('caches: Manifold (child process, embedded default) and Distribution (proxy mode)');
    const nodeFlags = (process.env.BENCH_MANIFOLD_FLAGS ?? '').split(' ').filter(Boolean);
    const manifold = await ManifoldCache.start(upstream.url, workDir, { cpuProfileDir, nodeFlags });
    const distribution = await DistributionProxy.start(upstream.url, workDir);
    caches.push(manifold, distribution);
    for (const cache of caches) cached.set(cache, new Set());
    const record = (figure: Figure, cache: CacheUnderTest, value: number) => figure.values[cache.name as CacheName].push(value);

    if (PHASES.has('pull')) {
      for (let run = 1; run <= SETTINGS.pullRuns; run++) {
        log(`1. cold pull of the 3-layer image, run ${run}/${SETTINGS.pullRuns}`);
        for (const cache of caches) {
          await restartEmpty(cache, workDir);
          record(figures.smallCold, cache, await pull(cache, small, workDir));
        }
        log(`1. first pull after a start, 3-layer image, run ${run}/${SETTINGS.pullRuns}`);
        for (const cache of caches) {
          await restartEmpty(cache, workDir, { firstPull: true });
          await new Promise((resolve) => setTimeout(resolve, 1000));
          record(figures.idleMemory, cache, residentBytes(cache.pid) / MB);
          log(`${cache.name} idle: ${residentParts(cache.pid)}`);
          record(figures.smallFirst, cache, await pull(cache, small, workDir));
          if (cache instanceof ManifoldCache) {
            // What a password costs on top (the pull above signed in with an access token, as CI does).
            record(figures.passwordFirst, cache, await timed(async () => void (await cache.passwordToken(cache.repository(small.image)))));
            record(figures.passwordWarm, cache, await timed(async () => void (await cache.passwordToken(cache.repository(small.image)))));
          }
        }
      }
      for (let run = 1; run <= SETTINGS.pullRuns; run++) {
        log(`1. warm pull of the 3-layer image, run ${run}/${SETTINGS.pullRuns}`);
        for (const cache of caches) {
          await ensureCached(cache, small, workDir);
          record(figures.smallWarm, cache, await pull(cache, small, workDir));
        }
      }
    }

    if (PHASES.has('big')) {
      for (let run = 1; run <= SETTINGS.bigRuns; run++) {
        log(`2. cold pull of the ${bigLabel} image, run ${run}/${SETTINGS.bigRuns}`);
        for (const cache of caches) {
          await restartEmpty(cache, workDir);
          record(figures.bigCold, cache, await pull(cache, big, workDir));
        }
      }
      for (let run = 1; run <= SETTINGS.bigRuns; run++) {
        log(`2. warm pull of the ${bigLabel} image, run ${run}/${SETTINGS.bigRuns}`);
        for (const cache of caches) {
          await ensureCached(cache, big, workDir);
          record(figures.bigWarm, cache, await pull(cache, big, workDir));
        }
      }
    }

    if (PHASES.has('concurrent')) {
      const rounds = [
        { image: small, time: figures.concurrentSmallTime, fetches: figures.concurrentSmallFetches, memory: figures.concurrentSmallMemory, idleMemory: null, cpu: figures.concurrentSmallCpu, upstreamCpu: figures.concurrentSmallUpstreamCpu, what: '3-layer image' },
        { image: big, time: figures.concurrentBigTime, fetches: figures.concurrentBigFetches, memory: figures.concurrentBigMemory, idleMemory: figures.concurrentBigIdleMemory, cpu: figures.concurrentBigCpu, upstreamCpu: figures.concurrentBigUpstreamCpu, what: `${bigLabel} image` },
      ];
      for (const round of rounds) {
        for (let run = 1; run <= SETTINGS.concurrentRuns; run++) {
          log(`3. ${SETTINGS.concurrency} concurrent cold pulls of the ${round.what}, run ${run}/${SETTINGS.concurrentRuns}`);
          for (const cache of caches) {
            // A round in which a pull failed is reported and repeated (Distribution's proxy answers
            // 500 now and then to concurrent cold pulls); its figures are not recorded.
            for (let attempt = 1; ; attempt++) {
              await restartEmpty(cache, workDir);
              const from = upstream.logPosition();
              const idleBytes = residentBytes(cache.pid);
              const memory = new PeakMemory(cache.pid);
              const cpu = new CpuTime(cache.pid);
              const upstreamCpu = new CpuTime(upstream.pid);
              let failed: PromiseRejectedResult[] = [];
              const seconds = await timed(async () => {
                const pulls = await Promise.allSettled(Array.from({ length: SETTINGS.concurrency }, () => skopeoPull(cache, round.image.image, round.image.tag, workDir)));
                failed = pulls.filter((pull) => pull.status === 'rejected');
              });
              const peak = memory.stop();
              const cpuSeconds = cpu.stop();
              const upstreamCpuSeconds = upstreamCpu.stop();
              if (failed.length > 0) {
                const reason = String((failed[0].reason as Error).message ?? failed[0].reason).slice(-300);
                failedRounds.push(`${cache.name}, ${round.what}, run ${run}: ${failed.length} of ${SETTINGS.concurrency} pulls failed (${reason})`);
                log(`   ${cache.name}: ${failed.length} pulls failed; the round is repeated`);
                if (attempt === 3) throw new Error(`${cache.name}: pulls failed in 3 attempts of one round: ${reason}`);
                continue;
              }
              if (round.idleMemory) record(round.idleMemory, cache, idleBytes / MB);
              record(round.memory, cache, peak / MB);
              record(round.cpu, cache, cpuSeconds);
              record(round.upstreamCpu, cache, upstreamCpuSeconds);
              cached.get(cache)?.add(round.image.image);
              record(round.time, cache, seconds);
              const fetches = await upstreamFetches(upstream, from, round.image);
              record(round.fetches, cache, Math.max(...fetches));
              log(`   ${cache.name}: ${seconds.toFixed(2)} s; upstream GETs per blob: ${fetches.join(', ')}`);
              break;
            }
          }
        }
      }
    }

    if (PHASES.has('manifest')) {
      for (const cache of caches) await ensureCached(cache, small, workDir);
      // GETs with wrk (a C client: the rates reach 10,000/s and more, which a Node client on these 2 CPUs
      // cannot send); HEAD with undici, because wrk 4.1 hangs on HEAD. The direct upstream is the ceiling.
      const kinds = [
        { figure: figures.manifestGet, cpu: figures.manifestGetCpu, method: 'GET' as const, reference: small.tag },
        { figure: figures.manifestHead, cpu: null, method: 'HEAD' as const, reference: small.tag },
        { figure: figures.manifestDigest, cpu: figures.manifestDigestCpu, method: 'GET' as const, reference: small.manifestDigest },
      ];
      const manifestResponse = await fetch(`${upstream.url}/v2/${small.image}/manifests/${small.tag}`, { headers: { accept: MANIFEST_ACCEPT } });
      const bareNode = await BareNodeServer.start(Buffer.from(await manifestResponse.arrayBuffer()), manifestResponse.headers.get('content-type') ?? 'application/json', workDir);
      const bareNodeRates: number[] = [];
      const manifestPeaks = new Map(caches.map((cache) => [cache, new PeakMemory(cache.pid)]));
      const rate = async (url: string, method: 'GET' | 'HEAD', headers: Record<string, string>) => {
        if (method === 'HEAD') return requestRate({ url, method, headers, connections: 16, seconds: SETTINGS.requestSeconds, warmupSeconds: 1 });
        await wrk({ url, method, headers, connections: 16, seconds: 1, workDir });
        const result = await wrk({ url, method, headers, connections: 16, seconds: SETTINGS.requestSeconds, workDir });
        return { requests: result.requests, seconds: result.seconds, badStatus: result.badStatus, errors: result.socketErrors };
      };
      for (const kind of kinds) {
        for (let run = 1; run <= SETTINGS.requestRuns; run++) {
          log(`4. manifest ${kind.method} ${kind.reference === small.tag ? 'by tag' : 'by digest'}, run ${run}/${SETTINGS.requestRuns}`);
          for (const cache of caches) {
            const repository = cache.repository(small.image);
            const headers = { ...(await cache.requestHeaders(repository)), accept: MANIFEST_ACCEPT };
            // The upstream's access log trails its answers: the ceiling run's last lines must not count here.
            if (kind.figure === figures.manifestGet) await new Promise((resolve) => setTimeout(resolve, 1500));
            const cpu = new CpuTime(cache.pid);
            const upstreamFrom = upstream.logPosition();
            const result = await rate(`${cache.url}/v2/${repository}/manifests/${kind.reference}`, kind.method, headers);
            const cpuSeconds = cpu.stop();
            if (result.badStatus > 0 || result.errors > 0 || result.requests === 0) {
              throw new Error(`${cache.name}: ${result.badStatus} error answers and ${result.errors} failed requests of ${result.requests} manifest requests`);
            }
            record(kind.figure, cache, result.requests / result.seconds);
            // wrk's warm-up second ran before the CPU clock started.
            if (kind.cpu) record(kind.cpu, cache, (cpuSeconds / result.requests) * 1e6);
            if (kind.figure === figures.manifestGet) {
              await new Promise((resolve) => setTimeout(resolve, 500));
              record(figures.manifestGetUpstream, cache, upstream.accessLogSince(upstreamFrom).length);
            }
          }
          if (kind.method === 'GET') {
            const direct = await rate(`${upstream.url}/v2/${small.image}/manifests/${kind.reference}`, 'GET', { accept: MANIFEST_ACCEPT });
            if (direct.badStatus === 0 && direct.requests > 0) (kind.figure.ceiling ??= []).push(direct.requests / direct.seconds);
          }
          if (kind.figure === figures.manifestGet) {
            const bare = await rate(`${bareNode.url}/`, 'GET', {});
            if (bare.badStatus === 0 && bare.requests > 0) bareNodeRates.push(bare.requests / bare.seconds);
          }
        }
      }
      for (const [cache, peak] of manifestPeaks) record(figures.manifestMemory, cache, peak.stop() / MB);
      await bareNode.stop();
      const gauge = bareNodeRates.length > 0 ? `${summaryText(summarize(bareNodeRates), 0)} req/s` : 'no answer';
      machineGauge = `the machine's gauge: a bare node:http server (no framework, no auth, no log) answering the same manifest, wrk with 16 connections: ${gauge}; about ${RATE_WHEN_TARGET_SET.toLocaleString('en-US')} when the issue set the 10,000 req/s target`;
      log(machineGauge);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      for (const cache of caches) record(figures.manifestAfterMemory, cache, residentBytes(cache.pid) / MB);
      const byTag = summarize(figures.manifestGet.values.Manifold).median;
      const byDigest = summarize(figures.manifestDigest.values.Manifold).median;
      tagAgainstDigest = `manifest GET by tag / by digest, Manifold: ${(byTag / byDigest).toFixed(2)} (target ≥ 1, issue 16)`;
      log(tagAgainstDigest);
    }

    if (PHASES.has('blob')) {
      for (const cache of caches) await ensureCached(cache, big, workDir);
      const kinds = [
        { connections: 1, figure: figures.blobOne, cpu: figures.blobOneCpu, memory: figures.blobOneMemory },
        { connections: 16, figure: figures.blobMany, cpu: figures.blobManyCpu, memory: figures.blobManyMemory },
      ];
      for (const kind of kinds) {
        for (let run = 1; run <= SETTINGS.blobRuns; run++) {
          log(`5. blob GET of the cached ${bigLabel} layer, ${kind.connections} client(s), run ${run}/${SETTINGS.blobRuns}`);
          for (const cache of caches) {
            const repository = cache.repository(big.image);
            const headers = await cache.requestHeaders(repository);
            const memory = new PeakMemory(cache.pid);
            const cpu = new CpuTime(cache.pid);
            const result = await wrk({ url: `${cache.url}/v2/${repository}/blobs/${big.largestLayer.digest}`, method: 'GET', headers, connections: kind.connections, seconds: SETTINGS.blobSeconds, workDir });
            const cpuSeconds = cpu.stop();
            record(kind.memory, cache, memory.stop() / MB);
            if (result.badStatus > 0 || result.bytes === 0) throw new Error(`${cache.name}: ${result.badStatus} error answers to blob GETs, ${result.bytes} bytes read`);
            if (result.socketErrors > 0) log(`   ${cache.name}: ${result.socketErrors} socket errors`);
            record(kind.figure, cache, result.bytes / result.seconds / MB);
            // What serving costs the cache, whatever the clients (wrk on the same 2 CPUs) left it.
            record(kind.cpu, cache, cpuSeconds / (result.bytes / 1e9));
          }
        }
      }
    }

    const report = [
      `## Results (${new Date().toISOString().slice(0, 10)}${QUICK ? ', BENCH_QUICK' : ''})`,
      '',
      markdownEnvironment(environment, SETTINGS),
      '',
      markdownTable(Object.values(figures)),
      '',
      'Times are skopeo wall times (lower is better); req/s and MB/s higher is better; MB = 10^6 bytes.',
      '',
      ...(tagAgainstDigest ? [tagAgainstDigest, ''] : []),
      ...(machineGauge ? [machineGauge, ''] : []),
      ...(failedRounds.length > 0 ? ['Concurrent rounds repeated because a pull failed (not in the figures):', '', ...failedRounds.map((line) => `- ${line}`), ''] : []),
    ].join('\n');
    console.log(report);
    for (const verdict of verdicts(Object.values(figures)).filter((v) => v.met === false)) {
      console.log(`target missed: ${verdict.figure.label}: ${verdict.figure.target?.text} (ratio ${verdict.ratio.toFixed(2)})`);
    }
    if (process.env.BENCH_OUTPUT) writeFileSync(process.env.BENCH_OUTPUT, report);
  } catch (error) {
    // The work directory goes with the cleanup: show what the caches said first.
    for (const name of ['manifold.log', 'distribution-proxy.log']) console.error(`--- end of ${name}:\n${logTail(path.join(workDir, name))}`);
    throw error;
  } finally {
    for (const cache of caches) await cache.stop().catch(() => {});
    await upstream.stop();
    cleanUpNow();
  }
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${(error as Error).stack ?? String(error)}`);
  cleanUpNow();
  process.exit(1);
});
