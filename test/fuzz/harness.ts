// Runs the hostile request generator against a running Manifold and judges every answer (issue 14):
// no status of 500 or more except a 503 in the error format (documented: upstream or database
// unavailable), every error body an OCI error (`{"errors":[…]}`), problem+json, or the OAuth2 error of
// the token endpoint's POST (RFC 6749 §5.2), and always a complete HTTP answer. Shared by the fuzz test
// and `npm run fuzz`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Distribution } from '../helpers/distribution.ts';
import { createVirtualRegistry, personalToken, startManifold, unwrap } from '../helpers/manifold.ts';
import type { TestManifold } from '../helpers/manifold.ts';
import { buildImage, pushImage } from '../helpers/oci-image.ts';
import { jsonOf, rawRequest } from '../helpers/raw-http.ts';
import type { RawAnswer } from '../helpers/raw-http.ts';
import { HostileRequests } from './generator.ts';
import type { FuzzContext, FuzzRequest } from './generator.ts';

export interface FuzzReport {
  requests: number;
  statuses: Record<string, number>;
  failures: string[];
}

/** Why this answer is wrong, or null when it is fine. */
export function judge(request: FuzzRequest, answer: RawAnswer): string | null {
  const { status } = answer;
  if (status >= 500 && status !== 503) return `status ${status}`;
  if (status < 400 || request.method === 'HEAD' || status === 304) return null;
  const type = answer.headers['content-type'] ?? '';
  const body = jsonOf(answer) as Record<string, unknown> | undefined;
  if (/^application\/problem\+json/.test(type)) {
    if (typeof body?.type === 'string' && body.status === status && typeof body.detail === 'string') return null;
    return `problem+json without type, status or detail: ${answer.body.subarray(0, 200)}`;
  }
  if (/^application\/json/.test(type)) {
    const errors = body?.errors as { code?: unknown; message?: unknown }[] | undefined;
    if (Array.isArray(errors) && errors.length > 0 && errors.every((e) => typeof e.code === 'string' && typeof e.message === 'string')) {
      if (request.target.startsWith('/v2') && answer.headers['docker-distribution-api-version'] !== 'registry/2.0') return 'an OCI error on /v2 without Docker-Distribution-Api-Version';
      return null;
    }
    if (request.method === 'POST' && request.target.startsWith('/auth/token') && typeof body?.error === 'string') return null;
  }
  return `an error body that is neither OCI nor problem+json (${type}): ${answer.body.subarray(0, 200)}`;
}

/** Sends `requests` generated requests with `concurrency` connections at a time. */
export async function fuzz(port: number, context: FuzzContext, options: { seed: number; requests: number; concurrency: number; onProgress?: (done: number) => void }): Promise<FuzzReport> {
  const generator = new HostileRequests(options.seed, context);
  const report: FuzzReport = { requests: 0, statuses: {}, failures: [] };
  let issued = 0;
  const worker = async () => {
    while (issued < options.requests) {
      const request = generator.next();
      const index = issued++;
      let verdict: string | null;
      try {
        const answer = await rawRequest(port, request, 60_000);
        report.statuses[answer.status] = (report.statuses[answer.status] ?? 0) + 1;
        verdict = judge(request, answer);
      } catch (error) {
        verdict = `no complete answer: ${(error as Error).message}`;
      }
      report.requests++;
      if (verdict && report.failures.length < 50) report.failures.push(`#${index} ${request.label.slice(0, 300)} [${JSON.stringify(request.headers).slice(0, 300)}] body=${JSON.stringify(request.body ?? '').slice(0, 200)}: ${verdict}`);
      if (report.requests % 1000 === 0) options.onProgress?.(report.requests);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return report;
}

export interface FuzzTarget {
  server: TestManifold;
  upstream: Distribution;
  context: FuzzContext;
  port: number;
  stop(): Promise<void>;
}

/**
 * A Manifold (SQLite, or PostgreSQL with TEST_DATABASE_URL) in front of a real Distribution with one
 * image, pulled once so it is cached, and the tokens the generator may use. Refused sign-ins are answered
 * at once here (refusalDelayMs 0), so that the throttle does not hold the run; it still throttles.
 */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const upstream = await Distribution.start();
  const image = buildImage({ layerSizes: [2048, 10_000] });
  await pushImage(upstream.url, 'library/app', image, { tag: 'v1' });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'manifold-fuzz-'));
  const server = await startManifold({ dataDir, auth: { throttle: { refusalDelayMs: 0 } }, log: { level: 'warn' } });
  await createVirtualRegistry(server, { group: 'acme', registry: 'hub', upstreamUrls: [upstream.url] });
  const pull = await personalToken(server, ['read_virtual_registry']);
  const api = await personalToken(server, ['api']);
  const context: FuzzContext = {
    repository: 'acme/hub/library/app',
    tag: 'v1',
    digests: [image.manifest.digest, image.config.digest, ...image.layers.map((layer) => layer.digest)],
    tokens: [pull, api],
    upstreamPort: Number(new URL(upstream.url).port),
  };
  const port = Number(new URL(server.url).port);
  // Cached before the fuzz, so that hits are exercised too.
  const authorization = `Basic ${Buffer.from(`token:${pull}`).toString('base64')}`;
  for (const digest of context.digests) {
    const kind = digest === image.manifest.digest ? 'manifests' : 'blobs';
    const answer = await rawRequest(port, { target: `/v2/${context.repository}/${kind}/${digest}`, headers: { authorization, accept: image.manifest.mediaType } });
    if (answer.status !== 200) throw new Error(`cannot cache ${digest}: ${answer.status} ${answer.body}`);
  }
  return {
    server,
    upstream,
    context,
    port,
    async stop() {
      await server.stop();
      await upstream.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** After the fuzz: the server answers health checks, and a user made now can authenticate on /v2. */
export async function stillServing(target: FuzzTarget): Promise<string[]> {
  const problems: string[] = [];
  for (const probe of ['/healthz', '/readyz']) {
    const answer = await rawRequest(target.port, { target: probe });
    if (answer.status !== 200) problems.push(`${probe}: ${answer.status}`);
  }
  const { services } = target.server.manifold;
  const user = unwrap(await services.users.create(target.server.admin, { username: `after-fuzz-${Date.now()}`, password: 'a password after the fuzz' }));
  const actor = unwrap(await services.authenticator.authenticate({ username: user.username, password: 'a password after the fuzz' }, 'api'));
  const token = unwrap(await services.tokens.createPersonal(actor, { name: 'after the fuzz', scopes: ['read_virtual_registry'] })).token;
  const answer = await rawRequest(target.port, { target: '/v2/', headers: { authorization: `Bearer ${token}` } });
  if (answer.status !== 200) problems.push(`GET /v2/ with a new token: ${answer.status} ${answer.body}`);
  return problems;
}
