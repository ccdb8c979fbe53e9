// A long-running instance (issue 19, "Memory"): after 100,000 hostile requests and minutes of mixed pulls,
// is Manifold's RSS back under its bound (120 MB), and does it serve cached manifests as fast as it did
// when it was fresh (within 10 %)?
//
//   node --disable-warning=ExperimentalWarning bench/soak.ts
//   BENCH_MINUTES=10 (mixed pulls) BENCH_HOSTILE=100000 (requests) BENCH_RATE_SECONDS=5 (each of 3 rate runs)
//   BENCH_PAIRS=6 (runs of each instance at the end, alternated)
//   FLAGS="--trace-deopt" (Node flags after those of `npm start`) KEEP_LOG=<file> (Manifold's output, kept)
//
// Upstream: a real Distribution (Debian's docker-registry). Manifold: a child process started as
// `npm start` starts it (embedded default). Manifest rates: wrk, 16 connections, a registry token
// (Bearer JWT), three runs before and three after; the figure is their median. Hostile requests (undici,
// 16 connections), in turn: a forged Bearer token, a wrong password, an unknown group, an unknown image in
// the real registry (each a new name: the upstream is asked), an unknown blob digest, a malformed name, a
// header of 20 KB. Mixed pulls (4 clients): a manifest and its blobs each, most of a warm image, one in
// eight of an image never pulled before (a miss through to the upstream).
//
// The rate of one process moves by up to a third between runs minutes apart on this machine, with or
// without a soak in between, so "after / before" alone cannot tell a slower instance from a slower
// minute. At the end a fresh instance (same upstream, the same warm pulls) is started and both are
// measured in alternated runs (soaked, fresh, fresh, soaked, ...): "soaked / fresh" compares the two
// under the same minute of the machine.
import { copyFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Pool } from 'undici';
import { RegistryProcess } from './lib/registry-process.ts';
import { ManifoldCache } from './lib/manifold-cache.ts';
import { pushSmallImage } from './lib/images.ts';
import type { PushedImage } from './lib/images.ts';
import { wrk } from './lib/clients.ts';
import { CpuTime, PeakMemory, residentBytes, summarize } from './lib/measure.ts';
import { installCleanupHandlers, trackDirectory } from './lib/cleanup.ts';

const MINUTES = Number(process.env.BENCH_MINUTES ?? 10);
const HOSTILE = Number(process.env.BENCH_HOSTILE ?? 100_000);
const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 5);
const COLD_IMAGES = Number(process.env.BENCH_COLD_IMAGES ?? 120);
const ALTERNATED_PAIRS = Number(process.env.BENCH_PAIRS ?? 6);
const MB = 1e6;
const KiB = 1024;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);

installCleanupHandlers();
const workDir = trackDirectory(mkdtempSync(path.join(tmpdir(), 'manifold-soak-')));
const upstreamStorage = path.join(workDir, 'upstream-storage');
mkdirSync(upstreamStorage);
const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: upstreamStorage, logLevel: 'warn' });
log(`upstream: ${4 + COLD_IMAGES} small images`);
const warm: PushedImage[] = [];
for (let i = 0; i < 4; i++) warm.push(await pushSmallImage(upstream.url, `soak/warm-${i}`, 'v1', [64 * KiB, 512 * KiB, 2048 * KiB]));
const cold: PushedImage[] = [];
for (let i = 0; i < COLD_IMAGES; i++) cold.push(await pushSmallImage(upstream.url, `soak/cold-${i}`, 'v1', [16 * KiB, 128 * KiB]));

const nodeFlags = (process.env.FLAGS ?? '').split(' ').filter(Boolean);
const manifold = await ManifoldCache.start(upstream.url, workDir, { nodeFlags });
const basic = `Basic ${Buffer.from(manifold.skopeoCredentials()[1]).toString('base64')}`;
const pool = new Pool(manifold.url, { connections: 16 });

/** A manifest and its blobs through Manifold; false when any answer was not 200 or a body was short. */
async function pull(image: PushedImage, target = { manifold, pool, basic }): Promise<boolean> {
  const { manifold, pool, basic } = target;
  const repository = manifold.repository(image.image);
  const manifest = await pool.request({ path: `/v2/${repository}/manifests/${image.tag}`, method: 'GET', headers: { authorization: basic, accept: ACCEPT } });
  await manifest.body.dump();
  let ok = manifest.statusCode === 200;
  for (const blob of image.blobs) {
    const response = await pool.request({ path: `/v2/${repository}/blobs/${blob.digest}`, method: 'GET', headers: { authorization: basic } });
    let bytes = 0;
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    ok &&= response.statusCode === 200 && bytes === blob.size;
  }
  return ok;
}

