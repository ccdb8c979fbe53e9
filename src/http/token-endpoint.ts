// The token server of Docker token authentication (DESIGN §5; distribution docs spec/auth/token.md and
// oauth.md): GET with Basic credentials (or none) and `scope`s, or the OAuth2 password grant by POST.
// The answer is a short-lived JWT granting only the pulls the caller may make; anonymous callers get a
// token without access, so public probing works the way it does with distribution.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../services/authentication.ts';
import type { Credentials } from '../services/authentication.ts';
import type { Actor } from '../auth/policy.ts';
import { grantAccess, parseScopes } from '../auth/registry-tokens.ts';
import type { RegistryTokens } from '../auth/registry-tokens.ts';
import { ociError } from '../oci/errors.ts';
import type { Err, Result } from '../result.ts';
import { quotedString } from './request-auth.ts';
import { UNAVAILABLE_MESSAGE, isUnavailable, retryLater } from './unavailable.ts';

export interface TokenRouteDependencies {
  authenticator: Authenticator;
  registryTokens: RegistryTokens;
  /** The id of the group with this path, or null. */
  resolveGroupId(path: string): Promise<number | null>;
  /**
   * May the actor (anonymous included) pull this name through a mirror route, a claimed hostname or the
   * alias path (MirrorRouting.mayPull)? Asked for the names the `<group>/<registry>/<image>` rule did not grant.
   */
  mayPullRouted?(actor: Actor, name: string, address: string, host: string): Promise<boolean>;
}

const FORM_BODY_LIMIT = 16 * 1024;

function list(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return typeof value === 'string' ? [value] : [];
}

function noStore(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
}

function unauthorized(reply: FastifyReply, service: string) {
  return noStore(reply).code(401)
    .header('www-authenticate', `Basic realm=${quotedString(service)}`)
    .send(ociError('UNAUTHORIZED', 'authentication required: invalid username, password or token'));
}

/** 401 for wrong credentials; 503 (never a 500, never a host name) when the database is unavailable. */
function refused(reply: FastifyReply, service: string, failure: Result<unknown>) {
  if (!failure.ok && isUnavailable(failure)) return unavailable(reply);
  return unauthorized(reply, service);
}

function unavailable(reply: FastifyReply) {
  return retryLater(noStore(reply)).code(503).send(ociError('UNAVAILABLE', UNAVAILABLE_MESSAGE));
}

function throttled(reply: FastifyReply, failure: Err) {
  return noStore(reply).code(429)
    .header('retry-after', String(failure.retryAfterSeconds ?? 1))
    .send(ociError('TOOMANYREQUESTS', failure.message));
}

function oauthError(reply: FastifyReply, error: 'invalid_request' | 'unsupported_grant_type', description: string) {
  return noStore(reply).code(400).send({ error, error_description: description });
}

export function tokenRoutes(app: FastifyInstance, deps: TokenRouteDependencies): void {
  const service = deps.registryTokens.service;

  async function issue(actor: Actor, scopes: string[], request: FastifyRequest) {
    const requested = parseScopes(scopes);
    const granted = await grantAccess(actor, requested, deps.resolveGroupId);
    // Mirror names (`library/alpine`): granted when a route, hostname or alias leads to a registry the
    // actor may pull from; for anonymous callers, one that allows anonymous pulls from their address.
    for (const access of requested) {
      if (!deps.mayPullRouted || granted.some((g) => g.name === access.name)) continue;
      if (!access.actions.some((action) => action === 'pull' || action === '*')) continue;
      if (await deps.mayPullRouted(actor, access.name, request.ip, request.host)) granted.push({ type: 'repository', name: access.name, actions: ['pull'] });
    }
    return { granted, issued: await deps.registryTokens.issue(actor, granted) };
  }

  // Encapsulated, so the form parser stays local to these routes.
  void app.register(async (scope) => {
    scope.setErrorHandler(async (error, request, reply) => {
      if (isUnavailable(error)) {
        request.log.warn({ err: error }, 'token request failed: the database is unavailable');
        return unavailable(reply);
      }
      throw error;
    });
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    scope.get('/auth/token', async (request, reply) => {
      const query = (request.query ?? {}) as Record<string, unknown>;
      const header = request.headers.authorization;
      const credentials: Credentials = {};
      if (header !== undefined) {
        // Only Basic here: a registry token cannot be traded for a new one.
        if (!/^basic\s/i.test(header)) return unauthorized(reply, service);
        credentials.authorization = header;
      }
      const actor = await deps.authenticator.authenticate({ ...credentials, address: request.ip }, 'registry');
      if (!actor.ok && actor.reason === 'rate_limited') return throttled(reply, actor);
      if (!actor.ok) return refused(reply, service, actor);
      const { issued } = await issue(actor.value, list(query.scope), request);
      return noStore(reply).send({ token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt });
    });

    scope.post('/auth/token', async (request, reply) => {
      const body = (request.body && typeof request.body === 'object' ? request.body : {}) as Record<string, unknown>;
      const grantType = typeof body.grant_type === 'string' ? body.grant_type : '';
      if (grantType === '') return oauthError(reply, 'invalid_request', 'grant_type is required');
      if (grantType !== 'password') return oauthError(reply, 'unsupported_grant_type', `grant_type ${grantType} is not supported; use password`);
      if (typeof body.username !== 'string' || typeof body.password !== 'string' || body.username === '' || body.password === '') {
        return oauthError(reply, 'invalid_request', 'username and password are required');
      }
      const actor = await deps.authenticator.authenticate({ username: body.username, password: body.password, address: request.ip }, 'registry');
      if (!actor.ok && actor.reason === 'rate_limited') return throttled(reply, actor);
      if (!actor.ok) return refused(reply, service, actor);
      const { granted, issued } = await issue(actor.value, list(body.scope), request);
      return noStore(reply).send({
        access_token: issued.token,
        expires_in: issued.expiresIn,
        scope: granted.map((access) => `${access.type}:${access.name}:${access.actions.join(',')}`).join(' '),
        issued_at: issued.issuedAt,
      });
    });
  });
}
