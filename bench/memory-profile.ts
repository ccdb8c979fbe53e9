// Where Manifold's memory goes (issue 19): RSS split into anonymous and file pages, the V8 heap and the
// memory outside it (from /metrics), idle after start, then during and after manifest loads. In MB of 10^6
// bytes, as bench/run.ts reports them.
//   KINDS=tag,head,digest  RUNS=2  SECONDS=8    the loads (wrk for GET, undici for HEAD), as in bench/run.ts
//   MEMPROF_FLAGS="--max-old-space-size=96"     extra Node flags for the Manifold process
//   MEMPROF_GC=1         V8's collections (--trace-gc): counts, largest committed heap and page pool
//   MEMPROF_SMAPS=1      the resident anonymous mappings by size (V8 pages are 256 kB, [heap] is malloc's)
//   MEMPROF_PASSWORD=1   a password sign-in before the load (it starts the scrypt worker thread); =wait: and 35 s
//   MEMPROF_WAIT=15      RSS again after that many more seconds of quiet
//   MEMPROF_SNAPSHOT=idle|load   a heap snapshot (Heap.*.heapsnapshot in the repository root)
//   MEMPROF_PROMOTED=1   V8's sampling heap profiler over the inspector during the first load, counting only
//                        allocations that outlive a scavenge (promoted to the old generation): where it grows
// ./node_modules/.bin/node --disable-warning=ExperimentalWarning bench/memory-profile.ts
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryProcess } from './lib/registry-process.ts';
import { ManifoldCache } from './lib/manifold-cache.ts';
import { pushSmallImage } from './lib/images.ts';
import { requestRate, wrk } from './lib/clients.ts';
import { CpuTime, PeakMemory, residentBytes, residentParts } from './lib/measure.ts';

const MiB = 1024 * 1024;
/** Decimal megabytes, as bench/run.ts and bench/soak.ts report them (the issue's bounds are read in these). */
const MB = 1e6;
const workDir = mkdtempSync(path.join(tmpdir(), 'memprof-'));
console.log('work directory (manifold.log)', workDir);
const flags = (process.env.MEMPROF_FLAGS ?? '').split(' ').filter(Boolean);
if (process.env.MEMPROF_SNAPSHOT) flags.push('--heapsnapshot-signal=SIGUSR2');
if (process.env.MEMPROF_GC) flags.push('--trace-gc');
if (process.env.MEMPROF_PROMOTED) flags.push('--inspect=127.0.0.1:0');

/** A Chrome DevTools Protocol session with the Manifold process (MEMPROF_PROMOTED), its address read from the log. */
async function inspectorSession(): Promise<{ send: (method: string, params?: object) => Promise<{ profile: { head: SamplingNode } }>; close: () => void }> {
  const address = /Debugger listening on (ws:\/\/\S+)/.exec(readFileSync(path.join(workDir, 'manifold.log'), 'utf8'))?.[1];
  if (!address) throw new Error('no inspector address in manifold.log');
  const socket = new WebSocket(address);
  await new Promise((resolve, reject) => { socket.onopen = resolve; socket.onerror = reject; });
  const pending = new Map<number, (value: { profile: { head: SamplingNode } }) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(String(event.data));
    pending.get(message.id)?.(message.result);
    pending.delete(message.id);
  };
  let id = 0;
  return {
    send: (method, params = {}) => new Promise((resolve) => { pending.set(++id, resolve); socket.send(JSON.stringify({ id, method, params })); }),
    close: () => socket.close(),
  };
}

interface SamplingNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: SamplingNode[] }