interface Rates { rates: number[]; cpu: number[]; user: number[]; system: number[] }
const noRates = (): Rates => ({ rates: [], cpu: [], user: [], system: [] });

/** wrk on the warm manifest by tag of one instance, as a Bearer JWT client. */
async function rateTarget(target: ManifoldCache): Promise<{ pid: number; url: string; headers: Record<string, string> }> {
  const repository = target.repository(warm[0].image);
  const headers = { ...(await target.requestHeaders(repository)), accept: ACCEPT };
  const url = `${target.url}/v2/${repository}/manifests/${warm[0].tag}`;
  await wrk({ url, method: 'GET', headers, connections: 16, seconds: 1, workDir });
  return { pid: target.pid, url, headers };
}

/** One run: requests a second, and the CPU time Manifold spent per request (µs; less load-dependent), user and system apart. */
async function rateRun(target: { pid: number; url: string; headers: Record<string, string> }, into: Rates): Promise<void> {
  const clock = new CpuTime(target.pid);
  const result = await wrk({ url: target.url, method: 'GET', headers: target.headers, connections: 16, seconds: RATE_SECONDS, workDir });
  const used = clock.stopParts();
  if (result.badStatus > 0 || result.socketErrors > 0) throw new Error(`manifest rate: ${result.badStatus} error answers, ${result.socketErrors} socket errors`);
  into.rates.push(result.requests / result.seconds);
  into.cpu.push(((used.user + used.system) / result.requests) * 1e6);
  into.user.push((used.user / result.requests) * 1e6);
  into.system.push((used.system / result.requests) * 1e6);
}

async function manifestRates(): Promise<Rates> {
  const target = await rateTarget(manifold);
  const measured = noRates();
  for (let run = 0; run < 3; run++) await rateRun(target, measured);
  return measured;
}

/** The hostile request number `i`: path and headers. */
function hostile(i: number): { path: string; headers: Record<string, string> } {
  const image = manifold.repository(warm[0].image);
  switch (i % 7) {
    case 0: return { path: `/v2/${image}/manifests/v1`, headers: { authorization: `Bearer ${randomBytes(24).toString('base64url')}.${randomBytes(60).toString('base64url')}.x` } };
    case 1: return { path: `/v2/${image}/manifests/v1`, headers: { authorization: `Basic ${Buffer.from(`admin:guess-${i}`).toString('base64')}` } };
    case 2: return { path: `/v2/nogroup-${i}/hub/app/manifests/latest`, headers: { authorization: basic } };
    case 3: return { path: `/v2/${manifold.repository(`scan/n${i}`)}/manifests/latest`, headers: { authorization: basic } };
    case 4: return { path: `/v2/${image}/blobs/sha256:${randomBytes(32).toString('hex')}`, headers: { authorization: basic } };
    case 5: return { path: `/v2/${image}/../UPPER%2f${i}/manifests/x`, headers: { authorization: basic } };
    default: return { path: `/v2/${image}/manifests/v1`, headers: { authorization: basic, 'x-padding': 'p'.repeat(20 * KiB) } };
  }
}

