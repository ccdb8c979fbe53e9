// From a request to an actor, and the registry-side access checks built on it (DESIGN §5).
import type { FastifyRequest } from 'fastify';
import type { Authenticator } from '../services/authentication.ts';
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
    address: request.ip,
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

export interface RealmOptions {
  /** `server.publicUrl`: when set, the realm is always on it. */
  publicUrl?: string;
  /** `server.allowedHosts`: `host` (any port) or `host:port`, lower case. */
  allowedHosts: readonly string[];
}

/** Is this Host header (`host` or `host:port`) one of the configured names? */
export function isAllowedHost(host: string, allowedHosts: readonly string[]): boolean {
  const wanted = host.toLowerCase();
  const withoutPort = wanted.replace(/:[0-9]+$/, '');
  return allowedHosts.some((allowed) => allowed === wanted || allowed === withoutPort);
}

/** `address:port` of the local end of the connection, IPv6 in brackets, IPv4-mapped as IPv4. */
function localOrigin(request: FastifyRequest): string {
  const socket = request.raw.socket;
  const address = (socket.localAddress ?? '127.0.0.1').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  return `${address.includes(':') ? `[${address}]` : address}:${socket.localPort ?? 0}`;
}

/**
 * The token realm clients are sent to (and send their credentials to), decided in one place: the
 * configured public URL; else the request's Host when it is an allowed host; else the address the client
 * connected to. Never an arbitrary Host: a forged one would send the next client's password elsewhere
 * (a cache poisoned in between) and could inject parameters into the challenge.
 */
export function tokenRealm(request: FastifyRequest, options: RealmOptions): string {
  if (options.publicUrl) return `${options.publicUrl.replace(/\/+$/, '')}/auth/token`;
  const host = isAllowedHost(request.host, options.allowedHosts) ? request.host : localOrigin(request);
  return `${request.protocol}://${host}/auth/token`;
}

/**
 * An RFC 9110 quoted-string: `"` and `\` escaped. Only for values that are already header-safe (printable
 * Latin-1): the caller validates what a client wrote (the repository name) before it gets here.
 */
export function quotedString(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The `WWW-Authenticate` value of a 401 on /v2 (token.md "How to authenticate"): realm and service, plus the
 * scope the client should ask for and `error="insufficient_scope"` when its token lacked it.
 */
export function bearerChallenge(options: { realm: string; service: string; scope?: string; error?: 'invalid_token' | 'insufficient_scope' }): string {
  const quote = quotedString;
  const parts = [`realm=${quote(options.realm)}`, `service=${quote(options.service)}`];
  if (options.scope) parts.push(`scope=${quote(options.scope)}`);
  if (options.error) parts.push(`error=${quote(options.error)}`);
  return `Bearer ${parts.join(',')}`;
}
