// Freshness on the hot path (issue 16, "Measure"): a manifest GET by tag inside max_age must cost the
// upstream nothing and be at least as fast as a GET by digest; a stale tag under stale_while_revalidate
// must be served about as fast as a fresh one (target: median latency ≤ 1.2× a fresh hit) while its
// refresh runs in the background.
//
//   node --disable-warning=ExperimentalWarning bench/freshness.ts        (BENCH_SECONDS=8 by default)
//
// Upstream: a real Distribution (Debian's docker-registry) as its own process. Manifold: the real
// composition root in this process (SQLite, filesystem), one upstream with max_age 1 h and a rule
// `*:stale` with max_age 0 and stale_while_revalidate 1 day, so every request for `app:stale` is stale
// and starts (or joins) a background refresh. Clients: undici, keep-alive, Basic with an access token.
// Latency: one connection, requests one after the other; rate: 16 connections, closed loop.
import { Pool } from 'undici';
import { Distribution } from '../test/helpers/distribution.ts';
import { buildImage, OCI_MANIFEST, pushImage } from '../test/helpers/oci-image.ts';
import { basicToken, createVirtualRegistry, personalToken, startManifold } from '../test/helpers/manifold.ts';
import { logSince, settleLog } from '../test/helpers/e2e.ts';
import { requestRate } from './lib/clients.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

async function latencies(origin: string, path: string, headers: Record<string, string>, seconds: number): Promise<number[]> {
  const pool = new Pool(origin, { connections: 1 });
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  try {
    while (performance.now() < end) {
      const started = performance.now();
      const response = await pool.request({ path, method: 'GET', headers });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`${path}: HTTP ${response.statusCode}`);
      times.push(performance.now() - started);
    }
  } finally {
    await pool.close();
  }
  return times;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const upstream = await Distribution.start();
const image = buildImage({ layerSizes: [1024] });
for (const tag of ['fresh', 'stale']) await pushImage(upstream.url, 'library/app', image, { tag });
const server = await startManifold({ log: { level: 'warn' } });
try {
  await createVirtualRegistry(server, {
    group: 'acme', registry: 'hub', upstreamUrls: [upstream.url], cacheValidityHours: 1,
    freshness: { rules: [{ match: '*:stale', max_age: 0, stale_while_revalidate: 86_400 }] },
  });
  const headers = { authorization: basicToken(await personalToken(server)), accept: OCI_MANIFEST };
  const paths = {
    fresh: '/v2/acme/hub/library/app/manifests/fresh',
    stale: '/v2/acme/hub/library/app/manifests/stale',
    digest: `/v2/acme/hub/library/app/manifests/${image.manifest.digest}`,
  };
  for (const path of Object.values(paths)) await (await fetch(`${server.url}${path}`, { headers })).arrayBuffer();
  await settleLog(upstream);

  const rows: string[] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const kind of ['fresh', 'digest', 'stale'] as const) {
      const mark = upstream.accessLog.length;
      const times = await latencies(server.url, paths[kind], headers, SECONDS / 2);
      const rate = await requestRate({ url: `${server.url}${paths[kind]}`, method: 'GET', headers, connections: 16, seconds: SECONDS / 2, warmupSeconds: 0.5 });
      await settleLog(upstream);
      const asked = logSince(upstream, mark);
      const heads = asked.filter((e) => e.method === 'HEAD').length;
      rows.push(`| ${run} | ${kind} | ${median(times).toFixed(3)} | ${times.length} | ${(rate.requests / rate.seconds).toFixed(0)} | ${rate.badStatus + rate.errors} | ${asked.length} (${heads} HEAD) |`);
      console.error(rows.at(-1));
    }
  }
  console.log('| run | manifest GET | median latency, 1 connection (ms) | requests | rate, 16 connections (req/s) | errors | upstream requests meanwhile |');
  console.log('|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
} finally {
  await server.stop();
  await upstream.stop();
}