const rows: string[] = [];
const row = (what: string, value: string) => { rows.push(`| ${what} | ${value} |`); log(`${what}: ${value}`); };
try {
  for (const image of warm) if (!(await pull(image))) throw new Error(`first pull of ${image.image} failed`);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  row('RSS after start and 4 warm pulls', `${(residentBytes(manifold.pid) / MB).toFixed(0)} MB`);
  // The peak of each phase (one PeakMemory at a time: each resets the kernel's high-water mark).
  const peaks: Array<[string, number]> = [];
  let phasePeak = new PeakMemory(manifold.pid);
  const endPhase = (what: string, last = false) => {
    peaks.push([what, phasePeak.stop()]);
    if (!last) phasePeak = new PeakMemory(manifold.pid);
  };
  const before = await manifestRates();
  endPhase('manifest rates before');
  const median = (values: number[]) => summarize(values).median.toFixed(0);
  const describe = (measured: Rates) => `${median(measured.rates)} req/s (${measured.rates.map((r) => r.toFixed(0)).join(', ')}); CPU ${median(measured.cpu)} µs per request (user ${median(measured.user)}, system ${median(measured.system)})`;
  row('manifest GET by tag before (wrk, 16 connections, Bearer JWT), 3 runs', describe(before));

  log(`${HOSTILE} hostile requests`);
  const statuses = new Map<number, number>();
  let next = 0;
  let failed = 0;
  const started = performance.now();
  const attackers = new Pool(manifold.url, { connections: 128 });
  await Promise.all(Array.from({ length: 128 }, async () => {
    for (let i = next++; i < HOSTILE; i = next++) {
      const { path: requestPath, headers } = hostile(i);
      try {
        const response = await attackers.request({ path: requestPath, method: 'GET', headers });
        await response.body.dump();
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
      } catch {
        failed += 1;
      }
    }
  }));
  await attackers.close();
  endPhase('hostile requests');
  const hostileSeconds = (performance.now() - started) / 1000;
  row('hostile requests', `${HOSTILE} in ${hostileSeconds.toFixed(0)} s; answers ${[...statuses].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`).join(', ')}; ${failed} without an answer`);
  if (statuses.get(500)) throw new Error('a hostile request got a 500');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  row('RSS 2 s after the hostile requests', `${(residentBytes(manifold.pid) / MB).toFixed(0)} MB`);

  log(`${MINUTES} minutes of mixed pulls`);
  const end = performance.now() + MINUTES * 60_000;
  let pulls = 0;
  let misses = 0;
  let failedPulls = 0;
  let coldNext = 0;
  await Promise.all(Array.from({ length: 4 }, async (_, client) => {
    for (let round = 0; performance.now() < end; round++) {
      const miss = round % 8 === client % 8 && coldNext < cold.length;
      const image = miss ? cold[coldNext++] : warm[(round + client) % warm.length];
      const ok = await pull(image).catch(() => false);
      pulls += 1;
      if (miss) misses += 1;
      if (!ok) failedPulls += 1;
    }
  }));
  endPhase('mixed pulls');
  row('mixed pulls', `${pulls} pulls (${misses} of images never pulled before), ${failedPulls} failed`);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  row('RSS 2 s after the mixed pulls', `${(residentBytes(manifold.pid) / MB).toFixed(0)} MB`);

  const after = await manifestRates();
  row('manifest GET by tag after, 3 runs', describe(after));
  row('rate after / rate before (target ≥ 0.9)', (summarize(after.rates).median / summarize(before.rates).median).toFixed(2));
  row('CPU per request after / before', (summarize(after.cpu).median / summarize(before.cpu).median).toFixed(2));
  endPhase('manifest rates after', true);

  const worst = peaks.reduce((a, b) => (b[1] > a[1] ? b : a));
  row('peak RSS over the whole soak', `${(worst[1] / MB).toFixed(0)} MB (during the ${worst[0]}); by phase: ${peaks.map(([what, bytes]) => `${what} ${(bytes / MB).toFixed(0)}`).join(', ')}`);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  row('RSS at the end (target ≤ 120 MB)', `${(residentBytes(manifold.pid) / MB).toFixed(0)} MB`);

  // The same minutes of the machine for both (see the top of this file).
  log('a fresh instance beside the soaked one, alternated runs');
  const freshDir = trackDirectory(mkdtempSync(path.join(tmpdir(), 'manifold-soak-fresh-')));
  const fresh = await ManifoldCache.start(upstream.url, freshDir, { nodeFlags });
  const freshPool = new Pool(fresh.url, { connections: 16 });
  try {
    const freshTarget = { manifold: fresh, pool: freshPool, basic: `Basic ${Buffer.from(fresh.skopeoCredentials()[1]).toString('base64')}` };
    for (const image of warm) if (!(await pull(image, freshTarget))) throw new Error(`first pull of ${image.image} from the fresh instance failed`);
    const targets = { soaked: await rateTarget(manifold), fresh: await rateTarget(fresh) };
    const measured = { soaked: noRates(), fresh: noRates() };
    for (let pair = 0; pair < ALTERNATED_PAIRS; pair++) {
      for (const which of pair % 2 === 0 ? (['soaked', 'fresh'] as const) : (['fresh', 'soaked'] as const)) await rateRun(targets[which], measured[which]);
    }
    row(`soaked instance, ${ALTERNATED_PAIRS} runs alternated with a fresh one`, describe(measured.soaked));
    row('fresh instance, the same runs', describe(measured.fresh));
    row('soaked / fresh, same minutes (target ≥ 0.9)', (summarize(measured.soaked.rates).median / summarize(measured.fresh.rates).median).toFixed(2));
  } finally {
    await freshPool.close();
    await fresh.stop();
  }
} finally {
  await pool.close();
  await manifold.stop();
  if (process.env.KEEP_LOG) copyFileSync(path.join(workDir, 'manifold.log'), process.env.KEEP_LOG);
  await upstream.stop();
}
console.log(`\n| soak (${MINUTES} min of mixed pulls, ${HOSTILE} hostile requests) | figure |\n|---|---|\n${rows.join('\n')}`);
