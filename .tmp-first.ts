// Scratch (not committed): first pull after a start, with Manifold's request log.
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pushSmallImage } from './bench/lib/images.ts';
import { ManifoldCache } from './bench/lib/manifold-cache.ts';
import { DistributionProxy } from './bench/lib/distribution-proxy.ts';
import { RegistryProcess } from './bench/lib/registry-process.ts';
import { skopeoPull } from './bench/lib/clients.ts';
import { timed } from './bench/lib/measure.ts';
const workDir = mkdtempSync(path.join(tmpdir(), 'h-hot-first-'));
mkdirSync(path.join(workDir, 'up'));
const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: path.join(workDir, 'up'), logLevel: 'warn' });
const small = await pushSmallImage(upstream.url, 'bench/small', 'v1', [1 << 20, 4 << 20, 16 << 20]);
const manifold = await ManifoldCache.start(upstream.url, workDir, {});
const distribution = await DistributionProxy.start(upstream.url, workDir);
const rounds = Number(process.env.ROUNDS ?? 3);
for (let i = 0; i < rounds; i++) {
  await manifold.restartEmpty();
  const logFile = path.join(workDir, 'manifold.log');
  const before = readFileSync(logFile, 'utf8').length;
  const m = await timed(() => skopeoPull(manifold, small.image, small.tag, workDir));
  await distribution.restartEmpty();
  const d = await timed(() => skopeoPull(distribution, small.image, small.tag, workDir));
  console.log(`first pull: Manifold ${m.toFixed(3)} s, Distribution ${d.toFixed(3)} s, ratio ${(m / d).toFixed(2)}`);
  if (process.env.SHOWLOG) for (const line of readFileSync(logFile, 'utf8').slice(before).split('\n')) { try { const j = JSON.parse(line); if (j.url) console.log(`  ${j.ms} ms ${j.method} ${j.status} ${j.url.slice(0, 100)}`); } catch {} }
}
await manifold.stop(); await distribution.stop(); await upstream.stop();
