// Manifold's client for remote OCI registries (DESIGN §3.4): manifests, blobs, referrers and tags of one
// upstream, and the priority probe over several. Every expected outcome is a typed result (found, not
// found, unauthorized, rate limited, unavailable); nothing here throws for them.
//
// Choices worth knowing:
// - Authorization goes only to the upstream's own origin (scheme, host and port); a redirect anywhere
//   else (Docker Hub's CDN) is followed without it, at most 5 hops, and its target is never remembered.
// - One retry per operation, before any byte was handed on: after a refused, reset or closed connection
//   or a connect timeout, after a 502/503/504 without Retry-After, and after a manifest body cut short
//   (it is read whole before anything is returned). Not after a headers timeout (a slow upstream stays
//   slow) and never once a blob stream was returned: its errors reach the caller.
// - Credentials for a token realm: see isTrustedRealm in auth.ts (same hostname on any port, or the same
//   registrable domain; a configured token endpoint is always trusted and replaces the realm).
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Agent } from './undici.ts';
import type { Logger } from '../log.ts';
import { nextPageQuery } from '../oci/link.ts';
import { baseMediaType, MANIFEST_ACCEPT_HEADER, MEDIA_TYPES } from '../oci/media-types.ts';
import { isValidTag } from '../oci/reference.ts';
import { pullScope, UpstreamAuth } from './auth.ts';
import type { Authorization, TokenResponse } from './auth.ts';
import { abandon, BodyTooLargeError, discard, guardedBody, readLimited, readMessage } from './body.ts';
import { parseChallenges } from './challenge.ts';
import { createUpstreamAgent } from './dispatcher.ts';
import type { LookupFunction } from './dispatcher.ts';
import { contentLength, errorBodyMessage, header, rateLimitHeaders, retryAfterSeconds } from './headers.ts';
import { describeNetworkError, isRetryableNetworkError, isTimeoutError } from './network-errors.ts';
import { probeUpstreams } from './probe.ts';
import type { ProbeAttempt } from './probe.ts';
import type {
  BlobGet,
  BlobHead,
  ManifestGet,
  ManifestHead,
  ProbeResult,
  RateLimitReading,
  ReferrersGet,
  TagList,
  TagsPage,
  UpstreamFailure,
  UpstreamResult,
  UpstreamTarget,
} from './types.ts';
import { found, timedOut, unavailable } from './types.ts';
import { isDockerHub } from './url.ts';

export type * from './types.ts';
export type { LookupFunction } from './dispatcher.ts';

export interface UpstreamClientOptions {
  /** Allow loopback, private and link-local addresses (checked for the address actually connected to). */
  allowPrivate: boolean;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** Longest pause between two chunks of a body. */
  bodyTimeoutMs: number;
  probeTimeoutMs: number;
  probeConcurrency: number;
  maxManifestBytes: number;
  logger?: Logger;
  /** Name resolution; tests map names to 127.0.0.1 with it. Default: `dns.lookup`. */
  lookup?: LookupFunction;
  /** Clock for token lifetimes (epoch ms). Default: Date.now. */
  now?: () => number;
}

export const MAX_REDIRECTS = 5;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
const USER_AGENT = 'manifold';
const TOKEN_BODY_LIMIT = 1024 * 1024;

type Method = 'GET' | 'HEAD';

/** One upstream response after redirects and authentication. */
interface Exchange {
  kind: 'response';
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  url: URL;
  /** Came from the upstream's own origin (not a redirect target such as a CDN). */
  fromUpstream: boolean;
}

interface RetryBudget {
  retried: boolean;
}

/** The upstream URL without a trailing `/` or `/v2` (both tolerated, DESIGN §3.4). */
function baseUrl(target: UpstreamTarget): string {
  return target.url.replace(/\/+$/, '').replace(/\/v2$/, '').replace(/\/+$/, '');
}

/** Docker Hub keeps official images under `library/`. */
function upstreamImageName(target: UpstreamTarget, image: string): string {
  return isDockerHub(target.url) && !image.includes('/') ? `library/${image}` : image;
}

