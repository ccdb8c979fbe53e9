// The registry protocol (/v2): read-only pull endpoints of the OCI distribution spec.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../auth/policy.ts';
import { ociError } from '../oci/errors.ts';
import { isValidName } from '../oci/reference.ts';
import type { OciErrorCode } from '../oci/errors.ts';
import type { Err, Result } from '../result.ts';
import { unsatisfiedLength } from '../services/pull.ts';
import { bearerChallenge } from './request-auth.ts';
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
}

/** `s`: a name with a line break in it is an invalid name (400), not an unknown endpoint. */
const OBJECT_PATH = /^(?<name>.+)\/(?<kind>manifests|blobs|referrers)\/(?<reference>[^/]+)$/s;

function sendError(reply: FastifyReply, status: number, code: OciErrorCode, message: string, detail?: unknown): FastifyReply {
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

/** The Bearer challenge of a 401; `repository` has been validated (isValidName), so it is header-safe. */
function challenge(deps: RegistryRouteDeps, request: FastifyRequest, repository: string | null, error?: 'invalid_token' | 'insufficient_scope'): string {
  return bearerChallenge({ realm: deps.realm(request), service: deps.service, scope: repository ? `repository:${repository}:pull` : undefined, error });
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
      if (!actor.ok && actor.reason === 'rate_limited') return sendThrottled(reply, actor);
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
      if (/\/tags\/list$/.test(path)) return sendError(reply, 404, 'UNSUPPORTED', 'tag listing is not offered by this pull-through cache');
      const match = OBJECT_PATH.exec(path);
      if (!match?.groups) return sendError(reply, 404, 'NAME_UNKNOWN', 'no such endpoint');
      const { name, reference } = match.groups;
      // Before anything else (DESIGN §3.1): the name goes into the challenge, a log line and queries.
      if (!isValidName(name)) return sendError(reply, 400, 'NAME_INVALID', 'invalid repository name: lower-case path components of letters and digits, separated by ".", "_", "__" or "-"');
      const kind = match.groups.kind === 'manifests' ? 'manifest' : match.groups.kind === 'blobs' ? 'blob' : 'referrers';

      const actor = await deps.authenticate(request, name);
      const unauthorized = (message: string, error?: 'invalid_token' | 'insufficient_scope') => {
        reply.header('WWW-Authenticate', challenge(deps, request, name, error));
        return sendError(reply, 401, 'UNAUTHORIZED', message, [{ Type: 'repository', Name: name, Action: 'pull' }]);
      };
      if (!actor.ok && actor.reason === 'rate_limited') return sendThrottled(reply, actor);
      if (!actor.ok) return unauthorized(actor.message, 'invalid_token');
      if (actor.value.kind === 'anonymous') return unauthorized('authentication required');
      const refusedScope = (message: string) => unauthorized(message, 'insufficient_scope');

      if (kind === 'referrers') {
        if (request.method === 'HEAD') return sendError(reply, 405, 'UNSUPPORTED', 'use GET for referrers');
        const artifactType = (request.query as { artifactType?: string }).artifactType;
        const result = await deps.pull.referrers(actor.value, name, reference, artifactType);
        if (!result.ok) {
          if (result.reason === 'unauthorized') return refusedScope(result.message);
          if (result.reason === 'rate_limited') return sendThrottled(reply, result);
          const { status, code } = ociStatus(result, 'referrers');
          return sendError(reply, status, code, result.message);
        }
        if (artifactType) reply.header('OCI-Filters-Applied', 'artifactType');
        return reply.type(result.value.mediaType).send(result.value.bytes);
      }

      const result = await deps.pull.pull({
        actor: actor.value,
        name,
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
