// The clients that drive the caches: skopeo for pulls, undici for manifest request rates (wrk 4.1 waits
// for a body after HEAD), wrk for blob throughput (it reads a GB/s for little CPU).
import { chmodSync, chownSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { SpawnOptions } from 'node:child_process';
import path from 'node:path';
import { Pool } from 'undici';
import type { CacheUnderTest } from './cache.ts';
import { removeDirectory, trackDirectory } from './cleanup.ts';
import { runCommand } from './processes.ts';

/** What docker sends when it asks for a manifest: every type it can use. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/** The user skopeo runs as when the bench runs as root (see clientOptions). */
const NOBODY = 65534;

/**
 * Each skopeo gets a blob-info cache of its own. containers/image keeps one BoltDB per user and retries
 * its lock every 50 ms, so 16 clients on one machine that finish a blob at the same moment (as every
 * client of one fill does) would queue on it for up to a second: a cost of sharing one machine that
 * nodes pulling through a cache never pay. Root's cache sits at a fixed path
 * (/var/lib/containers/cache), so as root skopeo runs as nobody, with XDG_DATA_HOME in its own directory.
 */
function clientOptions(client: string, workDir: string): SpawnOptions {
  const env = { ...process.env, HOME: client, XDG_DATA_HOME: client };
  if (process.getuid?.() !== 0) return { env };
  chmodSync(workDir, 0o755);
  chownSync(client, NOBODY, NOBODY);
  return { env, uid: NOBODY, gid: NOBODY };
}

/**
 * `skopeo copy` of image:tag from the cache into a fresh `dir:` (which keeps the layers as they are;
 * `oci:` would recompress layers that do not look compressed). The copy is removed afterwards.
 */
export async function skopeoPull(cache: CacheUnderTest, image: string, tag: string, workDir: string): Promise<void> {
  const client = trackDirectory(mkdtempSync(path.join(workDir, 'pull-')));
  try {
    const source = `docker://${cache.host}/${cache.repository(image)}:${tag}`;
    const destination = `dir:${path.join(client, 'image')}`;
    const result = await runCommand('skopeo', ['copy', '--quiet', '--src-tls-verify=false', ...cache.skopeoCredentials(), source, destination], clientOptions(client, workDir));
    if (result.code !== 0) throw new Error(`skopeo copy ${source} from ${cache.name} failed (${result.code}): ${result.stderr.trim()}`);
  } finally {
    removeDirectory(client);
  }
}

export interface WrkResult {
  requests: number;
  bytes: number;
  seconds: number;
  /** Connect, read, write and timeout errors. */
  socketErrors: number;
  /** Responses that were not 2xx or 3xx. */
  badStatus: number;
}

// wrk calls done() once at the end with the totals of every thread; printing them as JSON spares
// parsing its human-readable units. No response() callback: wrk would then keep every body.
const DONE_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_RESULT {"requests":%d,"bytes":%d,"duration_us":%d,"socket_errors":%d,"bad_status":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.timeout, e.status))
end
`;

export interface WrkOptions {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  seconds: number;
  workDir: string;
}

export async function wrk(options: WrkOptions): Promise<WrkResult> {
  const script = path.join(options.workDir, `wrk-${options.method.toLowerCase()}.lua`);
  writeFileSync(script, `wrk.method = "${options.method}"\n${DONE_SCRIPT}`);
  const threads = Math.min(options.connections, 2);
  const headers = Object.entries(options.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]);
  const args = ['-t', String(threads), '-c', String(options.connections), '-d', `${options.seconds}s`, '--timeout', '120s', ...headers, '-s', script, options.url];
  const result = await runCommand('wrk', args);
  const line = /BENCH_RESULT (\{.*\})/.exec(result.stdout);
  if (result.code !== 0 || !line) throw new Error(`wrk failed (${result.code}): ${result.stderr.trim()} ${result.stdout.trim()}`);
  const parsed = JSON.parse(line[1]) as { requests: number; bytes: number; duration_us: number; socket_errors: number; bad_status: number };
  return { requests: parsed.requests, bytes: parsed.bytes, seconds: parsed.duration_us / 1e6, socketErrors: parsed.socket_errors, badStatus: parsed.bad_status };
}

export interface RateOptions {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  seconds: number;
  /** Requests in the first moment are not counted (connections, caches). */
  warmupSeconds: number;
}

export interface RateResult {
  requests: number;
  seconds: number;
  /** Answers other than 2xx and 3xx. */
  badStatus: number;
  errors: number;
}

/** Closed-loop load: `connections` keep-alive connections, each sending its next request when the last is answered. */
export async function requestRate(options: RateOptions): Promise<RateResult> {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, { connections: options.connections, pipelining: 1 });
  const started = performance.now();
  const measureFrom = started + options.warmupSeconds * 1000;
  const end = measureFrom + options.seconds * 1000;
  const result: RateResult = { requests: 0, seconds: options.seconds, badStatus: 0, errors: 0 };
  const loop = async () => {
    for (let now = performance.now(); now < end; now = performance.now()) {
      try {
        const response = await pool.request({ path: url.pathname + url.search, method: options.method, headers: options.headers });
        await response.body.dump();
        if (now < measureFrom) continue;
        result.requests++;
        if (response.statusCode >= 400) result.badStatus++;
      } catch {
        result.errors++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.connections }, loop));
  } finally {
    await pool.close();
  }
  return result;
}
