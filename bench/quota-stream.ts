// The pull rate of a cache that sits at its storage quota under a rolling stream of images, against the
// same cache with no quota (issue 18, "Measure": target ≥ 0.9×).
//
//   node --disable-warning=ExperimentalWarning bench/quota-stream.ts
//   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --disable-warning=ExperimentalWarning bench/quota-stream.ts
//
// Upstream: a real Distribution (Debian's docker-registry) with N small images of three layers (a base
// layer shared by a quarter of the images, two of its own) and a config. Caches: two Manifold child
// processes started as `npm start` starts one (SQLite in their data directory, or a PostgreSQL schema
// each with BENCH_DATABASE_URL), the same settings but for `storage.maxBytes`: one has none, the other
// twice the working set of the sliding window (evictionGraceSeconds 1, so entries the window has left
// are evictable at once). The stream: a window of BENCH_WINDOW images slides by one image every
// BENCH_PULLS_PER_STEP pulls; each pull (manifest by tag, then the config and the layers, every body
// checked against its digest) takes the next image of the window, BENCH_CLIENTS pulls at a time. So
// every step brings one new image (a miss for each of its blobs) and the quota instance evicts all the
// time. Runs alternate A/B/A/B over the same slice of images, so load noise hits both caches alike;
// both are primed over two windows first (not measured).
//
// Settings: BENCH_RUNS (5 per cache), BENCH_STEPS (images per run, 32), BENCH_WINDOW (8),
// BENCH_PULLS_PER_STEP (16), BENCH_CLIENTS (8), BENCH_GRACE_SECONDS (1), BENCH_CPU_PROFILE_DIR (profiles of
// both caches, written when they stop).
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Pool } from 'undici';
import { Distribution } from '../test/helpers/distribution.ts';
import { logSince, settleLog } from '../test/helpers/e2e.ts';
import { buildImage, content, OCI_LAYER, pushImage } from '../test/helpers/oci-image.ts';
import type { Content, TestImage } from '../test/helpers/oci-image.ts';
import { cleanUpNow, installCleanupHandlers, removeDirectory, trackDirectory } from './lib/cleanup.ts';
import { MANIFEST_ACCEPT } from './lib/clients.ts';
import { ADMIN_PASSWORD, GROUP, REGISTRY, createTemplate, inheritedEnvironment } from './lib/manifold-cache.ts';
import { npmStart } from '../test/helpers/npm-start.ts';
import { CpuTime, summarize } from './lib/measure.ts';
import { freePort, spawnLogged, stopProcess, waitForHttp } from './lib/processes.ts';
import type { LoggedProcess } from './lib/processes.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('../', import.meta.url));
const KiB = 1024;
const DATABASE_URL = process.env.BENCH_DATABASE_URL;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const STEPS = Number(process.env.BENCH_STEPS ?? 32);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 8);
const PULLS_PER_STEP = Number(process.env.BENCH_PULLS_PER_STEP ?? 16);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const GRACE_SECONDS = Number(process.env.BENCH_GRACE_SECONDS ?? 1);
/** `node --cpu-prof` profiles of the two caches in <dir>/quota and <dir>/no-quota. */
const PROFILE_DIR = process.env.BENCH_CPU_PROFILE_DIR;
const log = (message: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

// Images: base layers of 128 KiB, each shared by four images; two layers of their own (32 and 96 KiB).
const PRIME_STEPS = 2 * WINDOW;
const IMAGES = PRIME_STEPS + RUNS * STEPS + WINDOW;
const bases: Content[] = Array.from({ length: Math.ceil(IMAGES / 4) }, () => content(OCI_LAYER, randomBytes(128 * KiB)));
const images: TestImage[] = Array.from({ length: IMAGES }, (_, i) => buildImage({ sharedLayers: [bases[Math.floor(i / 4)]], layerSizes: [32 * KiB, 96 * KiB] }));
const imageBytes = (image: TestImage) => image.manifest.size + image.blobs.reduce((sum, blob) => sum + blob.size, 0);
// The window's working set: its images' manifests and blobs, each base layer once (the largest window).
function windowBytes(from: number): number {
  const digests = new Map<string, number>();
  for (const image of images.slice(from, from + WINDOW)) {
    digests.set(image.manifest.digest, image.manifest.size);
    for (const blob of image.blobs) digests.set(blob.digest, blob.size);
  }
  return [...digests.values()].reduce((a, b) => a + b, 0);
}
const WORKING_SET = Math.max(...Array.from({ length: IMAGES - WINDOW + 1 }, (_, i) => windowBytes(i)));
const MAX_BYTES = 2 * WORKING_SET;

/** One Manifold child process, with its own data directory (and PostgreSQL schema). */
class Cache {
  readonly name: string;
  readonly dataDir: string;
  readonly #schema: string | null;
  #process: LoggedProcess | null = null;
  #pool: Pool | null = null;
  url = '';
  headers: Record<string, string> = {};

  private constructor(name: string, dataDir: string, schema: string | null) {
    this.name = name;
    this.dataDir = dataDir;
    this.#schema = schema;
  }

  static async start(name: string, workDir: string, upstreamUrl: string, env: Record<string, string>): Promise<Cache> {
    const dataDir = path.join(workDir, name);
    mkdirSync(dataDir, { recursive: true });
    let databaseUrl: string | undefined;
    let schema: string | null = null;
    if (DATABASE_URL) {
      schema = `bench_quota_${process.pid}_${name.replace(/\W/g, '_')}`;
      await sql(`create schema ${schema}`);
      const url = new URL(DATABASE_URL);
      url.searchParams.set('options', `-c search_path=${schema}`);
      databaseUrl = url.toString();
    }
    const cache = new Cache(name, dataDir, schema);
    const token = await createTemplate(dataDir, upstreamUrl, databaseUrl);
    const port = await freePort();
    const start = npmStart({ prestart: true });
    const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${path.join(PROFILE_DIR, name)}`] : [];
    cache.#process = spawnLogged(process.execPath, [...start.nodeFlags, ...profile, start.main, 'serve'], path.join(workDir, `${name}.log`), {
      cwd: REPOSITORY_ROOT,
      env: {
        ...inheritedEnvironment(),
        ...start.env,
        MANIFOLD_DATA_DIR: dataDir,
        ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
        PORT: String(port),
        MANIFOLD_SERVER_HOST: '127.0.0.1',
        MANIFOLD_UPSTREAM_ALLOW_PRIVATE: 'true',
        MANIFOLD_ADMIN_PASSWORD: ADMIN_PASSWORD,
        MANIFOLD_LOG_LEVEL: process.env.BENCH_MANIFOLD_LOG_LEVEL ?? 'warn',
        MANIFOLD_STORAGE_EVICTION_GRACE_SECONDS: String(GRACE_SECONDS),
        ...env,
      },
    });
    cache.url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${cache.url}/healthz`, cache.#process, 60_000);
    cache.headers = { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` };
    cache.#pool = new Pool(cache.url, { connections: CLIENTS, pipelining: 1 });
    return cache;
  }

  get pid(): number {
    if (!this.#process) throw new Error(`${this.name} is not running`);
    return this.#process.pid;
  }

  get pool(): Pool {
    if (!this.#pool) throw new Error(`${this.name} is not running`);
    return this.#pool;
  }

  /** The sum of a counter of /metrics over its labels. */
  async metric(name: string): Promise<number> {
    const response = await this.pool.request({ path: '/metrics', method: 'GET' });
    const text = await response.body.text();
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return total;
  }

  /** Bytes of the committed objects (the spool's temporary files left out). */
  storedBytes(): number {
    let total = 0;
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        try {
          if (entry.isDirectory()) {
            if (entry.name !== 'tmp') walk(full);
          } else total += statSync(full).size;
        } catch {
          // deleted while walking: an eviction
        }
      }
    };
    walk(path.join(this.dataDir, 'objects'));
    return total;
  }

  async stop(): Promise<void> {
    await this.#pool?.close();
    if (this.#process) await stopProcess(this.#process, 30_000);
    this.#process = null;
    if (this.#schema) await sql(`drop schema if exists ${this.#schema} cascade`);
  }
}

async function sql(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

const digestOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function get(cache: Cache, requestPath: string, headers: Record<string, string>): Promise<Buffer> {
  const response = await cache.pool.request({ path: requestPath, method: 'GET', headers });
  const body = Buffer.from(await response.body.arrayBuffer());
  if (response.statusCode !== 200) throw new Error(`GET ${requestPath}: HTTP ${response.statusCode} ${body.toString('utf8', 0, 200)}`);
  return body;
}

/** One pull of image `index` as a client does it: the manifest by tag, then each blob; bytes read. */
async function pull(cache: Cache, index: number): Promise<number> {
  const image = images[index];
  const repository = `${GROUP}/${REGISTRY}/stream/i${index}`;
  const manifest = await get(cache, `/v2/${repository}/manifests/1`, { ...cache.headers, accept: MANIFEST_ACCEPT });
  if (digestOf(manifest) !== image.manifest.digest) throw new Error(`${repository}:1: wrong manifest`);
  const parsed = JSON.parse(manifest.toString('utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
  let bytes = manifest.length;
  for (const { digest } of [parsed.config, ...parsed.layers]) {
    const blob = await get(cache, `/v2/${repository}/blobs/${digest}`, cache.headers);
    if (digestOf(blob) !== digest) throw new Error(`${repository}: blob ${digest} has wrong bytes`);
    bytes += blob.length;
  }
  return bytes;
}

interface Walk {
  pulls: number;
  failed: number;
  bytes: number;
  seconds: number;
  /** CPU time (user + system) of the cache process meanwhile. */
  cpuSeconds: number;
  /** Requests the upstream received meanwhile (misses). */
  upstreamGets: number;
  firstError: string | null;
}

/**
 * The stream from image `from` over `steps` steps: pull k is of image from + ⌊k / PULLS_PER_STEP⌋ + (k mod
 * WINDOW), taken in order by CLIENTS clients.
 */
async function walk(cache: Cache, from: number, steps: number): Promise<Walk> {
  const total = steps * PULLS_PER_STEP;
  let next = 0;
  const result: Walk = { pulls: 0, failed: 0, bytes: 0, seconds: 0, cpuSeconds: 0, upstreamGets: 0, firstError: null };
  const cpu = new CpuTime(cache.pid);
  const started = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (next < total) {
      const k = next++;
      try {
        result.bytes += await pull(cache, from + Math.floor(k / PULLS_PER_STEP) + (k % WINDOW));
        result.pulls++;
      } catch (error) {
        result.failed++;
        result.firstError ??= (error as Error).message;
      }
    }
  }));
  result.seconds = (performance.now() - started) / 1000;
  result.cpuSeconds = cpu.stop();
  return result;
}

installCleanupHandlers();
const workDir = trackDirectory(mkdtempSync(path.join(tmpdir(), 'manifold-bench-quota-')));
let upstream: Distribution | undefined;
const caches: Cache[] = [];
try {
  upstream = await Distribution.start();
  log(`pushing ${IMAGES} images (${(imageBytes(images[0]) / KiB).toFixed(0)} KiB each, ${bases.length} base layers shared by 4)`);
  for (const [index, image] of images.entries()) await pushImage(upstream.url, `stream/i${index}`, image, { tag: '1' });
  log(`working set of a window of ${WINDOW} images: ${(WORKING_SET / KiB).toFixed(0)} KiB; quota ${(MAX_BYTES / KiB).toFixed(0)} KiB`);
  const unlimited = await Cache.start('no-quota', workDir, upstream.url, {});
  caches.push(unlimited);
  const limited = await Cache.start('quota', workDir, upstream.url, { MANIFOLD_STORAGE_MAX_BYTES: String(MAX_BYTES) });
  caches.push(limited);

  for (const cache of caches) {
    const primed = await walk(cache, 0, PRIME_STEPS);
    if (primed.failed > 0) throw new Error(`${cache.name}: ${primed.failed} failed pulls while priming: ${primed.firstError}`);
  }
  log('both caches primed');

  const results = new Map<Cache, Walk[]>(caches.map((cache) => [cache, []]));
  let evictions = 0;
  let storageMax = 0;
  for (let run = 0; run < RUNS; run++) {
    const from = PRIME_STEPS + run * STEPS;
    for (const cache of run % 2 === 0 ? [limited, unlimited] : [unlimited, limited]) {
      const evictedBefore = await cache.metric('manifold_cache_evictions_total');
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          if (cache === limited) storageMax = Math.max(storageMax, cache.storedBytes());
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      await settleLog(upstream);
      const mark = upstream.accessLog.length;
      const result = await walk(cache, from, STEPS);
      sampling = false;
      await sampler;
      await settleLog(upstream);
      result.upstreamGets = logSince(upstream, mark).filter((entry) => entry.method === 'GET').length;
      const evicted = (await cache.metric('manifold_cache_evictions_total')) - evictedBefore;
      if (cache === limited) evictions += evicted;
      results.get(cache)!.push(result);
      log(`run ${run + 1} ${cache.name}: ${result.pulls} pulls in ${result.seconds.toFixed(2)} s = ${(result.pulls / result.seconds).toFixed(1)}/s, ${(result.cpuSeconds * 1e6 / result.pulls).toFixed(0)} µs CPU per pull, ${result.upstreamGets} upstream GETs, ${result.failed} failed, ${evicted} entries evicted${result.firstError ? ` (${result.firstError})` : ''}`);
    }
  }
  if (caches.length === 2) storageMax = Math.max(storageMax, limited.storedBytes());

  const rates = (cache: Cache) => results.get(cache)!.map((r) => r.pulls / r.seconds);
  const byteRates = (cache: Cache) => results.get(cache)!.map((r) => r.bytes / r.seconds / 1e6);
  const failed = (cache: Cache) => results.get(cache)!.reduce((sum, r) => sum + r.failed, 0);
  const cell = (values: number[], digits: number) => {
    const s = summarize(values);
    return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}, n=${s.runs})`;
  };
  const cpuPerPull = (cache: Cache) => results.get(cache)!.map((r) => (r.cpuSeconds * 1e6) / r.pulls);
  const overall = (cache: Cache) => {
    const all = results.get(cache)!;
    return all.reduce((sum, r) => sum + r.pulls, 0) / all.reduce((sum, r) => sum + r.seconds, 0);
  };
  const ratio = overall(limited) / overall(unlimited);
  const pairRatios = rates(limited).map((rate, i) => rate / rates(unlimited)[i]);
  console.log(`\nQuota under a rolling stream, ${DATABASE_URL ? 'PostgreSQL' : 'SQLite'}: ${IMAGES} images, window ${WINDOW}, ${STEPS} new images and ${STEPS * PULLS_PER_STEP} pulls per run, ${CLIENTS} clients, quota ${(MAX_BYTES / KiB).toFixed(0)} KiB = 2 × the window's ${(WORKING_SET / KiB).toFixed(0)} KiB\n`);
  console.log('| measurement | no quota median (min–max) | at quota median (min–max) | at quota / no quota |');
  console.log('|---|---|---|---|');
  console.log(`| pulls/s (manifest + 4 blobs) | ${cell(rates(unlimited), 1)} | ${cell(rates(limited), 1)} | ${(summarize(rates(limited)).median / summarize(rates(unlimited)).median).toFixed(2)} (pairs of runs: ${pairRatios.map((r) => r.toFixed(2)).join(', ')}) |`);
  console.log(`| pulls/s over all runs (pulls / seconds) | ${overall(unlimited).toFixed(1)} | ${overall(limited).toFixed(1)} | ${ratio.toFixed(2)}; target ≥ 0.9: **${ratio >= 0.9 ? 'met' : 'missed'}** |`);
  console.log(`| CPU time of the cache per pull (µs) | ${cell(cpuPerPull(unlimited), 0)} | ${cell(cpuPerPull(limited), 0)} | ${(summarize(cpuPerPull(limited)).median / summarize(cpuPerPull(unlimited)).median).toFixed(2)} |`);
  console.log(`| MB/s | ${cell(byteRates(unlimited), 2)} | ${cell(byteRates(limited), 2)} | ${(summarize(byteRates(limited)).median / summarize(byteRates(unlimited)).median).toFixed(2)} |`);
  const upstreamGets = (cache: Cache) => results.get(cache)!.map((r) => r.upstreamGets);
  console.log(`| upstream GETs per run (the new images' manifests and blobs) | ${cell(upstreamGets(unlimited), 0)} | ${cell(upstreamGets(limited), 0)} | |`);
  console.log(`| failed pulls | ${failed(unlimited)} | ${failed(limited)} | must be 0 |`);
  console.log(`| entries evicted during the runs | 0 | ${evictions} | |`);
  console.log(`| self-repairs recorded (an object missing under a live entry; none is expected) | ${await unlimited.metric('manifold_storage_repairs_total')} | ${await limited.metric('manifold_storage_repairs_total')} | |`);
  console.log(`| storage (objects on disk): max sampled every 100 ms vs cap | ${(unlimited.storedBytes() / KiB).toFixed(0)} KiB at the end | ${(storageMax / KiB).toFixed(0)} KiB vs ${(MAX_BYTES / KiB).toFixed(0)} KiB (${((storageMax / MAX_BYTES) * 100).toFixed(0)} %) | |`);
} finally {
  for (const cache of caches) await cache.stop().catch((error: unknown) => log(`stopping ${cache.name}: ${(error as Error).message}`));
  await upstream?.stop();
  removeDirectory(workDir);
  cleanUpNow();
}
