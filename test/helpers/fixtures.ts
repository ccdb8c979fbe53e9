// Rows for tests of the layers above the database, inserted directly (the services have their own tests).
import type { Db } from '../../src/db/connect.ts';
import { ROLES } from '../../src/db/schema.ts';
import type { AccessLevel, RoleName } from '../../src/db/schema.ts';
import type { Actor, Channel, Scope } from '../../src/auth/policy.ts';

let counter = 0;
/** A name no other test of this run uses. */
export const uniqueName = (prefix: string) => `${prefix}${process.pid}x${++counter}`;
const unique = uniqueName;

export async function insertGroup(db: Db, path = unique('group')) {
  const now = Date.now();
  return db.insertInto('groups').values({ path, name: path, created_at: now, updated_at: now }).returningAll().executeTakeFirstOrThrow();
}

export async function insertUser(db: Db, options: { username?: string; admin?: boolean; blocked?: boolean } = {}) {
  const now = Date.now();
  return db.insertInto('users').values({
    username: options.username ?? unique('user'),
    email: null,
    password_hash: 'unusable',
    admin: options.admin ? 1 : 0,
    blocked: options.blocked ? 1 : 0,
    created_at: now,
    updated_at: now,
  }).returningAll().executeTakeFirstOrThrow();
}

export async function insertMembership(db: Db, groupId: number, userId: number, role: RoleName) {
  const now = Date.now();
  await db.insertInto('memberships').values({ group_id: groupId, user_id: userId, access_level: ROLES[role], created_at: now, updated_at: now }).execute();
}

export async function insertUpstream(db: Db, groupId: number, values: { url?: string; name?: string; cacheValidityHours?: number } = {}) {
  const now = Date.now();
  return db.insertInto('upstreams').values({
    group_id: groupId,
    name: values.name ?? unique('upstream'),
    url: values.url ?? `https://${unique('registry')}.example.com`,
    cache_validity_hours: values.cacheValidityHours ?? 24,
    created_at: now,
    updated_at: now,
  }).returningAll().executeTakeFirstOrThrow();
}

/** An actor for a user with the given memberships, as authentication would build it. */
export function userActor(userId: number, memberships: [number, AccessLevel][] = [], options: { admin?: boolean; scopes?: Scope[]; channel?: Channel } = {}): Actor {
  return {
    kind: 'user',
    userId,
    username: `user${userId}`,
    admin: options.admin ?? false,
    blocked: false,
    memberships: new Map(memberships),
    token: options.scopes ? { id: 1, scopes: options.scopes, expiresAt: null, revokedAt: null } : null,
    channel: options.channel ?? 'registry',
  };
}
