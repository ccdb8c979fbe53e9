// Registry tokens (DESIGN §5; distribution docs spec/auth/token.md and jwt.md): short-lived JWTs the token
// endpoint issues and /v2 verifies. They carry issuer, audience (the service), subject, validity and the
// access list; nothing else is trusted from them (the subject's current state is re-read on use).
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { z } from 'zod';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { isValidName } from '../oci/reference.ts';
import { BoundedCache } from '../lib/bounded-cache.ts';
import type { CacheStats } from '../lib/bounded-cache.ts';
import { SIGNING_ALGORITHM } from './keys.ts';
import type { SigningKeys } from './keys.ts';
import { can } from './policy.ts';
import type { Actor, RegistryAccess } from './policy.ts';

/** What a token grants on one repository. Only `pull` is ever granted: Manifold is read-only. */
export type GrantedAccess = RegistryAccess;

/** One `scope` entry a client asked for (`repository:<name>:<actions>`). */
export interface RequestedAccess {
  type: 'repository';
  name: string;
  actions: string[];
}

/** Who a registry token was issued to: `sub` is `user:<id>[:token:<id>]`, `group_token:<id>`, `deploy_token:<id>` or empty. */
export type TokenSubject =
  | { kind: 'anonymous' }
  | { kind: 'user'; id: number; tokenId: number | null }
  | { kind: 'group_token'; id: number }
  | { kind: 'deploy_token'; id: number };

/** Tolerated clock difference between replicas when checking exp/nbf/iat. */
const CLOCK_TOLERANCE_SECONDS = 30;

/** Verified tokens kept (a pull's requests carry the same token): in number, and in bytes of the tokens. */
const VERIFIED_MAX_ENTRIES = 10_000;
const VERIFIED_MAX_BYTES = 16 * 1024 * 1024;
/** The longest a verified token is kept, whatever its exp says. */
const VERIFIED_MAX_MS = 24 * 60 * 60 * 1000;

type Verified = { subject: TokenSubject; access: GrantedAccess[] };

const accessClaim = z.array(z.object({ type: z.literal('repository'), name: z.string(), actions: z.array(z.string()) }));

export function subjectOf(actor: Actor): TokenSubject {
  switch (actor.kind) {
    case 'user':
      return { kind: 'user', id: actor.userId, tokenId: actor.token?.id ?? null };
    case 'group_token':
      return { kind: 'group_token', id: actor.token.id };
    case 'deploy_token':
      return { kind: 'deploy_token', id: actor.token.id };
    default:
      return { kind: 'anonymous' };
  }
}

function encodeSubject(subject: TokenSubject): string {
  switch (subject.kind) {
    case 'anonymous':
      return '';
    case 'user':
      return subject.tokenId === null ? `user:${subject.id}` : `user:${subject.id}:token:${subject.tokenId}`;
    default:
      return `${subject.kind}:${subject.id}`;
  }
}

function decodeSubject(sub: string): TokenSubject | null {
  if (sub === '') return { kind: 'anonymous' };
  const user = /^user:([1-9][0-9]*)(?::token:([1-9][0-9]*))?$/.exec(sub);
  if (user) return { kind: 'user', id: Number(user[1]), tokenId: user[2] ? Number(user[2]) : null };
  const token = /^(group_token|deploy_token):([1-9][0-9]*)$/.exec(sub);
  if (token) return { kind: token[1] as 'group_token' | 'deploy_token', id: Number(token[2]) };
  return null;
}

export interface IssuedToken {
  token: string;
  /** Seconds. */
  expiresIn: number;
  /** RFC 3339. */
  issuedAt: string;
}

export class RegistryTokens {
  readonly #keys: SigningKeys;
  readonly #issuer: string;
  readonly #service: string;
  readonly #ttlSeconds: number;
  readonly #now: () => number;
  readonly #verified: BoundedCache<Verified>;

  constructor(deps: { keys: SigningKeys; issuer: string; service: string; ttlSeconds: number; now?: () => number }) {
    this.#keys = deps.keys;
    this.#issuer = deps.issuer;
    this.#service = deps.service;
    this.#ttlSeconds = deps.ttlSeconds;
    this.#now = deps.now ?? Date.now;
    this.#verified = new BoundedCache({ maxEntries: VERIFIED_MAX_ENTRIES, maxBytes: VERIFIED_MAX_BYTES, sizeOf: (_value, jwt) => jwt.length + 256, ttlMs: VERIFIED_MAX_MS, now: this.#now });
  }

  /** The verified tokens in memory (for /metrics). */
  get verifiedMemory(): CacheStats {
    return this.#verified.stats;
  }

