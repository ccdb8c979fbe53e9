// The registry protocol (/v2): read-only pull endpoints of the OCI distribution spec (manifests, blobs,
// referrers, tags) and Distribution's catalog.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../auth/policy.ts';
import { createMetrics } from '../metrics.ts';
import { ociError } from '../oci/errors.ts';
import { isValidName } from '../oci/reference.ts';
import type { OciErrorCode } from '../oci/errors.ts';
import type { Err, Result } from '../result.ts';
import type { Metrics } from '../metrics.ts';
import { anonymousPullAllowed, grantsAsRouted } from '../services/mirror-routing.ts';
import type { RouteRequest, Routed } from '../services/mirror-routing.ts';
import { unsatisfiedLength } from '../services/pull.ts';
import { bearerChallenge } from './request-auth.ts';
import type { PullResponse, PullService } from '../services/pull.ts';
import { UNAVAILABLE_MESSAGE, isUnavailable, retryLater } from './unavailable.ts';
import type { CatalogService } from '../services/catalog.ts';
import type { ReferrersService } from '../services/referrers.ts';
import type { TagService } from '../services/tags.ts';
import { nextLinkHeader } from '../oci/link.ts';

export interface RegistryRouteDeps {
  pull: PullService;
  referrers: ReferrersService;
  tags: TagService;
  catalog: CatalogService;
  /**
   * The actor of a /v2 request, on the registry channel (`repository` is the name asked for, null for
   * GET /v2/). Whether a registry token (JWT) grants the pull is decided by the pull service, after the
   * membership check, so that those without access get 404 whatever credentials they used.
   */
  authenticate(request: FastifyRequest, repository: string | null): Promise<Result<Actor>>;
  /** The token endpoint URL announced in the Bearer challenge. */
  realm(request: FastifyRequest): string;
  service: string;
  /** Which registry and image a request is for (MirrorRouting.resolve): once per request, every endpoint. */
  route(request: RouteRequest): Promise<Result<Routed>>;
  /** Counts anonymous pulls; a registry of its own when not given (tests). */
  metrics?: Pick<Metrics, 'anonymousPulls'>;
}

/** `s`: a name with a line break in it is an invalid name (400), not an unknown endpoint. */
const OBJECT_PATH = /^(?<name>.+)\/(?<kind>manifests|blobs|referrers)\/(?<reference>[^/]+)$/s;
const TAGS_PATH = /^(?<name>.+)\/tags\/list$/s;

function sendError(reply: FastifyReply, status: number, code: OciErrorCode, message: string, detail?: unknown): FastifyReply {
  if (status === 503) retryLater(reply);
  return reply.code(status).type('application/json').send(ociError(code, message, detail));
}

/** Retry-After of a 429 passed on from upstreams that named none (Docker Hub's window is hours). */
const UPSTREAM_RETRY_AFTER_SECONDS = 60;

/** 429 for a throttled sign-in or rate-limited upstreams, with the Retry-After the failure names. */
function sendThrottled(reply: FastifyReply, failure: Err): FastifyReply {
  reply.header('Retry-After', String(failure.retryAfterSeconds ?? UPSTREAM_RETRY_AFTER_SECONDS));
  return sendError(reply, 429, 'TOOMANYREQUESTS', failure.message);
}

/** Object headers that must not survive on an error answer given in their place. */
const OBJECT_HEADERS = ['docker-content-digest', 'content-range', 'accept-ranges', 'etag', 'warning'];

/**
 * The Bearer challenge of a 401: the scope of `repository` (validated with isValidName, so header-safe)
 * or another fixed scope (`registry:catalog:*`).
 */
function challenge(deps: RegistryRouteDeps, request: FastifyRequest, repository: string | null, error?: 'invalid_token' | 'insufficient_scope', scope?: string): string {
  return bearerChallenge({ realm: deps.realm(request), service: deps.service, scope: repository ? `repository:${repository}:pull` : scope, error });
}

