// Groups (DESIGN §1): top-level namespaces. Any active user may create one and becomes its owner; members
// see it; owners (admin_virtual_registry) change or delete it.
import { z } from 'zod';
import { can, canSee } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS, ROLES } from '../db/schema.ts';
import type { Group } from '../db/schema.ts';
import { isPathComponent } from '../oci/reference.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorize, authorizeGroup, denied, notFound, unauthenticated } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, transact } from './database.ts';
import { descriptionSchema as descriptionText, freeTextNameSchema, offsetOf, paginationSchema, validate } from './validation.ts';
import type { Page } from './validation.ts';

export const groupDescriptionSchema = descriptionText(2048);

export const groupPathSchema = z.string('must be a string')
  .min(1, 'is required')
  .max(255, 'must be at most 255 characters')
  .refine(isPathComponent, 'must be lowercase letters and digits, separated by ".", "_", "__" or "-" (one image path component)');

const nameSchema = freeTextNameSchema;
const descriptionSchema = groupDescriptionSchema.nullish();

const createSchema = z.object({ path: groupPathSchema, name: nameSchema.optional(), description: descriptionSchema });
/** A group's storage quota in bytes (unique objects of its live entries); null removes it. */
export const storageQuotaSchema = z.number('must be a whole number of bytes or null').int('must be a whole number of bytes').min(1024 * 1024, 'must be at least 1 MiB').max(Number.MAX_SAFE_INTEGER, 'is too large').nullable();
const updateSchema = z.object({ name: nameSchema.optional(), description: descriptionSchema, storage_quota_bytes: storageQuotaSchema.optional() });

export interface GroupView {
  id: number;
  path: string;
  name: string;
  description: string | null;
  /** Null: only the instance's limit (storage.maxBytes) applies. */
  storage_quota_bytes: number | null;
  created_at: number;
  updated_at: number;
}

export function groupView(row: Group): GroupView {
  const quota = row.storage_quota_bytes;
  return { id: row.id, path: row.path, name: row.name, description: row.description, storage_quota_bytes: quota === null ? null : Number(quota), created_at: row.created_at, updated_at: row.updated_at };
}

const pathTaken = () => err('conflict', 'group path is already taken', { fields: { path: ['is already taken'] } });

export class GroupService {
  readonly #db: Db;
  readonly #changes: ChangeFeed;

  constructor(deps: { db: Db; changes: ChangeFeed }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
  }

  /** Any active user (not a token of a group); the creator becomes its owner. */
  async create(actor: Actor, input: z.input<typeof createSchema>): Promise<Result<GroupView>> {
    const allowed = authorize(actor, 'create_group', 'instance');
    if (!allowed.ok) return allowed;
    const parsed = validate(createSchema, input);
    if (!parsed.ok) return parsed;
    const { path, name, description } = parsed.value;
    const created = await guarded(async () => {
      if (await this.#db.selectFrom('groups').select('id').where('path', '=', path).executeTakeFirst()) return pathTaken();
      const now = Date.now();
      return transact(this.#db, async (trx) => {
        const row = await trx.insertInto('groups').values({ path, name: name ?? path, description: description ?? null, created_at: now, updated_at: now })
          .returningAll().executeTakeFirstOrThrow();
        if (actor.kind === 'user') {
          await trx.insertInto('memberships').values({ group_id: row.id, user_id: actor.userId, access_level: ROLES.owner, created_at: now, updated_at: now }).execute();
        }
        await recordAudit(trx, actor, { groupId: row.id, action: 'group.create', targetType: 'group', targetId: row.id, details: { after: groupView(row) } });
        return ok(groupView(row));
      }, pathTaken());
    });
    // Its creator is its owner now: a new membership for every cache (of every replica).
    if (created.ok && actor.kind === 'user') await this.#changes.publish({ kind: 'membership', groupId: created.value.id, userId: actor.userId });
    return created;
  }

  /** The groups the actor may read: all of them for admins, their own for members and group tokens. */
  async list(actor: Actor, input: z.input<typeof paginationSchema> = {}): Promise<Result<Page<GroupView>>> {
    if (actor.kind === 'anonymous') return unauthenticated();
    const parsed = validate(paginationSchema, input);
    if (!parsed.ok) return parsed;
    const pagination = parsed.value;
    const readsAll = actor.kind === 'system' || (actor.kind === 'user' && actor.admin && can(actor, 'read_virtual_registry', 'instance'));
    let ids: number[] | null = null;
    if (!readsAll) {
      const candidates = actor.kind === 'user' ? [...actor.memberships.keys()] : [actor.groupId];
      ids = candidates.filter((groupId) => can(actor, 'read_virtual_registry', { groupId }));
      if (ids.length === 0) return ok({ items: [], total: 0, page: pagination.page, per_page: pagination.per_page });
    }
    const scoped = ids === null ? this.#db.selectFrom('groups') : this.#db.selectFrom('groups').where('id', 'in', ids);
    return guarded(async () => {
      const [{ total }, rows] = await Promise.all([
        scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
        scoped.selectAll().orderBy('path').limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
      ]);
      return ok({ items: rows.map(groupView), total: Number(total), page: pagination.page, per_page: pagination.per_page });
    });
  }

