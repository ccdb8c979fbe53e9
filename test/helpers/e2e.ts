// Small tools shared by the end-to-end tests: reading a real registry's access log without racing it,
// and raw /v2 requests to Manifold with an access token.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AccessLogEntry, Distribution } from './distribution.ts';
import { basicToken } from './manifold.ts';
import type { TestManifold } from './manifold.ts';

/**
 * Waits until every request the registry answered so far is in its access log: a unique sentinel
 * request is sent after them and awaited in the log (lines are written in the order responses end).
 */
export async function settleLog(registry: Distribution): Promise<void> {
  const sentinel = `/v2/sentinel-${randomBytes(6).toString('hex')}/manifests/latest`;
  await (await fetch(`${registry.url}${sentinel}`)).arrayBuffer();
  await registry.waitForLog((log) => log.some((entry) => entry.path === sentinel));
}

/** Access log entries after the first `mark` ones, sentinels left out. */
export function logSince(registry: Distribution, mark: number): AccessLogEntry[] {
  return registry.accessLog.slice(mark).filter((entry) => !entry.path.startsWith('/v2/sentinel-'));
}

/** A /v2 request to Manifold with `Basic token:<token>` (none when token is null). */
export function v2(server: TestManifold, path: string, options: { token: string | null; method?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = basicToken(options.token);
  return fetch(`${server.url}/v2/${path.replace(/^\//, '')}`, { method: options.method ?? 'GET', headers, signal: options.signal });
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** True when the body ended as the protocol says it should (all of Content-Length, no reset). */
  complete: boolean;
  error: string | null;
}

/**
 * A GET with node:http that reports a truncated or reset body instead of throwing, so a test can tell
 * "the client got a complete response" from "the transfer broke".
 */
export function rawGet(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (complete: boolean, error: string | null) => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete, error });
      };
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => finish(res.complete, null));
      res.on('aborted', () => finish(false, 'aborted'));
      res.on('error', (error) => finish(false, error.message));
      res.on('close', () => finish(res.complete, res.complete ? null : 'closed'));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `condition` every 10 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Responses attached to fills in flight now (the manifold_fill_followers gauge). */
export async function fillFollowers(server: TestManifold): Promise<number> {
  return (await server.manifold.metrics.fillFollowers.get()).values[0]?.value ?? 0;
}