/** Maps a service's reason to the status and OCI code of the distribution spec. */
export function ociStatus(failure: Err, kind: 'manifest' | 'blob' | 'referrers' | 'tags'): { status: number; code: OciErrorCode } {
  switch (failure.reason) {
    case 'unauthorized':
      return { status: 401, code: 'UNAUTHORIZED' };
    case 'forbidden':
      return { status: 403, code: 'DENIED' };
    case 'invalid': {
      const fields = Object.keys(failure.fields ?? {});
      if (fields.includes('range')) return { status: 416, code: 'RANGE_INVALID' };
      if (fields.includes('name')) return { status: 400, code: 'NAME_INVALID' };
      if (fields.includes('digest')) return { status: 400, code: 'DIGEST_INVALID' };
      // A manifest by a malformed tag cannot exist: the spec allows only 404 on a manifest GET/HEAD.
      if (fields.includes('reference')) return { status: 404, code: 'MANIFEST_UNKNOWN' };
      if (fields.includes('n')) return { status: 400, code: 'PAGINATION_NUMBER_INVALID' };
      return { status: 400, code: 'MANIFEST_INVALID' };
    }
    case 'not_found':
    case 'no_upstreams':
      return { status: 404, code: 'NAME_UNKNOWN' };
    case 'not_found_on_upstreams':
      // Referrers: no upstream offers the API; 404 is what makes clients use the sha256-<hex> tag schema.
      if (kind === 'referrers') return { status: 404, code: 'UNSUPPORTED' };
      return { status: 404, code: kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN' };
    case 'rate_limited':
      return { status: 429, code: 'TOOMANYREQUESTS' };
    case 'unavailable':
    default:
      return { status: 503, code: 'UNAVAILABLE' };
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `n` of tags/list and _catalog: undefined when absent, null when it is not a whole number. */
function pageSize(value: string | string[] | undefined): number | undefined | null {
  const text = single(value);
  if (text === undefined) return undefined;
  return /^\d{1,9}$/.test(text) ? Number(text) : null;
}

/** The page of a referrers answer named by our own Link (upstream id and that upstream's query); null for the first. */
function referrersPage(query: Record<string, string | string[] | undefined>): { upstreamId: number; query: URLSearchParams } | null | 'invalid' {
  const upstream = single(query.upstream);
  const page = single(query.page);
  if (upstream === undefined && page === undefined) return null;
  if (upstream === undefined || page === undefined || !/^[1-9]\d{0,15}$/.test(upstream)) return 'invalid';
  return { upstreamId: Number(upstream), query: new URLSearchParams(page) };
}

/**
 * The `Link` to the next page: the path the client asked for (whatever form it named the repository in)
 * with its query, these parameters set.
 */
function nextLink(url: string, params: Record<string, string>): string {
  const at = url.indexOf('?');
  const query = new URLSearchParams(at === -1 ? '' : url.slice(at + 1));
  for (const [key, value] of Object.entries(params)) query.set(key, value);
  return nextLinkHeader(at === -1 ? url : url.slice(0, at), query);
}

function etagMatches(header: string | undefined, digest: string): boolean {
  if (!header) return false;
  return header.split(',').some((tag) => {
    const value = tag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return value === digest || value === '*';
  });
}

function sendObject(request: FastifyRequest, reply: FastifyReply, kind: 'manifest' | 'blob', served: PullResponse): FastifyReply {
  reply.header('Docker-Content-Digest', served.digest);
  reply.header('Content-Type', served.mediaType);
  if (served.warning) reply.header('Warning', served.warning);
  if (kind === 'manifest') {
    reply.header('ETag', `"${served.digest}"`);
    if (etagMatches(request.headers['if-none-match'], served.digest)) {
      served.body?.destroy();
      return reply.code(304).send();
    }
  } else {
    reply.header('Accept-Ranges', 'bytes');
  }
  // A pre-signed URL of the bucket (storage.s3.redirect), as Distribution's redirect answers.
  if (served.redirect) return reply.code(307).header('Location', served.redirect).send();
  if (served.range && served.size !== null) {
    reply.code(206);
    reply.header('Content-Range', `bytes ${served.range.start}-${served.range.end}/${served.size}`);
    reply.header('Content-Length', served.range.end - served.range.start + 1);
  } else if (served.size !== null) {
    reply.header('Content-Length', served.size);
  }
  if (served.bytes) return reply.send(served.bytes);
  if (!served.body) return reply.send();
  // If the body fails half-way (an upstream blob that does not verify), Fastify destroys the
  // connection: the client sees a broken transfer, never a complete-looking wrong one.
  return reply.send(served.body);
}

export function registryRoutes(app: FastifyInstance, deps: RegistryRouteDeps): void {
  // Encapsulated: the hooks and the error handler below apply to /v2 only.
  void app.register(async (scope) => v2Routes(scope, deps));
}

function v2Routes(app: FastifyInstance, deps: RegistryRouteDeps): void {
  const anonymousPulls = (deps.metrics ?? createMetrics({ defaultMetrics: false })).anonymousPulls;
  // Callback-style hooks here and in app.ts: an async one costs a promise and a microtask per request.
  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('Docker-Distribution-Api-Version', 'registry/2.0');
    done();
  });

  // Errors Fastify raises itself (a body it cannot parse) or a blob stream that failed before its first
  // byte (a fill that broke): an OCI error body, never Fastify's own.
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (isUnavailable(error)) {
      request.log.warn({ err: error }, 'registry request failed: the database is unavailable');
      return sendError(reply, 503, 'UNAVAILABLE', UNAVAILABLE_MESSAGE);
    }
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode <= 599 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error }, 'registry request failed');
    else request.log.info({ err: error }, 'registry request refused');
    for (const name of OBJECT_HEADERS) {
      reply.removeHeader(name);
      reply.raw.removeHeader(name);
    }
    const code: OciErrorCode = status >= 500 ? 'UNAVAILABLE' : status === 404 ? 'NAME_UNKNOWN' : 'UNSUPPORTED';
    return sendError(reply, status, code, status === 500 ? 'internal error' : error.message);
  });

  /**
   * The signed-in actor of a request that names no repository (`/v2/`, `/v2/_catalog`), or the answer
   * already sent: 503 while the database is away, 429 when throttled, 401 with the challenge otherwise.
   */
  async function signedIn(request: FastifyRequest, reply: FastifyReply, refusal: { scope?: string; detail?: unknown } = {}): Promise<{ ok: true; value: Actor } | { ok: false; sent: FastifyReply }> {
    const actor = await deps.authenticate(request, null);
    if (!actor.ok && isUnavailable(actor)) return { ok: false, sent: sendError(reply, 503, 'UNAVAILABLE', actor.message) };
    if (!actor.ok && actor.reason === 'rate_limited') return { ok: false, sent: sendThrottled(reply, actor) };
    if (!actor.ok || actor.value.kind === 'anonymous') {
      reply.header('WWW-Authenticate', challenge(deps, request, null, actor.ok ? undefined : 'invalid_token', refusal.scope));
      return { ok: false, sent: sendError(reply, 401, 'UNAUTHORIZED', actor.ok ? 'authentication required' : actor.message, refusal.detail) };
    }
    return { ok: true, value: actor.value };
  }

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const actor = await signedIn(request, reply);
      if (!actor.ok) return actor.sent;
      return reply.type('application/json').send({});
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/_catalog',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const actor = await signedIn(request, reply, { scope: 'registry:catalog:*', detail: [{ Type: 'registry', Name: 'catalog', Action: '*' }] });
      if (!actor.ok) return actor.sent;
      const query = request.query as Record<string, string | string[] | undefined>;
      const n = pageSize(query.n);
      if (n === null) return sendError(reply, 400, 'PAGINATION_NUMBER_INVALID', 'n must be a whole number, 0 or more');
      const result = await deps.catalog.list({ actor: actor.value, n, last: single(query.last) });
      if (!result.ok) {
        const { status, code } = ociStatus(result, 'tags');
        return sendError(reply, status, code, result.message);
      }
      if (result.value.nextLast !== null) reply.header('Link', nextLink(request.url, { n: String(n ?? result.value.repositories.length), last: result.value.nextLast }));
      return reply.type('application/json').send({ repositories: result.value.repositories });
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/*',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const path = (request.params as { '*': string })['*'];
      const tagsMatch = TAGS_PATH.exec(path);
      const match = tagsMatch ? null : OBJECT_PATH.exec(path);
      if (!tagsMatch?.groups && !match?.groups) return sendError(reply, 404, 'NAME_UNKNOWN', 'no such endpoint');
      const name = (tagsMatch?.groups ?? match!.groups!).name;
      // Before anything else (DESIGN §3.1): the name goes into the challenge, a log line and queries.
      if (!isValidName(name)) return sendError(reply, 400, 'NAME_INVALID', 'invalid repository name: lower-case path components of letters and digits, separated by ".", "_", "__" or "-"');
      const reference = match?.groups?.reference ?? '';
      const kind = tagsMatch ? 'tags' : match!.groups!.kind === 'manifests' ? 'manifest' : match!.groups!.kind === 'blobs' ? 'blob' : 'referrers';

      const unauthorized = (message: string, error?: 'invalid_token' | 'insufficient_scope') => {
        reply.header('WWW-Authenticate', challenge(deps, request, name, error));
        return sendError(reply, 401, 'UNAUTHORIZED', message, [{ Type: 'repository', Name: name, Action: 'pull' }]);
      };
      const query = (request.query ?? {}) as Record<string, string | string[] | undefined>;
      const [actor, routed] = await Promise.all([
        deps.authenticate(request, name),
        deps.route({ name, ns: single(query.ns), host: request.host }),
      ]);
      if (!actor.ok && isUnavailable(actor)) return sendError(reply, 503, 'UNAVAILABLE', actor.message);
      if (!actor.ok && actor.reason === 'rate_limited') return sendThrottled(reply, actor);
      if (!actor.ok) return unauthorized(actor.message, 'invalid_token');
      const anonymous = actor.value.kind === 'anonymous';
      if (!routed.ok) {
        // To anonymous callers a name that is no registry and no route looks like any other: log in first.
        if (anonymous && routed.reason === 'not_found' && routed.cause === 'unrouted') return unauthorized('authentication required');
        const { status, code } = ociStatus(routed, kind);
        return sendError(reply, status, code, routed.message);
      }
      const target = routed.value;
      let puller: Actor;
      if (anonymous) {
        const allowed = anonymousPullAllowed(target.registry, request.ip);
        if (!allowed.ok) {
          request.log.info({ repository: target.repository, ip: request.ip, via: target.via }, allowed.message);
          return unauthorized('authentication required');
        }
        puller = { kind: 'anonymous', anonymousPull: { groupId: target.registry.group.id, registryId: target.registry.registry.id } };
        anonymousPulls.inc({ registry: `${target.registry.group.path}/${target.registry.registry.name}`, kind });
      } else {
        // A registry token names the repository as the client wrote it; the pull service knows the routed name.
        puller = grantsAsRouted(actor.value, name, target.repository);
      }
      const repository = target.repository;
      const refusedScope = (message: string) => unauthorized(message, 'insufficient_scope');

      if (kind === 'tags') {
        const n = pageSize(query.n);
        if (n === null) return sendError(reply, 400, 'PAGINATION_NUMBER_INVALID', 'n must be a whole number, 0 or more');
        const result = await deps.tags.list({ actor: puller, name: repository, n, last: single(query.last) });
        if (!result.ok) {
          if (result.reason === 'unauthorized') return refusedScope(result.message);
          if (result.reason === 'rate_limited') return sendThrottled(reply, result);
          const { status, code } = ociStatus(result, 'tags');
          return sendError(reply, status, code, result.message);
        }
        if (result.value.warning) reply.header('Warning', result.value.warning);
        if (result.value.nextLast !== null) reply.header('Link', nextLink(request.url, { n: String(n), last: result.value.nextLast }));
        return reply.type('application/json').send({ name, tags: result.value.tags });
      }

      if (kind === 'referrers') {
        if (request.method === 'HEAD') return sendError(reply, 405, 'UNSUPPORTED', 'use GET for referrers');
        const artifactType = single(query.artifactType);
        const page = referrersPage(query);
        if (page === 'invalid') return sendError(reply, 400, 'UNSUPPORTED', 'the upstream and page parameters must come from a Link header of this registry');
        const result = await deps.referrers.list({ actor: puller, name: repository, digest: reference, artifactType, page });
        if (!result.ok) {
          if (result.reason === 'unauthorized') return refusedScope(result.message);
          if (result.reason === 'rate_limited') return sendThrottled(reply, result);
          const { status, code } = ociStatus(result, 'referrers');
          return sendError(reply, status, code, result.message);
        }
        if (result.value.filteredByArtifactType) reply.header('OCI-Filters-Applied', 'artifactType');
        const next = result.value.next;
        if (next) reply.header('Link', nextLink(request.url, { upstream: String(next.upstreamId), page: next.query.toString() }));
        return reply.type(result.value.mediaType).send(result.value.bytes);
      }

      const result = await deps.pull.pull({
        actor: puller,
        name: repository,
        kind,
        reference,
        method: request.method === 'HEAD' ? 'HEAD' : 'GET',
        range: kind === 'blob' ? request.headers.range : undefined,
        accept: kind === 'manifest' ? request.headers.accept : undefined,
      });
      if (!result.ok) {
        if (result.reason === 'unauthorized') return refusedScope(result.message);
        if (result.reason === 'rate_limited') return sendThrottled(reply, result);
        const { status, code } = ociStatus(result, kind);
        if (status === 416) reply.header('Content-Range', `bytes */${unsatisfiedLength(result) ?? '*'}`);
        return sendError(reply, status, code, result.message);
      }
      return sendObject(request, reply, kind, result.value);
    },
  });

  const readOnly = (reply: FastifyReply) => sendError(reply, 405, 'UNSUPPORTED', 'Manifold is a read-only pull-through cache: pushes and deletes are not accepted');
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2/*',
    // Answered before the body is parsed: a push of any content type gets the same answer.
    onRequest: async (_request, reply) => readOnly(reply),
    handler: async (_request, reply) => readOnly(reply),
  });
}
