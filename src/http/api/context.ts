// What every route of the management API shares: the request's actor, sending a service Result,
// pagination headers, If-Unmodified-Since on deletes, and group ids that may be paths.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../services/authentication.ts';
import type { Actor } from '../../auth/policy.ts';
import { err, ok } from '../../result.ts';
import type { Result } from '../../result.ts';
import type { GroupService } from '../../services/groups.ts';
import type { Page } from '../../services/validation.ts';
import { actorFor } from '../request-auth.ts';
import { SESSION_COOKIE, csrfTokenMatches } from '../../services/sessions.ts';
import { problem, sendFailure, sendProblem } from './problems.ts';

const actors = new WeakMap<FastifyRequest, Actor>();

/** The authenticated actor of a request that passed `authenticate`. */
export function actorOf(request: FastifyRequest): Actor {
  const actor = actors.get(request);
  if (!actor) throw new Error('no actor: the route is not behind the api authentication hook');
  return actor;
}

/**
 * The onRequest hook of every non-public route: credentials on the `api` channel. Missing or wrong
 * credentials are 401 with a Basic challenge. Deploy tokens are valid credentials without API access
 * (they pull only), as are tokens with neither `api` nor `read_api`: 403 on every route, whatever the
 * resource, so nothing about resources leaks to them.
 */
export function authenticationHook(authenticator: Authenticator) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const session = sessionSecretOf(request);
    const authenticated = await actorFor(request, authenticator, 'api', session);
    if (!authenticated.ok && authenticated.reason === 'unavailable') return sendFailure(request, reply, authenticated);
    if (!authenticated.ok && authenticated.reason === 'rate_limited') return sendFailure(request, reply, authenticated);
    if (!authenticated.ok) return sendProblem(reply, problem(401, 'unauthorized', 'invalid credentials'));
    const actor = authenticated.value;
    if (actor.kind === 'anonymous') return sendProblem(reply, problem(401, 'unauthorized', 'authentication required: give a token (Authorization: Bearer, PRIVATE-TOKEN) or Basic username and password'));
    if (actor.kind === 'deploy_token') return sendProblem(reply, problem(403, 'forbidden', 'deploy tokens may only pull images; they have no API access'));
    if ((actor.kind === 'user' || actor.kind === 'group_token') && actor.token && !actor.token.scopes.some((scope) => scope === 'api' || scope === 'read_api')) {
      return sendProblem(reply, problem(403, 'forbidden', 'the token has neither the api nor the read_api scope'));
    }
    // A session cookie is sent by the browser on its own: a change needs the CSRF token the page holds.
    if (actor.kind === 'user' && actor.sessionId !== undefined && !SAFE_METHODS.has(request.method) && !csrfTokenMatches(session ?? '', single(request.headers[CSRF_HEADER]))) {
      return sendProblem(reply, problem(403, 'csrf', `the ${CSRF_HEADER} header is missing or wrong: with a session cookie, every change needs the session's CSRF token`));
    }
    actors.set(request, actor);
  };
}

export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The console session cookie's secret, when the request carries one (and no other credentials count). */
export function sessionSecretOf(request: FastifyRequest): string | undefined {
  const value = request.cookies?.[SESSION_COOKIE];
  return value === undefined || value === '' ? undefined : value;
}

/** Sends a successful value (with `status`) or the failure as a problem. */
export function sendResult<T>(request: FastifyRequest, reply: FastifyReply, result: Result<T, string>, status = 200): FastifyReply {
  if (!result.ok) return sendFailure(request, reply, result);
  if (status === 204) return reply.code(204).send();
  return reply.code(status).send(result.value);
}

/** A single resource with its Last-Modified (the validator clients give back in If-Unmodified-Since). */
export function sendResource<T extends { updated_at?: number; created_at?: number }>(request: FastifyRequest, reply: FastifyReply, result: Result<T, string>, status = 200): FastifyReply {
  if (result.ok) {
    const modified = result.value.updated_at ?? result.value.created_at;
    if (modified !== undefined) reply.header('last-modified', new Date(modified).toUTCString());
  }
  return sendResult(request, reply, result, status);
}