/** The sampled bytes that outlived a scavenge, by allocating function, largest first. */
function promotedSummary(head: SamplingNode): string {
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (node: SamplingNode, stack: string[]) => {
    const frame = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\//, '')}:${node.callFrame.lineNumber + 1}`;
    const here = [frame, ...stack].slice(0, 4);
    if (node.selfSize > 0) {
      const key = here.join(' < ');
      bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    for (const child of node.children) walk(child, here);
  };
  walk(head, []);
  return `promoted (sampled) ${Math.round(total / 1024)} kB:\n` + [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25).map(([site, bytes]) => `  ${Math.round(bytes / 1024).toString().padStart(6)} kB  ${site}`).join('\n');
}

/** MEMPROF_GC=1: the collections V8 reported (--trace-gc) in the Manifold log: counts, largest committed heap and pool. */
function gcSummary(): string {
  const lines = readFileSync(path.join(workDir, 'manifold.log'), 'utf8').split('\n').filter((line) => / ms: (Scavenge|Mark-Compact)/.test(line));
  const committed = lines.map((line) => Number(/-> [\d.]+ \(([\d.]+)\) MB/.exec(line)?.[1] ?? 0));
  const pooled = lines.map((line) => Number(/pooled: ([\d.]+) MB/.exec(line)?.[1] ?? 0));
  const before = lines.map((line) => Number(/: (?:Scavenge|Mark-Compact)(?: \(reduce\))? [\d.]+ \(([\d.]+)\)/.exec(line)?.[1] ?? 0));
  return `gc: ${lines.filter((line) => line.includes('Scavenge')).length} scavenges, ${lines.filter((line) => line.includes('Mark-Compact')).length} mark-compacts (${lines.filter((line) => line.includes('(reduce)')).length} reducing); largest committed ${Math.max(...before, ...committed)} MB, largest pool ${Math.max(...pooled)} MB, last pool ${pooled.at(-1)} MB`;
}

function status(pid: number): string {
  return `rss ${Math.round(residentBytes(pid) / MB)} MB (${residentParts(pid)})${mappings(pid)}`;
}

/** The largest resident mappings (MEMPROF_SMAPS=1), to tell malloc's arenas from V8's pages. */
function mappings(pid: number): string {
  if (!process.env.MEMPROF_SMAPS) return '';
  const rows: { name: string; size: number; rss: number }[] = [];
  let current: { name: string; size: number; rss: number } | null = null;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      current = { name: head[3] || '(anon)', size: (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024, rss: 0 };
      rows.push(current);
    } else if (current && line.startsWith('Rss:')) current.rss = Number(/(\d+)/.exec(line)?.[1] ?? 0);
  }
  const threads = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Threads:\s+(\d+)/m)?.[1];
  const anon = rows.filter((row) => row.name === '(anon)' || row.name === '[heap]');
  const bySize = new Map<string, { count: number; rss: number }>();
  for (const row of anon) {
    const key = row.name === '[heap]' ? '[heap]' : `${row.size} kB`;
    const entry = bySize.get(key) ?? { count: 0, rss: 0 };
    entry.count++;
    entry.rss += row.rss;
    bySize.set(key, entry);
  }
  const top = anon.sort((a, b) => b.rss - a.rss).slice(0, 8).map((row) => `${row.name} ${Math.round(row.size / 1024)}M:${Math.round(row.rss / 1024)}M`).join(', ');
  return `\n           threads ${threads}; anon by mapping size: ${[...bySize].sort((a, b) => b[1].rss - a[1].rss).slice(0, 10).map(([key, value]) => `${key} ×${value.count} ${Math.round(value.rss / 1024)} MB`).join(', ')}\n           largest: ${top}`;
}

