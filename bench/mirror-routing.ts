// What mirror routing costs: the manifest GET rate through a mirror route (`/v2/library/app/manifests/1.0?ns=docker.io`)
// against the same manifest through the canonical name (`/v2/bench/hub/library/app/...`), on one Manifold
// process (the embedded default, started like `npm start`), with a Bearer JWT and 16 keep-alive
// connections. Rounds alternate between the two so that a busy machine affects both alike. Besides the
// rate, the server's CPU time per request (utime + stime of its process) is reported: on a shared
// machine the rate follows the neighbours' load, the CPU a request costs much less so.
// Run: node --disable-warning=ExperimentalWarning bench/mirror-routing.ts  (BENCH_SECONDS, BENCH_ROUNDS)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SYSTEM } from '../src/auth/policy.ts';
import { Distribution } from '../test/helpers/distribution.ts';
import { buildImage, pushImage } from '../test/helpers/oci-image.ts';
import { createVirtualRegistry, personalToken, startManifold, unwrap } from '../test/helpers/manifold.ts';
import { spawnManifold } from '../test/helpers/manifold-process.ts';
import { MANIFEST_ACCEPT, requestRate } from './lib/clients.ts';
import { CpuTime, summarize } from './lib/measure.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const upstream = await Distribution.start();
const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-bench-mirror-'));
try {
  await pushImage(upstream.url, 'library/app', buildImage({ layerSizes: [1024] }), { tag: '1.0' });
  // Configure with the in-process server, then serve from a process of its own on the same data.
  const setup = await startManifold({ log: { level: 'silent' } }, { dataDir });
  const { registry } = await createVirtualRegistry(setup, { group: 'bench', registry: 'hub', upstreamUrls: [upstream.url] });
  unwrap(await setup.manifold.services.mirrorRoutes.create(SYSTEM, { host: 'docker.io', registry_id: registry.id, default: true }));
  const token = await personalToken(setup);
  await setup.stop();
  const server = await spawnManifold({ dataDir, env: { MANIFOLD_LOG_LEVEL: 'warn' } });
  try {
    const scopes = ['bench/hub/library/app', 'library/app'].map((name) => `scope=repository:${name}:pull`).join('&');
    const issued = await (await fetch(`${server.url}/auth/token?service=manifold&${scopes}`, { headers: { authorization: `Basic ${Buffer.from(`bench:${token}`).toString('base64')}` } })).json() as { token: string };
    const headers = { authorization: `Bearer ${issued.token}`, accept: MANIFEST_ACCEPT };
    const targets = {
      canonical: `${server.url}/v2/bench/hub/library/app/manifests/1.0`,
      ns: `${server.url}/v2/library/app/manifests/1.0?ns=docker.io`,
    };
    for (const url of Object.values(targets)) {
      const warm = await fetch(url, { headers });
      if (warm.status !== 200) throw new Error(`${url}: ${warm.status} ${await warm.text()}`);
      await warm.arrayBuffer();
    }
    const rates: Record<keyof typeof targets, number[]> = { canonical: [], ns: [] };
    const cpu: Record<keyof typeof targets, number[]> = { canonical: [], ns: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      for (const kind of round % 2 === 1 ? (['canonical', 'ns'] as const) : (['ns', 'canonical'] as const)) {
        const clock = new CpuTime(server.pid);
        const result = await requestRate({ url: targets[kind], method: 'GET', headers, connections: 16, seconds: SECONDS, warmupSeconds: 0 });
        const used = clock.stop();
        if (result.badStatus > 0 || result.errors > 0) throw new Error(`${kind}: ${result.badStatus} error answers, ${result.errors} failures`);
        rates[kind].push(result.requests / result.seconds);
        cpu[kind].push((used / result.requests) * 1e6);
        console.error(`round ${round} ${kind}: ${(result.requests / result.seconds).toFixed(0)} req/s, ${((used / result.requests) * 1e6).toFixed(0)} µs CPU per request`);
      }
    }
    const canonical = summarize(rates.canonical);
    const ns = summarize(rates.ns);
    const canonicalCpu = summarize(cpu.canonical);
    const nsCpu = summarize(cpu.ns);
    console.log(JSON.stringify({
      seconds: SECONDS,
      rounds: ROUNDS,
      canonical: { median: Math.round(canonical.median), min: Math.round(canonical.min), max: Math.round(canonical.max) },
      ns: { median: Math.round(ns.median), min: Math.round(ns.min), max: Math.round(ns.max) },
      rateCostPercent: Number(((1 - ns.median / canonical.median) * 100).toFixed(1)),
      cpuMicrosecondsPerRequest: { canonical: Math.round(canonicalCpu.median), ns: Math.round(nsCpu.median) },
      cpuCostPercent: Number(((nsCpu.median / canonicalCpu.median - 1) * 100).toFixed(1)),
    }, null, 2));
  } finally {
    await server.kill('SIGTERM');
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
  await upstream.stop();
}