/** `path` with `query` appended when it has any parameter. */
function withQuery(path: string, query: URLSearchParams): string {
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/** The URL of an endpoint of this upstream (what a next link must point at). */
function endpointUrl(target: UpstreamTarget, path: string): URL {
  return new URL(`${baseUrl(target)}/v2/${path}`);
}

function isSuccess(status: number): boolean {
  return status >= 200 && status <= 299;
}

/** Resolves with `unavailable` as soon as the signal aborts, otherwise with the promise's value. */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | UpstreamFailure> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.resolve(unavailable('request aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(unavailable('request aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

export class UpstreamClient {
  readonly #options: UpstreamClientOptions;
  readonly #agent: Agent;
  readonly #auth: UpstreamAuth;
  readonly #now: () => number;
  readonly #rateLimits = new Map<number, RateLimitReading>();

  constructor(options: UpstreamClientOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#agent = createUpstreamAgent(options);
    this.#auth = new UpstreamAuth({ now: this.#now, fetchToken: (url, headers) => this.#fetchToken(url, headers) });
  }

  async headManifest(target: UpstreamTarget, image: string, reference: string, signal?: AbortSignal): Promise<UpstreamResult<ManifestHead>> {
    const name = upstreamImageName(target, image);
    const response = await this.#exchange(target, name, 'HEAD', `${name}/manifests/${reference}`, { accept: MANIFEST_ACCEPT_HEADER }, signal);
    if (response.kind !== 'response') return response;
    if (!isSuccess(response.status)) return this.#failure(response);
    discard(response.body);
    return found({
      digest: header(response.headers, 'docker-content-digest'),
      mediaType: baseMediaType(header(response.headers, 'content-type')),
      size: contentLength(response.headers),
      etag: header(response.headers, 'etag'),
    });
  }

  async getManifest(target: UpstreamTarget, image: string, reference: string, signal?: AbortSignal): Promise<UpstreamResult<ManifestGet>> {
    const name = upstreamImageName(target, image);
    const got = await this.#getSmall(target, name, `${name}/manifests/${reference}`, MANIFEST_ACCEPT_HEADER, 'manifest', signal);
    if (got.kind !== 'small') return got;
    const { response, bytes } = got;
    return found({
      bytes,
      mediaType: baseMediaType(header(response.headers, 'content-type')),
      headerDigest: header(response.headers, 'docker-content-digest'),
      computedDigest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      etag: header(response.headers, 'etag'),
    });
  }

  async headBlob(target: UpstreamTarget, image: string, digest: string, signal?: AbortSignal): Promise<UpstreamResult<BlobHead>> {
    const name = upstreamImageName(target, image);
    const response = await this.#exchange(target, name, 'HEAD', `${name}/blobs/${digest}`, {}, signal);
    if (response.kind !== 'response') return response;
    if (!isSuccess(response.status)) return this.#failure(response);
    discard(response.body);
    return found({ digest: header(response.headers, 'docker-content-digest'), size: contentLength(response.headers) });
  }

  /** The blob as a stream, never buffered; with `range` (inclusive bytes) a 206 when the upstream honours it. */
  async getBlob(
    target: UpstreamTarget,
    image: string,
    digest: string,
    options: { range?: { start: number; end: number }; signal?: AbortSignal } = {},
  ): Promise<UpstreamResult<BlobGet>> {
    const name = upstreamImageName(target, image);
    const headers: Record<string, string> = {};
    if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end}`;
    const response = await this.#exchange(target, name, 'GET', `${name}/blobs/${digest}`, headers, options.signal);
    if (response.kind !== 'response') return response;
    if (response.status !== 200 && response.status !== 206) {
      if (isSuccess(response.status)) {
        abandon(response.body);
        return unavailable(`${response.url.host} answered a blob GET with HTTP ${response.status}`, response.status);
      }
      return this.#failure(response);
    }
    const size = contentLength(response.headers);
    return found({
      body: guardedBody(response.body, size, response.url.host),
      size,
      status: response.status,
      contentRange: header(response.headers, 'content-range'),
    });
  }

  /**
   * The referrers index of a digest (OCI 1.1); a registry without the API answers 404 = not_found.
   * `query` is the upstream's own pagination (from its previous `Link`), sent back as it gave it.
   */
  async getReferrers(
    target: UpstreamTarget,
    image: string,
    digest: string,
    options: { artifactType?: string; query?: URLSearchParams; signal?: AbortSignal } = {},
  ): Promise<UpstreamResult<ReferrersGet>> {
    const name = upstreamImageName(target, image);
    const query = new URLSearchParams(options.query);
    if (options.artifactType) query.set('artifactType', options.artifactType);
    const path = `${name}/referrers/${digest}`;
    const got = await this.#getSmall(target, name, withQuery(path, query), MEDIA_TYPES.ociIndex, 'referrers index', options.signal);
    if (got.kind !== 'small') return got;
    const applied = (header(got.response.headers, 'oci-filters-applied') ?? '').split(',').map((f) => f.trim());
    return found({
      bytes: got.bytes,
      mediaType: baseMediaType(header(got.response.headers, 'content-type')) || MEDIA_TYPES.ociIndex,
      filtersApplied: applied.includes('artifactType') ? ['artifactType'] : [],
      next: nextPageQuery(got.response.headers.link, endpointUrl(target, path)),
    });
  }

  /** One page of a repository's tags (`/tags/list`), with the query of the next page when the upstream links one. */
  async getTagsPage(target: UpstreamTarget, image: string, query: URLSearchParams = new URLSearchParams(), signal?: AbortSignal): Promise<UpstreamResult<TagsPage>> {
    const name = upstreamImageName(target, image);
    const path = `${name}/tags/list`;
    const got = await this.#getSmall(target, name, withQuery(path, query), 'application/json', 'tag list', signal);
    if (got.kind !== 'small') return got;
    let parsed: unknown;
    try {
      parsed = JSON.parse(got.bytes.toString('utf8'));
    } catch {
      return unavailable(`${got.response.url.host} answered the tag list of ${name} with a body that is not JSON`);
    }
    const tags = (parsed as { tags?: unknown } | null)?.tags;
    if (tags !== null && tags !== undefined && !Array.isArray(tags)) return unavailable(`${got.response.url.host} answered the tag list of ${name} without a tags array`);
    // Names that are not tags cannot be pulled through us: left out rather than passed on.
    const valid = (tags ?? []).filter((tag): tag is string => typeof tag === 'string' && isValidTag(tag));
    return found({ tags: valid, next: nextPageQuery(got.response.headers.link, endpointUrl(target, path)) });
  }

  /**
   * Every tag of a repository, following the upstream's `Link` pages up to `maxPages` (a registry that
   * keeps linking is cut off there: `complete` is false) and never the same page twice.
   */
  async listTags(target: UpstreamTarget, image: string, options: { maxPages: number; signal?: AbortSignal }): Promise<UpstreamResult<TagList>> {
    const tags: string[] = [];
    const seen = new Set<string>();
    let query = new URLSearchParams();
    for (let page = 0; page < options.maxPages; page++) {
      seen.add(query.toString());
      const got = await this.getTagsPage(target, image, query, options.signal);
      if (got.kind !== 'found') {
        // A repository unknown upstream is not_found on the first page; later pages are the upstream's problem.
        return page === 0 || got.kind !== 'not_found' ? got : unavailable(`the tag list of ${image} ended with HTTP ${got.status} on page ${page + 1}`, got.status);
      }
      tags.push(...got.value.tags);
      if (got.value.next === null || seen.has(got.value.next.toString())) return found({ tags, complete: true });
      query = got.value.next;
    }
    this.#options.logger?.warn({ upstreamId: target.id, image, pages: options.maxPages }, 'upstream tag list cut off after the page limit');
    return found({ tags, complete: false });
  }

  /** DESIGN §3.1 priority rule over targets in order; attempt is e.g. (t, signal) => client.headManifest(t, image, ref, signal). */
  probe<T>(targets: UpstreamTarget[], attempt: ProbeAttempt<T>, options: { signal?: AbortSignal } = {}): Promise<ProbeResult<T>> {
    return probeUpstreams(targets, attempt, {
      concurrency: this.#options.probeConcurrency,
      timeoutMs: this.#options.probeTimeoutMs,
      signal: options.signal,
    });
  }

  /** ratelimit-remaining / ratelimit-limit last seen per upstream id, for metrics. */
  rateLimits(): ReadonlyMap<number, RateLimitReading> {
    return this.#rateLimits;
  }

  /** Closes the connection pools: waits briefly for requests in flight, then cuts them. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), 5_000);
    });
    const outcome = await Promise.race([this.#agent.close().then(() => 'closed' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'late') await this.#agent.destroy();
  }

  /** One request with authentication: anonymous (or what was learned before) first, then one answer to a 401. */
  async #exchange(
    target: UpstreamTarget,
    name: string,
    method: Method,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    budget: RetryBudget = { retried: false },
  ): Promise<Exchange | UpstreamFailure> {
    let url: URL;
    try {
      url = new URL(`${baseUrl(target)}/v2/${path}`);
    } catch {
      return unavailable(`the upstream URL ${JSON.stringify(target.url)} is not valid`);
    }
    const scope = pullScope(name);

    const first = await unlessAborted<Authorization>(this.#auth.before(target, scope), signal);
    if (first.kind !== 'authorization') return first;
    const response = await this.#follow(target, method, url, headers, first.value, signal, budget);
    if (response.kind !== 'response' || response.status !== 401 || !response.fromUpstream) return response;

    const message = await this.#message(response);
    if (first.fresh) {
      this.#auth.forget(target, scope);
      return { kind: 'unauthorized', status: 401, message };
    }
    const challenges = parseChallenges(response.headers['www-authenticate']);
    const second = await unlessAborted<Authorization>(this.#auth.answer(target, scope, challenges, message, first.value), signal);
    if (second.kind !== 'authorization') return second;
    const retried = await this.#follow(target, method, url, headers, second.value, signal, budget);
    if (retried.kind === 'response' && retried.status === 401 && retried.fromUpstream) {
      // Refused again with what the challenge asked for (wrong credentials, or a token granting less).
      this.#auth.forget(target, scope);
      return { kind: 'unauthorized', status: 401, message: await this.#message(retried) };
    }
    return retried;
  }

  /** Sends a request and follows redirects; Authorization only ever goes to the upstream's own origin. */
  async #follow(
    target: UpstreamTarget,
    startMethod: Method,
    start: URL,
    headers: Record<string, string>,
    authorization: string | null,
    signal: AbortSignal | undefined,
    budget: RetryBudget,
  ): Promise<Exchange | UpstreamFailure> {
    const upstreamOrigin = start.origin;
    let url = start;
    let method = startMethod;
    for (let redirects = 0; ; redirects++) {
      const fromUpstream = url.origin === upstreamOrigin;
      const hopHeaders: Record<string, string> = { 'user-agent': USER_AGENT, ...headers };
      if (authorization !== null && fromUpstream) hopHeaders.authorization = authorization;
      const response = await this.#request(url, method, hopHeaders, signal, budget);
      if (response.kind !== 'response') return response;
      if (fromUpstream) this.#recordRateLimit(target, response.headers);
      if (!REDIRECT_STATUSES.has(response.status)) return { ...response, url, fromUpstream };

      discard(response.body);
      const location = header(response.headers, 'location');
      if (!location) return unavailable(`${url.host} answered HTTP ${response.status} without a Location`, response.status);
      if (redirects >= MAX_REDIRECTS) return unavailable(`${start.host}: more than ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        return unavailable(`${url.host} redirected to an invalid URL`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') return unavailable(`${url.host} redirected to a ${next.protocol} URL`);
      if (response.status === 303 && method !== 'HEAD') method = 'GET';
      this.#options.logger?.debug({ upstreamId: target.id, from: url.host, to: next.host, status: response.status }, 'upstream redirect');
      url = next;
    }
  }

  /** One HTTP request, retried once when it failed before any byte came back (see the header comment). */
  async #request(
    url: URL,
    method: Method,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    budget: RetryBudget,
  ): Promise<{ kind: 'response'; status: number; headers: IncomingHttpHeaders; body: Readable } | UpstreamFailure> {
    for (;;) {
      try {
        // undici closes connections after a HEAD by default (for servers that wrongly send a body);
        // registries do not, and probes are HEADs: keep those connections.
        const response = await this.#agent.request({ origin: url.origin, path: url.pathname + url.search, method, headers, signal, reset: method === 'HEAD' ? false : undefined });
        if (RETRY_STATUSES.has(response.statusCode) && !budget.retried && header(response.headers, 'retry-after') === null) {
          budget.retried = true;
          discard(response.body);
          this.#options.logger?.debug({ host: url.host, status: response.statusCode }, 'upstream request retried');
          continue;
        }
        return { kind: 'response', status: response.statusCode, headers: response.headers, body: response.body };
      } catch (error) {
        if (signal?.aborted) return unavailable(`${url.host}: request aborted`);
        if (!budget.retried && isRetryableNetworkError(error)) {
          budget.retried = true;
          this.#options.logger?.debug({ host: url.host, cause: describeNetworkError(error, url.host, this.#options) }, 'upstream request retried');
          continue;
        }
        const cause = describeNetworkError(error, url.host, this.#options);
        return isTimeoutError(error) ? timedOut(cause) : unavailable(cause);
      }
    }
  }

  /** The token endpoint's answer, through the same agent, timeouts and address rule. */
  async #fetchToken(url: URL, headers: Record<string, string>): Promise<TokenResponse> {
    const response = await this.#request(url, 'GET', { 'user-agent': USER_AGENT, ...headers }, undefined, { retried: false });
    if (response.kind !== 'response') return response;
    let body: string;
    try {
      body = (await readLimited(response.body, TOKEN_BODY_LIMIT)).toString('utf8');
    } catch (error) {
      return unavailable(error instanceof BodyTooLargeError ? `${url.host}: token response ${error.message}` : describeNetworkError(error, url.host, this.#options));
    }
    this.#options.logger?.debug({ host: url.host, status: response.status }, 'upstream token request');
    return { kind: 'response', status: response.status, body, retryAfterSeconds: retryAfterSeconds(response.headers, this.#now()) };
  }

  /**
   * GET of a small JSON document (manifest, referrers index), read whole up to maxManifestBytes. Nothing
   * has been handed on while the body is read, so a body cut short is retried once like a failed request.
   */
  async #getSmall(
    target: UpstreamTarget,
    name: string,
    path: string,
    accept: string,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'small'; response: Exchange; bytes: Buffer } | UpstreamFailure> {
    const budget: RetryBudget = { retried: false };
    for (;;) {
      const response = await this.#exchange(target, name, 'GET', path, { accept }, signal, budget);
      if (response.kind !== 'response') return response;
      if (!isSuccess(response.status)) return this.#failure(response);
      const bytes = await this.#readSmall(response, what);
      if (Buffer.isBuffer(bytes)) return { kind: 'small', response, bytes };
      if (bytes.retryable && !budget.retried && !signal?.aborted) {
        budget.retried = true;
        continue;
      }
      return bytes.failure;
    }
  }

  async #readSmall(response: Exchange, what: string): Promise<Buffer | { failure: UpstreamFailure; retryable: boolean }> {
    const limit = this.#options.maxManifestBytes;
    const host = response.url.host;
    const announced = contentLength(response.headers);
    if (announced !== null && announced > limit) {
      abandon(response.body);
      return { failure: unavailable(`${host}: the ${what} is ${announced} bytes, more than the limit of ${limit}; it is not stored`), retryable: false };
    }
    try {
      const bytes = await readLimited(response.body, limit);
      if (announced !== null && bytes.length !== announced) {
        return { failure: unavailable(`${host}: the ${what} body ended after ${bytes.length} of ${announced} bytes`), retryable: true };
      }
      return bytes;
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        return { failure: unavailable(`${host}: the ${what} is more than the limit of ${limit} bytes; it is not stored`), retryable: false };
      }
      return { failure: unavailable(describeNetworkError(error, host, this.#options)), retryable: true };
    }
  }

  /** The upstream's own words for a failed response: its error body, else the challenge's error, else the status. */
  async #message(response: Exchange): Promise<string> {
    const fromBody = errorBodyMessage(await readMessage(response.body));
    const challenge = parseChallenges(response.headers['www-authenticate'])[0];
    const fromChallenge = challenge?.params.error_description ?? challenge?.params.error ?? null;
    return `${response.url.host} answered HTTP ${response.status}: ${fromBody ?? fromChallenge ?? 'no message'}`;
  }

  async #failure(response: Exchange): Promise<UpstreamFailure> {
    const status = response.status;
    if (status === 404) {
      discard(response.body);
      return { kind: 'not_found', status };
    }
    const message = await this.#message(response);
    if (status === 401 || status === 403) return { kind: 'unauthorized', status, message };
    if (status === 429) return { kind: 'rate_limited', retryAfterSeconds: retryAfterSeconds(response.headers, this.#now()), message };
    return { kind: 'unavailable', cause: message, status };
  }

  #recordRateLimit(target: UpstreamTarget, headers: IncomingHttpHeaders): void {
    const reading = rateLimitHeaders(headers);
    if (reading) this.#rateLimits.set(target.id, { ...reading, at: this.#now() });
  }
}