  get service(): string {
    return this.#service;
  }

  async issue(actor: Actor, access: GrantedAccess[]): Promise<IssuedToken> {
    const issuedAtMs = this.#now();
    const issuedAt = Math.floor(issuedAtMs / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: 'JWT', kid: this.#keys.keyId })
      .setIssuer(this.#issuer)
      .setAudience(this.#service)
      .setSubject(encodeSubject(subjectOf(actor)))
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + this.#ttlSeconds)
      .setJti(randomUUID())
      .sign(this.#keys.privateKey);
    // RFC 3339 without fractional seconds, as distribution writes it.
    return { token, expiresIn: this.#ttlSeconds, issuedAt: new Date(issuedAt * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  }

  /** Refuses anything not signed by our key, expired, not yet valid, or for another issuer or audience. */
  async verify(jwt: string): Promise<Result<Verified>> {
    const known = this.#verified.get(jwt);
    if (known) return ok(known);
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(jwt, this.#keys.publicKey, {
        algorithms: [SIGNING_ALGORITHM],
        issuer: this.#issuer,
        audience: this.#service,
        requiredClaims: ['sub', 'exp', 'nbf', 'iat', 'jti'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(this.#now()),
      }));
    } catch {
      return err('unauthorized', 'invalid registry token');
    }
    const subject = typeof payload.sub === 'string' ? decodeSubject(payload.sub) : null;
    const access = accessClaim.safeParse(payload.access ?? []);
    if (!subject || !access.success) return err('unauthorized', 'invalid registry token');
    const verified: Verified = { subject, access: access.data };
    // A token's signature and claims cannot change: it is checked once, and kept until it expires.
    const expiresAt = (payload.exp as number + CLOCK_TOLERANCE_SECONDS) * 1000;
    this.#verified.set(jwt, verified, { ttlMs: expiresAt - this.#now() });
    return ok(verified);
  }
}

/**
 * Parses the `scope` parameters of a token request: `repository:<name>:<actions>`, several per parameter
 * when separated by spaces. The name may contain `/` (and `:` with a registry host); actions are comma
 * separated. Other resource types (`registry:catalog:*`, classes like `repository(plugin)`) are ignored.
 * Scopes for the same repository are merged.
 */
export function parseScopes(scopeParams: readonly string[]): RequestedAccess[] {
  const byName = new Map<string, Set<string>>();
  for (const scope of scopeParams.flatMap((param) => param.split(' '))) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first <= 0 || last === first) continue;
    if (scope.slice(0, first) !== 'repository') continue;
    const name = scope.slice(first + 1, last);
    const actions = scope.slice(last + 1).split(',').filter((action) => action !== '');
    if (name === '' || actions.length === 0) continue;
    const known = byName.get(name) ?? new Set<string>();
    for (const action of actions) known.add(action);
    byName.set(name, known);
  }
  return [...byName].map(([name, actions]) => ({ type: 'repository', name, actions: [...actions] }));
}

/** `<group>/<registry>/<image>`: the group's path, or null when the name cannot be one of ours. */
export function groupPathOf(repository: string): string | null {
  if (!isValidName(repository)) return null;
  const parts = repository.split('/');
  return parts.length >= 3 ? parts[0] : null;
}

/**
 * The part of `requested` the actor gets: `pull` on repositories of groups where it may
 * read_virtual_registry, nothing else. Unknown groups and ones it may not see are left out without error
 * (the token simply lacks access, as the token spec allows).
 */
export async function grantAccess(actor: Actor, requested: readonly RequestedAccess[], resolveGroup: (path: string) => Promise<number | null>): Promise<GrantedAccess[]> {
  // Pulls are judged on the registry channel, whatever channel the actor was built for.
  const puller: Actor = actor.kind === 'user' || actor.kind === 'group_token' || actor.kind === 'deploy_token' ? { ...actor, channel: 'registry' } : actor;
  const granted: GrantedAccess[] = [];
  const groupIds = new Map<string, number | null>();
  for (const request of requested) {
    if (request.type !== 'repository' || !request.actions.some((action) => action === 'pull' || action === '*')) continue;
    const path = groupPathOf(request.name);
    if (path === null) continue;
    if (!groupIds.has(path)) groupIds.set(path, await resolveGroup(path));
    const groupId = groupIds.get(path);
    if (groupId === null || groupId === undefined) continue;
    if (can(puller, 'read_virtual_registry', { groupId })) granted.push({ type: 'repository', name: request.name, actions: ['pull'] });
  }
  return granted;
}
