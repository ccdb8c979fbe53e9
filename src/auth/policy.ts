// Who may do what (DESIGN §5): one `can(actor, ability, subject)` for every layer.
import { ROLES } from '../db/schema.ts';
import type { AccessLevel } from '../db/schema.ts';

export const SCOPES = ['api', 'read_api', 'read_virtual_registry'] as const;
export type Scope = (typeof SCOPES)[number];

export const ABILITIES = [
  /** Pull through /v2 (registry channel); view registries, upstreams and entries (API channel). */
  'read_virtual_registry',
  'create_virtual_registry',
  'update_virtual_registry',
  'destroy_virtual_registry',
  /** Cleanup policy, members, group and deploy tokens, audit events. */
  'admin_virtual_registry',
  /** Create a new top-level group (instance subject). */
  'create_group',
  /** Manage users and see everything (instance subject). */
  'admin_instance',
] as const;
export type Ability = (typeof ABILITIES)[number];

/** Where a request came in: token scopes are checked against it. */
export type Channel = 'registry' | 'api';

export interface TokenGrant {
  id: number;
  scopes: readonly Scope[];
  expiresAt: number | null;
  revokedAt: number | null;
}

/** What a registry token (JWT) grants on one repository (`<group>/<registry>/<image>`). */
export interface RegistryAccess {
  type: 'repository';
  name: string;
  actions: readonly string[];
}

/**
 * Set on an actor that authenticated with a registry JWT: the /v2 handler allows only these repositories
 * and actions, on top of `can` (which keeps its meaning: the JWT's subject must still have the ability).
 */
type FromRegistryToken = { registryAccess?: readonly RegistryAccess[] };

export type Actor =
  /**
   * No credentials. `anonymousPull` is set for one /v2 request whose registry lets anonymous clients pull
   * (its `anonymous_pull`, from its networks: decided by the /v2 layer): it may pull from that group.
   */
  | { kind: 'anonymous'; anonymousPull?: { groupId: number; registryId: number } }
  /** Manifold itself: fills, workers, the CLI on the local database. */
  | { kind: 'system' }
  | ({
      kind: 'user';
      userId: number;
      username: string;
      admin: boolean;
      blocked: boolean;
      /** group id → access level. */
      memberships: ReadonlyMap<number, AccessLevel>;
      /** Set when the user authenticated with a personal access token (or a registry JWT minted from one). */
      token: TokenGrant | null;
      channel: Channel;
      /** Set when the request came with a console session cookie (state changes then need its CSRF token). */
      sessionId?: number;
    } & FromRegistryToken)
  | ({ kind: 'group_token'; groupId: number; accessLevel: AccessLevel; token: TokenGrant; channel: Channel } & FromRegistryToken)
  | ({ kind: 'deploy_token'; groupId: number; token: TokenGrant; channel: Channel } & FromRegistryToken);

/** Something owned by a group (group, registry, upstream, cache entry), or the instance itself. */
export type Subject = { groupId: number } | 'instance';

const MINIMUM_LEVEL: Record<Exclude<Ability, 'create_group' | 'admin_instance'>, AccessLevel> = {
  read_virtual_registry: ROLES.guest,
  create_virtual_registry: ROLES.maintainer,
  update_virtual_registry: ROLES.maintainer,
  destroy_virtual_registry: ROLES.maintainer,
  admin_virtual_registry: ROLES.owner,
};

const READS: ReadonlySet<Ability> = new Set(['read_virtual_registry']);

/** Does the token's scope allow this ability through this channel? */
function scopeAllows(scopes: readonly Scope[], ability: Ability, channel: Channel): boolean {
  if (scopes.includes('api')) return true;
  if (channel === 'registry') return ability === 'read_virtual_registry' && scopes.includes('read_virtual_registry');
  return READS.has(ability) && scopes.includes('read_api');
}

function tokenUsable(token: TokenGrant, now: number): boolean {
  return token.revokedAt === null && (token.expiresAt === null || token.expiresAt > now);
}

export function can(actor: Actor, ability: Ability, subject: Subject, now: number = Date.now()): boolean {
  switch (actor.kind) {
    case 'anonymous':
      return ability === 'read_virtual_registry' && actor.anonymousPull !== undefined && subject !== 'instance' && subject.groupId === actor.anonymousPull.groupId;
    case 'system':
      return true;
    case 'deploy_token':
      return (
        ability === 'read_virtual_registry' &&
        actor.channel === 'registry' &&
        subject !== 'instance' &&
        subject.groupId === actor.groupId &&
        tokenUsable(actor.token, now) &&
        actor.token.scopes.includes('read_virtual_registry')
      );
    case 'group_token': {
      if (!tokenUsable(actor.token, now) || !scopeAllows(actor.token.scopes, ability, actor.channel)) return false;
      if (subject === 'instance' || subject.groupId !== actor.groupId) return false;
      if (ability === 'create_group' || ability === 'admin_instance') return false;
      return actor.accessLevel >= MINIMUM_LEVEL[ability];
    }
    case 'user': {
      if (actor.blocked) return false;
      if (actor.token && (!tokenUsable(actor.token, now) || !scopeAllows(actor.token.scopes, ability, actor.channel))) return false;
      if (actor.admin) return true;
      if (ability === 'admin_instance') return false;
      if (ability === 'create_group') return true;
      if (subject === 'instance') return false;
      const level = actor.memberships.get(subject.groupId);
      return level !== undefined && level >= MINIMUM_LEVEL[ability];
    }
  }
}

/** May the actor know that the subject exists? Those who may not get not_found, never forbidden. */
export function canSee(actor: Actor, subject: Subject, now: number = Date.now()): boolean {
  switch (actor.kind) {
    case 'system':
      return true;
    case 'anonymous':
      return false;
    case 'user':
      // A blocked user, or one whose token is expired or revoked, sees nothing (not even the instance).
      if (actor.blocked || (actor.token && !tokenUsable(actor.token, now))) return false;
      return subject === 'instance' || actor.admin || actor.memberships.has(subject.groupId);
    case 'group_token':
    case 'deploy_token':
      if (!tokenUsable(actor.token, now)) return false;
      return subject === 'instance' || actor.groupId === subject.groupId;
  }
}

export const SYSTEM: Actor = { kind: 'system' };
export const ANONYMOUS: Actor = { kind: 'anonymous' };
