// The console's sign-in (issue 20): POST /session checks a username and password (or a personal token)
// and sets the session cookie; GET /session says who is signed in and gives the CSRF token; DELETE
// /session signs out. The cookie is HttpOnly, SameSite=Strict, limited to /api/v1, and Secure behind TLS.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Actor } from '../../../auth/policy.ts';
import { roleName } from '../../../services/memberships.ts';
import { err, ok } from '../../../result.ts';
import type { Result } from '../../../result.ts';
import { SESSION_COOKIE, csrfTokenOf } from '../../../services/sessions.ts';
import type { ApiInstance, ResolvedApiDeps } from '../index.ts';
import { API_PREFIX } from '../prefix.ts';
import { actorOf, sendResult, sessionSecretOf } from '../context.ts';
import { errorResponses, noContent } from '../openapi.ts';
import { problem, sendFailure, sendProblem } from '../problems.ts';
import { sessionSchema, signInBody } from '../schemas.ts';

const tags = ['session'];

type SessionBody = z.output<typeof sessionSchema>;
type UserActor = Extract<Actor, { kind: 'user' }>;

/** The public part: signing in needs no credentials but those in the body. */
export function signInRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  app.post('/session', {
    schema: {
      summary: 'Sign in to the console: sets the session cookie and returns the CSRF token', tags, security: [], body: signInBody,
      response: { 201: sessionSchema, ...errorResponses(400) },
    },
  }, async (request, reply) => {
    const { username, password, token } = request.body;
    const byToken = token !== undefined && token !== '';
    if (!byToken && (!username || !password)) {
      const errors: Record<string, string[]> = {};
      if (!username) errors.username = ['is required'];
      if (!password) errors.password = ['is required'];
      return sendProblem(reply, problem(400, 'invalid', 'give a username and a password, or a token', errors));
    }
    // Throttled like every other sign-in (per request.ip and username, src/auth/login-throttle.ts).
    const authenticated = byToken
      ? await deps.authenticator.authenticate({ privateToken: token, address: request.ip }, 'api')
      : await deps.authenticator.authenticate({ username, password, address: request.ip }, 'api');
    if (!authenticated.ok && authenticated.reason === 'rate_limited') return sendFailure(request, reply, authenticated);
    if (!authenticated.ok || authenticated.value.kind === 'anonymous') {
      return sendProblem(reply, problem(401, 'unauthorized', 'sign-in refused', byToken ? { token: ['is not a valid token'] } : { password: ['wrong username or password'] }));
    }
    const actor = authenticated.value;
    if (actor.kind !== 'user') return sendProblem(reply, problem(403, 'forbidden', 'only users sign in to the console: group and deploy tokens have no session', { token: ['is not a personal access token'] }));
    if (actor.token && !actor.token.scopes.some((scope) => scope === 'api' || scope === 'read_api')) {
      return sendProblem(reply, problem(403, 'forbidden', 'the token has neither the api nor the read_api scope', { token: ['needs the api or read_api scope'] }));
    }
    const started = await deps.sessionService.start(actor);
    if (!started.ok) return sendResult(request, reply, started);
    const user = await deps.userService.get(actor, actor.userId);
    if (!user.ok) return sendResult(request, reply, user);
    reply.setCookie(SESSION_COOKIE, started.value.secret, {
      path: API_PREFIX,
      httpOnly: true,
      sameSite: 'strict',
      secure: behindTls(request, deps.publicUrl),
      maxAge: Math.max(1, Math.floor((started.value.expiresAt - Date.now()) / 1000)),
    });
    return reply.code(201).send(sessionBody(deps, actor, user.value, started.value.csrfToken, started.value.expiresAt));
  });
}

/** The part behind the api authentication (a session cookie, or any other credentials for GET). */
export function sessionRoutes(app: ApiInstance, deps: ResolvedApiDeps): void {
  app.get('/session', {
    schema: { summary: 'The console session of this request: its user and CSRF token', tags, response: { 200: sessionSchema, ...errorResponses(404) } },
  }, async (request, reply) => {
    const current = await currentSession(request, deps);
    return sendResult(request, reply, current);
  });

  app.delete('/session', {
    schema: { summary: 'Sign out: the session ends on every replica and its cookie is cleared', tags, response: { 204: noContent, ...errorResponses(404) } },
  }, async (request, reply) => {
    const actor = actorOf(request);
    if (actor.kind !== 'user' || actor.sessionId === undefined) return sendResult(request, reply, noSession());
    const ended = await deps.sessionService.end(actor.sessionId);
    if (!ended.ok) return sendResult(request, reply, ended);
    clearCookie(reply, request, deps.publicUrl);
    return sendResult(request, reply, ok(), 204);
  });
}

async function currentSession(request: FastifyRequest, deps: ResolvedApiDeps): Promise<Result<SessionBody, string>> {
  const actor = actorOf(request);
  const secret = sessionSecretOf(request);
  if (actor.kind !== 'user' || actor.sessionId === undefined || secret === undefined) return noSession();
  const [user, expiresAt] = await Promise.all([deps.userService.get(actor, actor.userId), deps.sessionService.expiresAt(actor.sessionId)]);
  if (!user.ok) return user;
  if (!expiresAt.ok) return expiresAt;
  return ok(sessionBody(deps, actor, user.value, csrfTokenOf(secret), expiresAt.value));
}

function sessionBody(deps: ResolvedApiDeps, actor: UserActor, user: SessionBody['user'], csrfToken: string, expiresAt: number): SessionBody {
  return {
    user,
    csrf_token: csrfToken,
    expires_at: expiresAt,
    idle_timeout_seconds: Math.floor(deps.sessionService.times.idleMs / 1000),
    scopes: actor.token ? [...actor.token.scopes] : null,
    memberships: [...actor.memberships].map(([groupId, level]) => ({ group_id: groupId, role: roleName(level), access_level: level })),
  };
}

function noSession() {
  return err('not_found', 'this request has no console session (it did not come with a session cookie)');
}

/** Secure cookies when the client reached us over TLS (directly, or through a trusted proxy) or the public URL is https. */
function behindTls(request: FastifyRequest, publicUrl: string | undefined): boolean {
  return request.protocol === 'https' || (publicUrl?.startsWith('https:') ?? false);
}

function clearCookie(reply: FastifyReply, request: FastifyRequest, publicUrl: string | undefined): void {
  reply.clearCookie(SESSION_COOKIE, { path: API_PREFIX, httpOnly: true, sameSite: 'strict', secure: behindTls(request, publicUrl) });
}
