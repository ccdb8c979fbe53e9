// The registry protocol (/v2): read-only pull endpoints of the OCI distribution spec.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../auth/policy.ts';
import { createMetrics } from '../metrics.ts';
import { ociError } from '../oci/errors.ts';
import type { OciErrorCode } from '../oci/errors.ts';
import type { Err, Result } from '../result.ts';
import type { Metrics } from '../metrics.ts';
import { anonymousPullAllowed, grantsAsRouted } from '../services/mirror-routing.ts';
import type { RouteRequest, Routed } from '../services/mirror-routing.ts';
import { unsatisfiedLength } from '../services/pull.ts';
import type { PullResponse, PullService } from '../services/pull.ts';

export interface RegistryRouteDeps {
  pull: PullService;
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

const OBJECT_PATH = /^(?<name>.+)\/(?<kind>manifests|blobs|referrers)\/(?<reference>[^/]+)$/;
const TAGS_PATH = /^(?<name>.+)\/tags\/list$/;

function firstQueryValue(value: unknown): string | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}

function sendError(reply: FastifyReply, status: number, code: OciErrorCode, message: string, detail?: unknown): FastifyReply {
  return reply.code(status).type('application/json').send(ociError(code, message, detail));
}

/** Object headers that must not survive on an error answer given in their place. */
const OBJECT_HEADERS = ['docker-content-digest', 'content-range', 'accept-ranges', 'etag', 'warning'];

function challenge(deps: RegistryRouteDeps, request: FastifyRequest, repository: string | null, error?: string): string {
  const parts = [`realm="${deps.realm(request)}"`, `service="${deps.service}"`];
  if (repository) parts.push(`scope="repository:${repository}:pull"`);
  if (error) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(',')}`;
}

/** Maps a service's reason to the status and OCI code of the distribution spec. */
export function ociStatus(failure: Err, kind: 'manifest' | 'blob' | 'referrers'): { status: number; code: OciErrorCode } {
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
      return { status: 400, code: 'MANIFEST_INVALID' };
    }
    case 'not_found':
    case 'no_upstreams':
      return { status: 404, code: 'NAME_UNKNOWN' };
    case 'not_found_on_upstreams':
      return { status: 404, code: kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN' };
    case 'rate_limited':
      return { status: 429, code: 'TOOMANYREQUESTS' };
    default:
      return { status: 503, code: 'UNAVAILABLE' };
  }
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
  if (served.range && served.size !== null) {
    reply.code(206);
    reply.header('Content-Range', `bytes ${served.range.start}-${served.range.end}/${served.size}`);
    reply.header('Content-Length', served.range.end - served.range.start + 1);
  } else if (served.size !== null) {
    reply.header('Content-Length', served.size);
  }
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
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('Docker-Distribution-Api-Version', 'registry/2.0');
  });

  // Errors Fastify raises itself (a body it cannot parse) or a blob stream that failed before its first
  // byte (a fill that broke): an OCI error body, never Fastify's own.
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
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

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const actor = await deps.authenticate(request, null);
      if (!actor.ok || actor.value.kind === 'anonymous') {
        reply.header('WWW-Authenticate', challenge(deps, request, null, actor.ok ? undefined : 'invalid_token'));
        return sendError(reply, 401, 'UNAUTHORIZED', actor.ok ? 'authentication required' : actor.message);
      }
      return reply.type('application/json').send({});
    },
  });

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v2/*',
    exposeHeadRoute: false,
    handler: async (request, reply) => {
      const path = (request.params as { '*': string })['*'];
      const match = OBJECT_PATH.exec(path);
      const tags = match ? null : TAGS_PATH.exec(path);
      const name = match?.groups?.name ?? tags?.groups?.name;
      if (!name) return sendError(reply, 404, 'NAME_UNKNOWN', 'no such endpoint');
      const kind = !match?.groups ? 'tags' : match.groups.kind === 'manifests' ? 'manifest' : match.groups.kind === 'blobs' ? 'blob' : 'referrers';
      const reference = match?.groups?.reference ?? '';

      const unauthorized = (message: string, error?: 'invalid_token' | 'insufficient_scope') => {
        reply.header('WWW-Authenticate', challenge(deps, request, name, error));
        return sendError(reply, 401, 'UNAUTHORIZED', message, [{ Type: 'repository', Name: name, Action: 'pull' }]);
      };
      const query = (request.query ?? {}) as Record<string, unknown>;
      const [actor, routed] = await Promise.all([
        deps.authenticate(request, name),
        deps.route({ name, ns: firstQueryValue(query.ns), host: request.host }),
      ]);
      if (!actor.ok) return unauthorized(actor.message, 'invalid_token');
      const anonymous = actor.value.kind === 'anonymous';
      if (!routed.ok) {
        // To anonymous callers a name that is no registry and no route looks like any other: log in first.
        if (anonymous && routed.reason === 'not_found' && routed.cause === 'unrouted') return unauthorized('authentication required');
        const { status, code } = ociStatus(routed, kind === 'tags' ? 'manifest' : kind);
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

      if (kind === 'tags') return sendError(reply, 404, 'UNSUPPORTED', 'tag listing is not offered by this pull-through cache');

      if (kind === 'referrers') {
        if (request.method === 'HEAD') return sendError(reply, 405, 'UNSUPPORTED', 'use GET for referrers');
        const artifactType = (request.query as { artifactType?: string }).artifactType;
        const result = await deps.pull.referrers(puller, repository, reference, artifactType);
        if (!result.ok) {
          if (result.reason === 'unauthorized') return refusedScope(result.message);
          const { status, code } = ociStatus(result, 'referrers');
          return sendError(reply, status, code, result.message);
        }
        if (artifactType) reply.header('OCI-Filters-Applied', 'artifactType');
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
