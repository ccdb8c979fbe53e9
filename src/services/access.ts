// Turning policy answers into results (DESIGN §5, §6): what an actor may not see is not_found, what it
// sees but may not do is forbidden, and an anonymous caller is asked to authenticate.
import { can, canSee } from '../auth/policy.ts';
import type { Ability, Actor, Subject } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import type { Group } from '../db/schema.ts';
import { err, ok } from '../result.ts';
import type { Err, Result } from '../result.ts';
import { parseId } from './validation.ts';

export function unauthenticated(): Err {
  return err('unauthorized', 'authentication required');
}

/** Refusal of a visible subject: anonymous callers are told to authenticate, others are forbidden. */
export function denied(actor: Actor, message = 'you are not allowed to do this'): Err {
  return actor.kind === 'anonymous' ? unauthenticated() : err('forbidden', message);
}

export function notFound(what: string): Err {
  return err('not_found', `${what} not found`);
}

/** One check for "may this actor do this to that": not_found, unauthorized, forbidden or ok. */
export function authorize(actor: Actor, ability: Ability, subject: Subject, what = 'group'): Result<undefined> {
  if (actor.kind === 'anonymous') return unauthenticated();
  if (!canSee(actor, subject)) return notFound(what);
  if (!can(actor, ability, subject)) return denied(actor);
  return ok();
}

/**
 * The group named by `rawGroupId` (an id from a path or body), when the actor may do `ability` on it.
 * Malformed ids, unknown groups and groups the actor cannot see are all not_found.
 */
export async function authorizeGroup(db: Db, actor: Actor, rawGroupId: unknown, ability: Ability): Promise<Result<Group>> {
  if (actor.kind === 'anonymous') return unauthenticated();
  const groupId = parseId(rawGroupId);
  if (groupId === null || !canSee(actor, { groupId })) return notFound('group');
  const group = await db.selectFrom('groups').selectAll().where('id', '=', groupId).executeTakeFirst();
  if (!group) return notFound('group');
  if (!can(actor, ability, { groupId })) return denied(actor);
  return ok(group);
}

/**
 * The row of a group's resource named by `rawId` (an id from a path), loaded by `load`, when the actor may
 * do `ability` on it. Anonymous callers are asked to authenticate before anything is loaded; malformed ids,
 * unknown rows and rows the actor cannot see are all not_found, named `what`.
 */
export async function authorizeFound<T extends { group_id: number }>(actor: Actor, rawId: unknown, ability: Ability, what: string, load: (id: number) => Promise<T | undefined>): Promise<Result<T>> {
  if (actor.kind === 'anonymous') return unauthenticated();
  const id = parseId(rawId);
  const row = id === null ? undefined : await load(id);
  if (!row) return notFound(what);
  const allowed = authorize(actor, ability, { groupId: row.group_id }, what);
  return allowed.ok ? ok(row) : allowed;
}

/** The registry named by `rawId` (its id and group), when the actor may do `ability` on it (see authorizeFound). */
export function authorizeRegistry(db: Db, actor: Actor, rawId: unknown, ability: Ability): Promise<Result<{ id: number; group_id: number }>> {
  return authorizeFound(actor, rawId, ability, 'registry', (id) => db.selectFrom('registries').select(['id', 'group_id']).where('id', '=', id).executeTakeFirst());
}

/** The upstream named by `rawId` (its id and group), when the actor may do `ability` on it (see authorizeFound). */
export function authorizeUpstream(db: Db, actor: Actor, rawId: unknown, ability: Ability): Promise<Result<{ id: number; group_id: number }>> {
  return authorizeFound(actor, rawId, ability, 'upstream', (id) => db.selectFrom('upstreams').select(['id', 'group_id']).where('id', '=', id).executeTakeFirst());
}