async function heap(url: string): Promise<string> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Math.round(Number(new RegExp(`^manifold_${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / MB);
  const spaces = [...text.matchAll(/^manifold_nodejs_heap_space_size_used_bytes\{space="(\w+)"\} (\S+)$/gm)].map((m) => `${m[1]} ${Math.round(Number(m[2]) / MB)}`).join(', ');
  return `heap used ${value('nodejs_heap_size_used_bytes')} / total ${value('nodejs_heap_size_total_bytes')} MB, external ${value('nodejs_external_memory_bytes')} MB; spaces used: ${spaces}`;
}

const upstream = await RegistryProcess.start({ workDir, name: 'upstream', storage: path.join(workDir, 'up'), logLevel: 'warn' });
try {
  const small = await pushSmallImage(upstream.url, 'bench/small', 'v1', [1 * MiB]);
  const m = await ManifoldCache.start(upstream.url, workDir, { nodeFlags: flags });
  try {
    await sleep(1000);
    console.log('idle     ', status(m.pid));
    console.log('          ', await heap(m.url));
    if (process.env.MEMPROF_SNAPSHOT === 'idle') {
      process.kill(m.pid, 'SIGUSR2');
      await sleep(8000);
    }
    const repo = m.repository(small.image);
    const headers = { ...(await m.requestHeaders(repo)), accept: 'application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json' };
    await fetch(`${m.url}/v2/${repo}/manifests/${small.tag}`, { headers });
    if (process.env.MEMPROF_PASSWORD) {
      // A password sign-in starts a scrypt worker thread (src/auth/password-hashing.ts), kept 30 s.
      await m.passwordToken(repo);
      await sleep(500);
      console.log('password ', status(m.pid));
      if (process.env.MEMPROF_PASSWORD === 'wait') {
        await sleep(35_000);
        console.log('35 s on  ', status(m.pid));
      }
    }
    console.log('1st pull ', status(m.pid));
    const runs = Number(process.env.RUNS ?? 1);
    const seconds = Number(process.env.SECONDS ?? 8);
    const kinds = (process.env.KINDS ?? 'tag').split(',');
    const overall = new PeakMemory(m.pid);
    for (let run = 1; run <= runs; run++) {
      for (const kind of kinds) {
        const target = `${m.url}/v2/${repo}/manifests/${kind === 'digest' ? small.manifestDigest : small.tag}`;
        const peak = new PeakMemory(m.pid);
        const cpu = new CpuTime(m.pid);
        let requests: number, elapsed: number, bad: number;
        if (kind === 'head') {
          const r = await requestRate({ url: target, method: 'HEAD', headers, connections: 16, seconds, warmupSeconds: 1 });
          [requests, elapsed, bad] = [r.requests, r.seconds, r.badStatus + r.errors];
        } else {
          await wrk({ url: target, method: 'GET', headers, connections: 16, seconds: 1, workDir });
          const inspector = process.env.MEMPROF_PROMOTED && run === 1 && kind === kinds[0] ? await inspectorSession() : null;
          await inspector?.send('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
          const r = await wrk({ url: target, method: 'GET', headers, connections: 16, seconds, workDir });
          [requests, elapsed, bad] = [r.requests, r.seconds, r.badStatus + r.socketErrors];
          if (inspector) {
            console.log(promotedSummary((await inspector.send('HeapProfiler.stopSampling')).profile.head));
            inspector.close();
          }
        }
        const c = cpu.stop();
        console.log(`${kind.padEnd(9)} ${(requests / elapsed).toFixed(0)} req/s, ${((c / requests) * 1e6).toFixed(0)} µs CPU/req, bad ${bad}, peak rss ${Math.round(peak.stop() / MB)} MB, now ${status(m.pid)}`);
      }
    }
    console.log(`load peak ${Math.round(overall.stop() / MB)} MB`);
    if (process.env.MEMPROF_GC) console.log(gcSummary());
    console.log('after    ', status(m.pid));
    console.log('          ', await heap(m.url));
    // bench/run.ts reads the RSS 2 s after the manifest load.
    await sleep(2000);
    console.log('after 2 s', status(m.pid));
    console.log('          ', await heap(m.url));
    if (process.env.MEMPROF_WAIT) {
      await sleep(Number(process.env.MEMPROF_WAIT) * 1000);
      console.log(`after ${process.env.MEMPROF_WAIT} s more`, status(m.pid));
      console.log('          ', await heap(m.url));
    }
    if (process.env.MEMPROF_SNAPSHOT === 'load') {
      process.kill(m.pid, 'SIGUSR2');
      await sleep(8000);
      console.log('snapshot written (Heap.*.heapsnapshot in the repository root)');
    }
  } finally {
    await m.stop();
  }
} finally {
  await upstream.stop();
}