  async get(actor: Actor, id: number | string): Promise<Result<GroupView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, id, 'read_virtual_registry'));
    return group.ok ? ok(groupView(group.value)) : group;
  }

  async getByPath(actor: Actor, path: string): Promise<Result<GroupView>> {
    if (actor.kind === 'anonymous') return unauthenticated();
    // Only a valid path can name a group; anything else (a NUL, which PostgreSQL refuses in text) is not found.
    if (typeof path !== 'string' || !isPathComponent(path)) return notFound('group');
    return guarded(async () => {
      const row = await this.#db.selectFrom('groups').selectAll().where('path', '=', path).executeTakeFirst();
      if (!row || !canSee(actor, { groupId: row.id })) return notFound('group');
      if (!can(actor, 'read_virtual_registry', { groupId: row.id })) return denied(actor);
      return ok(groupView(row));
    });
  }

  /**
   * The id of the group with this path, or null: the token endpoint's grants, whose permission checks
   * follow. A database that is unavailable throws (DatabaseUnavailableError): the endpoint answers 503.
   */
  async idOfPath(path: string): Promise<number | null> {
    return (await this.#db.selectFrom('groups').select('id').where('path', '=', path).executeTakeFirst())?.id ?? null;
  }

  /**
   * Name and description (owners), storage quota (instance admins: it limits what the group may take of
   * the instance's storage). The path is part of every image name and does not change.
   */
  async update(actor: Actor, id: number | string, input: z.input<typeof updateSchema>): Promise<Result<GroupView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const parsed = validate(updateSchema, input);
    if (!parsed.ok) return parsed;
    const changes: { name?: string; description?: string | null; storage_quota_bytes?: number | null } = {};
    if (parsed.value.name !== undefined) changes.name = parsed.value.name;
    if (parsed.value.description !== undefined) changes.description = parsed.value.description;
    if (parsed.value.storage_quota_bytes !== undefined && parsed.value.storage_quota_bytes !== groupView(group.value).storage_quota_bytes) {
      if (!can(actor, 'admin_instance', 'instance')) return denied(actor, 'only instance admins may change a group\'s storage quota');
      changes.storage_quota_bytes = parsed.value.storage_quota_bytes;
    }
    const before = groupView(group.value);
    if (Object.entries(changes).every(([key, value]) => before[key as keyof GroupView] === value)) return ok(before);
    return transact(this.#db, async (trx) => {
      const row = await trx.updateTable('groups').set({ ...changes, updated_at: Date.now() }).where('id', '=', group.value.id).returningAll().executeTakeFirst();
      if (!row) return notFound('group');
      await recordAudit(trx, actor, {
        groupId: row.id, action: 'group.update', targetType: 'group', targetId: row.id,
        details: { before: pick(before, changes), after: pick(groupView(row), changes) },
      });
      return ok(groupView(row));
    });
  }

  /**
   * Owners and admins. Members, tokens, registries and upstreams go with the group (foreign keys); its cache
   * entries are marked for the destroy worker, which also removes the objects no one else refers to.
   */
  async delete(actor: Actor, id: number | string): Promise<Result<GroupView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const deleted = await transact(this.#db, async (trx) => {
      await trx.updateTable('cache_entries').set({ status: CACHE_ENTRY_STATUS.pending_destruction, updated_at: Date.now() })
        .where('group_id', '=', group.value.id).execute();
      await trx.deleteFrom('groups').where('id', '=', group.value.id).execute();
      await recordAudit(trx, actor, { groupId: group.value.id, action: 'group.delete', targetType: 'group', targetId: group.value.id, details: { before: groupView(group.value) } });
      return ok(groupView(group.value));
    });
    if (deleted.ok) await this.#changes.publish({ kind: 'group', id: group.value.id });
    return deleted;
  }
}

function pick(view: GroupView, keys: object): Partial<GroupView> {
  return Object.fromEntries(Object.keys(keys).map((key) => [key, view[key as keyof GroupView]]));
}