/**
 * A page of a list: the items as the body, and `X-Total`, `X-Total-Pages`, `X-Page`, `X-Per-Page`,
 * `X-Next-Page`, `X-Prev-Page` and an RFC 8288 `Link` (first, prev, next, last) as headers.
 */
export function sendPage<T>(request: FastifyRequest, reply: FastifyReply, result: Result<Page<T>, string>): FastifyReply {
  if (!result.ok) return sendFailure(request, reply, result);
  const { items, total, page, per_page: perPage } = result.value;
  const lastPage = Math.max(1, Math.ceil(total / perPage));
  reply.header('x-total', String(total)).header('x-total-pages', String(lastPage))
    .header('x-page', String(page)).header('x-per-page', String(perPage))
    .header('x-next-page', page < lastPage ? String(page + 1) : '')
    .header('x-prev-page', page > 1 ? String(Math.min(page - 1, lastPage)) : '');
  const link = (target: number, rel: string) => `<${pageUrl(request, target, perPage)}>; rel="${rel}"`;
  const links = [link(1, 'first')];
  if (page > 1) links.push(link(Math.min(page - 1, lastPage), 'prev'));
  if (page < lastPage) links.push(link(page + 1, 'next'));
  links.push(link(lastPage, 'last'));
  reply.header('link', links.join(', '));
  return reply.code(200).send(items);
}

function pageUrl(request: FastifyRequest, page: number, perPage: number): string {
  const url = new URL(request.url, `${request.protocol}://${request.host}`);
  url.searchParams.set('page', String(page));
  url.searchParams.set('per_page', String(perPage));
  return url.toString();
}

/** Pages a short list a service returns whole (registries of a group, links of a registry). */
export function pageOf<T>(result: Result<T[]>, pagination: { page: number; per_page: number }): Result<Page<T>> {
  if (!result.ok) return result;
  const start = (pagination.page - 1) * pagination.per_page;
  return ok({ items: result.value.slice(start, start + pagination.per_page), total: result.value.length, page: pagination.page, per_page: pagination.per_page });
}

/**
 * If-Unmodified-Since on a delete: `load` reads the resource as the actor sees it, only when the header
 * holds a date (an unparseable one is ignored, as RFC 9110 says). Fails with `precondition_failed` (412)
 * when the resource changed after that date (HTTP dates have whole seconds). When the read fails the
 * delete goes on and gives its own answer (404, 403...), exactly as without the header.
 */
export async function checkUnmodifiedSince(
  request: FastifyRequest,
  load: () => Promise<Result<{ updated_at?: number; created_at?: number }>>,
): Promise<Result<undefined, string>> {
  const header = request.headers['if-unmodified-since'];
  if (typeof header !== 'string') return ok();
  const since = Date.parse(header);
  if (Number.isNaN(since)) return ok();
  const current = await load();
  if (!current.ok) return ok();
  const modified = current.value.updated_at ?? current.value.created_at ?? 0;
  if (Math.floor(modified / 1000) * 1000 > since) {
    return err('precondition_failed', `the resource was modified at ${new Date(modified).toUTCString()}, after If-Unmodified-Since`);
  }
  return ok();
}

/**
 * The numeric id of a group named by id or by path (`acme`, URL-encoded when needed). A path the
 * actor cannot see is not found, exactly as an unknown id is.
 */
export async function groupIdOf(groups: GroupService, actor: Actor, raw: string): Promise<Result<number | string>> {
  if (/^[0-9]+$/.test(raw)) return ok(raw);
  const group = await groups.getByPath(actor, raw);
  return group.ok ? ok(group.value.id) : group;
}

/**
 * Some services answer `unauthorized` for "authenticated but not allowed" (the cache entry service,
 * written for the pull path); on the API an authenticated caller who may see the resource is forbidden.
 */
export function forbiddenNotUnauthorized<T>(result: Result<T>): Result<T> {
  if (!result.ok && result.reason === 'unauthorized') return err('forbidden', result.message);
  return result;
}
