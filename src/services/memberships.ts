// Group members (DESIGN §1, §5): owners (admin_virtual_registry) add, re-role and remove members; every
// member may list them. A group never loses its last owner.
import { sql } from 'kysely';
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import { ROLES } from '../db/schema.ts';
import type { AccessLevel, RoleName } from '../db/schema.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeGroup, notFound } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, transact } from './database.ts';
import { offsetOf, paginationSchema, validate } from './validation.ts';
import type { Page } from './validation.ts';

export const ROLE_NAMES = Object.keys(ROLES) as RoleName[];

export const roleSchema = z.enum(ROLE_NAMES as [RoleName, ...RoleName[]], { error: `must be one of ${ROLE_NAMES.join(', ')}` });

export function roleName(level: number): RoleName {
  return ROLE_NAMES.find((name) => ROLES[name] === level) ?? 'guest';
}

const idSchema = z.coerce.number('must be an id').int('must be an id').positive('must be an id');

/** Inputs name their group with `group_id`, checked by authorizeGroup before the rest is validated. */
type GroupScoped = { group_id: number | string };

const memberInput = z.object({ user_id: idSchema });

const addSchema = z.object({
  user_id: idSchema.optional(),
  username: z.string('must be a string').min(1, 'is required').max(255).optional(),
  role: roleSchema,
}).refine((input) => (input.user_id === undefined) !== (input.username === undefined), {
  message: 'give either user_id or username', path: ['user_id'],
});
const changeRoleSchema = memberInput.extend({ role: roleSchema });

export interface MembershipView {
  group_id: number;
  user_id: number;
  username: string;
  role: RoleName;
  access_level: AccessLevel;
  created_at: number;
  updated_at: number;
}

const LAST_OWNER = 'a group must keep at least one owner';
const alreadyMember = () => err('conflict', 'the user is already a member of this group');

/**
 * Serialises changes to a group's memberships: a no-op update takes the group row's lock on PostgreSQL and
 * the write lock on SQLite, so two concurrent demotions cannot both see "another owner is left".
 */
