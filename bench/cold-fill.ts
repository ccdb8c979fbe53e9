// One cold blob fill, timed from outside (issue 19): a 128 MiB layer fetched with curl from the upstream
// directly, then through Manifold right after a start (a miss: streamed while filled), then again (a hit).
// With Manifold's upstream throughput beside the client's, a slow fill shows whether the wait is on the
// upstream side or on the client side.
//   SIZE_MIB=128 RUNS=3 FLAGS="--some-node-flag" (Node flags after those of `npm start`)
// ./node_modules/.bin/node --disable-warning=ExperimentalWarning bench/cold-fill.ts
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RegistryProcess } from './lib/registry-process.ts';
import { ManifoldCache } from './lib/manifold-cache.ts';
import { pushSmallImage } from './lib/images.ts';

const MiB = 1024 * 1024;
const sizeMiB = Number(process.env.SIZE_MIB ?? 128);
const workDir = mkdtempSync(path.join(tmpdir(), 'cold-fill-'));
const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: path.join(workDir, 'up'), logLevel: 'warn' });
const image = await pushSmallImage(upstream.url, 'bench/fill', 'v1', [sizeMiB * MiB]);
const nodeFlags = (process.env.FLAGS ?? '').split(' ').filter(Boolean);
const cache = await ManifoldCache.start(upstream.url, workDir, { nodeFlags });

/** curl's own figures for one GET: total seconds and bytes per second. */
function curl(url: string, headers: Record<string, string> = {}): string {
  const args = ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_starttransfer} %{time_total} %{speed_download}'];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  const [status, first, total, speed] = execFileSync('curl', [...args, url], { encoding: 'utf8' }).split(' ');
  return `${status}, first byte ${(Number(first) * 1000).toFixed(0)} ms, total ${(Number(total) * 1000).toFixed(0)} ms, ${(Number(speed) / 1e6).toFixed(0)} MB/s`;
}

try {
  const blob = image.largestLayer.digest;
  for (let run = 0; run < Number(process.env.RUNS ?? 3); run++) {
    await cache.restartEmpty();
    const repository = cache.repository('bench/fill');
    const headers = await cache.requestHeaders(repository);
    console.log(`run ${run + 1}, ${sizeMiB} MiB`);
    console.log(`  upstream directly:  ${curl(`${upstream.url}/v2/bench/fill/blobs/${blob}`)}`);
    console.log(`  Manifold, miss:     ${curl(`${cache.url}/v2/${repository}/blobs/${blob}`, headers)}`);
    console.log(`  Manifold, hit:      ${curl(`${cache.url}/v2/${repository}/blobs/${blob}`, headers)}`);
  }
} finally {
  await cache.stop();
  await upstream.stop();
  rmSync(workDir, { recursive: true, force: true });
}
