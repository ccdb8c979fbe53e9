// From a request to an actor, and the registry-side access checks built on it (DESIGN §5).
import type { FastifyRequest } from 'fastify';
import type { Authenticator } from '../auth/authenticate.ts';
import { can } from '../auth/policy.ts';
import type { Actor, Channel } from '../auth/policy.ts';
import type { Result } from '../result.ts';

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Authenticates the request's Authorization or PRIVATE-TOKEN header, or else (on the API) the console
 * session whose secret is `session`; none at all is the anonymous actor.
 */
export async function actorFor(request: FastifyRequest, authenticator: Authenticator, channel: Channel, session?: string): Promise<Result<Actor>> {
  return authenticator.authenticate({
    authorization: single(request.headers.authorization),
    privateToken: single(request.headers['private-token']),
    session,
  }, channel);
}

/**
 * The registry token's part of an access decision: true when the actor's JWT lists `action` on
 * `repository`, or when the actor did not come from a JWT (Basic or token credentials on /v2: then the
 * policy alone decides). False for a failed authentication.
 */
export function jwtGrants(actor: Result<Actor> | Actor, repository: string, action: string): boolean {
  const resolved = 'ok' in actor ? (actor.ok ? actor.value : null) : actor;
  if (resolved === null) return false;
  if (!('registryAccess' in resolved) || resolved.registryAccess === undefined) return true;
  return resolved.registryAccess.some((entry) => entry.type === 'repository' && entry.name === repository && entry.actions.includes(action));
}

/**
 * "May this request pull `<group>/<registry>/<image>`?" in one call, for the /v2 handler that has
 * resolved the group of the name's first component: the JWT (if any) must grant the pull and the
 * actor must still have read_virtual_registry on the group.
 */
export function mayPull(actor: Result<Actor> | Actor, repository: string, groupId: number): boolean {
  const resolved = 'ok' in actor ? (actor.ok ? actor.value : null) : actor;
  if (resolved === null || !jwtGrants(resolved, repository, 'pull')) return false;
  const onRegistry = resolved.kind === 'user' || resolved.kind === 'group_token' || resolved.kind === 'deploy_token' ? { ...resolved, channel: 'registry' as const } : resolved;
  return can(onRegistry, 'read_virtual_registry', { groupId });
}

/** The token realm clients are sent to: the configured public URL, or this request's own origin. */
export function tokenRealm(request: FastifyRequest, publicUrl?: string): string {
  const base = publicUrl ? publicUrl.replace(/\/+$/, '') : `${request.protocol}://${request.host}`;
  return `${base}/auth/token`;
}

/**
 * The `WWW-Authenticate` value of a 401 on /v2 (token.md "How to authenticate"): realm and service, plus the
 * scope the client should ask for and `error="insufficient_scope"` when its token lacked it.
 */
export function bearerChallenge(options: { realm: string; service: string; scope?: string; error?: 'invalid_token' | 'insufficient_scope' }): string {
  const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;
  const parts = [`realm=${quote(options.realm)}`, `service=${quote(options.service)}`];
  if (options.scope) parts.push(`scope=${quote(options.scope)}`);
  if (options.error) parts.push(`error=${quote(options.error)}`);
  return `Bearer ${parts.join(',')}`;
}