export async function lockGroup(db: Db, groupId: number): Promise<boolean> {
  const result = await db.updateTable('groups').set((eb) => ({ updated_at: eb.ref('updated_at') })).where('id', '=', groupId).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

export async function countOwners(db: Db, groupId: number): Promise<number> {
  const { owners } = await db.selectFrom('memberships').select((eb) => eb.fn.countAll<number>().as('owners'))
    .where('group_id', '=', groupId).where('access_level', '=', ROLES.owner).executeTakeFirstOrThrow();
  return Number(owners);
}

export class MembershipService {
  readonly #db: Db;
  readonly #changes: ChangeFeed;

  constructor(deps: { db: Db; changes: ChangeFeed }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
  }

  /** Every member of the group may see who else is. */
  async list(actor: Actor, input: GroupScoped & z.input<typeof paginationSchema>): Promise<Result<Page<MembershipView>>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'read_virtual_registry'));
    if (!group.ok) return group;
    const groupId = group.value.id;
    const parsed = validate(paginationSchema, input);
    if (!parsed.ok) return parsed;
    const pagination = parsed.value;
    return guarded(async () => {
      const [{ total }, rows] = await Promise.all([
        this.#db.selectFrom('memberships').select((eb) => eb.fn.countAll<number>().as('total')).where('group_id', '=', groupId).executeTakeFirstOrThrow(),
        this.#members().where('memberships.group_id', '=', groupId).orderBy('memberships.id')
          .limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
      ]);
      return ok({ items: rows.map(membershipView), total: Number(total), page: pagination.page, per_page: pagination.per_page });
    });
  }

  async add(actor: Actor, input: GroupScoped & z.input<typeof addSchema>): Promise<Result<MembershipView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const groupId = group.value.id;
    const parsed = validate(addSchema, input);
    if (!parsed.ok) return parsed;
    const { user_id: userId, username, role } = parsed.value;
    return this.#changed(await guarded(async () => {
      const user = await this.#db.selectFrom('users').select(['id', 'username'])
        .where((eb) => (userId !== undefined ? eb('id', '=', userId) : eb(sql<string>`lower(username)`, '=', (username as string).toLowerCase())))
        .executeTakeFirst();
      if (!user) return notFound('user');
      const now = Date.now();
      return transact(this.#db, async (trx) => {
        if (!(await lockGroup(trx, groupId))) return notFound('group');
        const existing = await trx.selectFrom('memberships').select('id').where('group_id', '=', groupId).where('user_id', '=', user.id).executeTakeFirst();
        if (existing) return alreadyMember();
        await trx.insertInto('memberships').values({ group_id: groupId, user_id: user.id, access_level: ROLES[role], created_at: now, updated_at: now }).execute();
        await recordAudit(trx, actor, {
          groupId, action: 'member.add', targetType: 'user', targetId: user.id,
          details: { after: { user_id: user.id, username: user.username, role } },
        });
        return ok(membershipView(await this.#members(trx).where('memberships.group_id', '=', groupId).where('memberships.user_id', '=', user.id).executeTakeFirstOrThrow()));
      }, alreadyMember());
    }));
  }

  /** Never demotes the last owner. */
  async changeRole(actor: Actor, input: GroupScoped & z.input<typeof changeRoleSchema>): Promise<Result<MembershipView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const groupId = group.value.id;
    const parsed = validate(changeRoleSchema, input);
    if (!parsed.ok) return parsed;
    const { user_id: userId, role } = parsed.value;
    return this.#changed(await transact(this.#db, async (trx): Promise<Result<MembershipView>> => {
      if (!(await lockGroup(trx, groupId))) return notFound('group');
      const member = await this.#members(trx).where('memberships.group_id', '=', groupId).where('memberships.user_id', '=', userId).executeTakeFirst();
      if (!member) return notFound('member');
      if (member.access_level === ROLES[role]) return ok(membershipView(member));
      if (member.access_level === ROLES.owner && (await countOwners(trx, groupId)) <= 1) return err('conflict', LAST_OWNER);
      await trx.updateTable('memberships').set({ access_level: ROLES[role], updated_at: Date.now() })
        .where('group_id', '=', groupId).where('user_id', '=', userId).execute();
      await recordAudit(trx, actor, {
        groupId, action: 'member.change_role', targetType: 'user', targetId: userId,
        details: { before: { role: roleName(member.access_level) }, after: { role } },
      });
      return ok(membershipView({ ...member, access_level: ROLES[role] }));
    }));
  }

  /** Never removes the last owner. */
  async remove(actor: Actor, input: GroupScoped & z.input<typeof memberInput>): Promise<Result<MembershipView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const groupId = group.value.id;
    const parsed = validate(memberInput, input);
    if (!parsed.ok) return parsed;
    const { user_id: userId } = parsed.value;
    return this.#changed(await transact(this.#db, async (trx): Promise<Result<MembershipView>> => {
      if (!(await lockGroup(trx, groupId))) return notFound('group');
      const member = await this.#members(trx).where('memberships.group_id', '=', groupId).where('memberships.user_id', '=', userId).executeTakeFirst();
      if (!member) return notFound('member');
      if (member.access_level === ROLES.owner && (await countOwners(trx, groupId)) <= 1) return err('conflict', LAST_OWNER);
      await trx.deleteFrom('memberships').where('group_id', '=', groupId).where('user_id', '=', userId).execute();
      await recordAudit(trx, actor, {
        groupId, action: 'member.remove', targetType: 'user', targetId: userId,
        details: { before: { user_id: userId, username: member.username, role: roleName(member.access_level) } },
      });
      return ok(membershipView(member));
    }));
  }

  /** Tells every cache (of every replica) once the change committed. */
  async #changed(result: Result<MembershipView>): Promise<Result<MembershipView>> {
    if (result.ok) await this.#changes.publish({ kind: 'membership', groupId: result.value.group_id, userId: result.value.user_id });
    return result;
  }

  #members(db: Db = this.#db) {
    return db.selectFrom('memberships').innerJoin('users', 'users.id', 'memberships.user_id')
      .select(['memberships.group_id', 'memberships.user_id', 'users.username', 'memberships.access_level', 'memberships.created_at', 'memberships.updated_at']);
  }
}

function membershipView(row: { group_id: number; user_id: number; username: string; access_level: AccessLevel; created_at: number; updated_at: number }): MembershipView {
  return { ...row, role: roleName(row.access_level) };
}
