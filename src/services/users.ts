// Users (DESIGN §1): instance admins manage accounts; every user may read themselves and change their password.
import { sql } from 'kysely';
import { z } from 'zod';
import { can, canSee } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import { TOKEN_PREFIX, hashPassword, verifyPassword } from '../auth/secrets.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import { ROLES } from '../db/schema.ts';
import type { User } from '../db/schema.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorize, denied, notFound, unauthenticated } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, transact } from './database.ts';
import { countOwners, lockGroup } from './memberships.ts';
import { offsetOf, paginationSchema, parseId, validate } from './validation.ts';
import type { Page } from './validation.ts';

export const MIN_PASSWORD_LENGTH = 12;

export const usernameSchema = z.string('must be a string')
  .min(2, 'must be at least 2 characters')
  .max(255, 'must be at most 255 characters')
  .regex(/^[a-zA-Z0-9_.-]+$/, 'may contain only letters, digits, "_", "." and "-"');

export const passwordSchema = z.string('must be a string')
  .min(MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(1024, 'must be at most 1024 characters')
  // Basic credentials whose password starts with a token prefix are read as tokens (src/services/authentication.ts).
  .refine((password) => !Object.values(TOKEN_PREFIX).some((prefix) => password.startsWith(prefix)), 'must not start with an access token prefix');

const createSchema = z.object({
  username: usernameSchema,
  password: passwordSchema,
  email: z.email('must be an email address').max(255, 'must be at most 255 characters').nullish(),
  admin: z.boolean('must be true or false').default(false),
});

const changePasswordSchema = z.object({
  current_password: z.string('must be a string').min(1, 'is required'),
  new_password: passwordSchema,
});

/** A user as the API shows it: never the password hash. */
export interface UserView {
  id: number;
  username: string;
  email: string | null;
  admin: boolean;
  blocked: boolean;
  created_at: number;
  updated_at: number;
}

export function userView(row: User): UserView {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    admin: row.admin === 1,
    blocked: row.blocked === 1,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

const usernameTaken = () => err('conflict', 'username is already taken', { fields: { username: ['is already taken'] } });

export class UserService {
  readonly #db: Db;
  readonly #changes: ChangeFeed;

  constructor(deps: { db: Db; changes: ChangeFeed }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
  }

  /** Admins only. Usernames are unique regardless of case. */
  async create(actor: Actor, input: z.input<typeof createSchema>): Promise<Result<UserView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance');
    if (!allowed.ok) return allowed;
    const parsed = validate(createSchema, input);
    if (!parsed.ok) return parsed;
    const { username, password, email, admin } = parsed.value;
    const taken = await guarded(async () => ok(await this.#findByUsername(username) !== undefined));
    if (!taken.ok) return taken;
    if (taken.value) return usernameTaken();
    const passwordHash = await hashPassword(password);
    const now = Date.now();
    return transact(this.#db, async (trx) => {
      const created = await trx.insertInto('users').values({
        username, email: email ?? null, password_hash: passwordHash, admin: admin ? 1 : 0, blocked: 0, created_at: now, updated_at: now,
      }).returningAll().executeTakeFirstOrThrow();
      await recordAudit(trx, actor, { groupId: null, action: 'user.create', targetType: 'user', targetId: created.id, details: { after: userView(created) } });
      return ok(userView(created));
    }, usernameTaken());
  }

  /** Admins only. */
  async list(actor: Actor, input: z.input<typeof paginationSchema> = {}): Promise<Result<Page<UserView>>> {
    const allowed = authorize(actor, 'admin_instance', 'instance');
    if (!allowed.ok) return allowed;
    const parsed = validate(paginationSchema, input);
    if (!parsed.ok) return parsed;
    const pagination = parsed.value;
    return guarded(async () => {
      const [{ total }, rows] = await Promise.all([
        this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
        this.#db.selectFrom('users').selectAll().orderBy('id').limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
      ]);
      return ok({ items: rows.map(userView), total: Number(total), page: pagination.page, per_page: pagination.per_page });
    });
  }

  /** Admins see every user, others only themselves (anyone else is not found). */
  async get(actor: Actor, id: number | string): Promise<Result<UserView>> {
    const row = await this.#visibleUser(actor, id);
    if (!row.ok) return row;
    return ok(userView(row.value));
  }

  /** Admins only (the CLI acts as the system): the user of this name, regardless of case. */
  async getByUsername(actor: Actor, username: string): Promise<Result<UserView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance');
    if (!allowed.ok) return allowed;
    return guarded(async () => {
      const user = await this.#findByUsername(username);
      return user ? ok(userView(user)) : err('not_found', `no user named ${username}`);
    });
  }

  async block(actor: Actor, id: number | string): Promise<Result<UserView>> {
    return this.#setBlocked(actor, id, true);
  }

  async unblock(actor: Actor, id: number | string): Promise<Result<UserView>> {
    return this.#setBlocked(actor, id, false);
  }

  /** Admins only; never oneself, never the last owner of a group (the group would be left without one). */
  async delete(actor: Actor, id: number | string): Promise<Result<UserView>> {
    const target = await this.#adminTarget(actor, id);
    if (!target.ok) return target;
    const user = target.value;
    if (actor.kind === 'user' && actor.userId === user.id) return invalid({ id: ['you cannot delete yourself'] });
    return this.#changed(user.id, await transact(this.#db, async (trx) => {
      const owned = await trx.selectFrom('memberships').select('group_id').where('user_id', '=', user.id).where('access_level', '=', ROLES.owner).execute();
      for (const { group_id } of owned) {
        await lockGroup(trx, group_id);
        if ((await countOwners(trx, group_id)) <= 1) {
          return err('conflict', 'the user is the last owner of a group: add another owner or delete the group first');
        }
      }
      await trx.deleteFrom('users').where('id', '=', user.id).execute();
      await recordAudit(trx, actor, { groupId: null, action: 'user.delete', targetType: 'user', targetId: user.id, details: { before: userView(user) } });
      return ok(userView(user));
    }));
  }

  /** The acting user's own password; the current one is required. */
  async changePassword(actor: Actor, input: z.input<typeof changePasswordSchema>): Promise<Result<UserView>> {
    if (actor.kind === 'anonymous') return unauthenticated();
    if (actor.kind !== 'user') return denied(actor, 'only users have a password');
    if (!canSee(actor, 'instance')) return denied(actor);
    if (actor.token && !actor.token.scopes.includes('api')) return denied(actor, 'the token\'s scopes do not allow this');
    const parsed = validate(changePasswordSchema, input);
    if (!parsed.ok) return parsed;
    const user = await guarded(async () => {
      const row = await this.#db.selectFrom('users').selectAll().where('id', '=', actor.userId).executeTakeFirst();
      return row ? ok(row) : notFound('user');
    });
    if (!user.ok) return user;
    if (!(await verifyPassword(parsed.value.current_password, user.value.password_hash))) {
      return invalid({ current_password: ['is incorrect'] });
    }
    const passwordHash = await hashPassword(parsed.value.new_password);
    return this.#changed(user.value.id, await transact(this.#db, async (trx) => {
      const row = await trx.updateTable('users').set({ password_hash: passwordHash, updated_at: Date.now() })
        .where('id', '=', user.value.id).returningAll().executeTakeFirst();
      if (!row) return notFound('user');
      await recordAudit(trx, actor, { groupId: null, action: 'user.change_password', targetType: 'user', targetId: row.id });
      return ok(userView(row));
    }));
  }

  async #setBlocked(actor: Actor, id: number | string, blocked: boolean): Promise<Result<UserView>> {
    const target = await this.#adminTarget(actor, id);
    if (!target.ok) return target;
    const user = target.value;
    if (blocked && actor.kind === 'user' && actor.userId === user.id) return invalid({ id: ['you cannot block yourself'] });
    if ((user.blocked === 1) === blocked) return ok(userView(user));
    return this.#changed(user.id, await transact(this.#db, async (trx) => {
      const row = await trx.updateTable('users').set({ blocked: blocked ? 1 : 0, updated_at: Date.now() })
        .where('id', '=', user.id).returningAll().executeTakeFirst();
      if (!row) return notFound('user');
      await recordAudit(trx, actor, {
        groupId: null, action: blocked ? 'user.block' : 'user.unblock', targetType: 'user', targetId: user.id,
        details: { before: { blocked: user.blocked === 1 }, after: { blocked } },
      });
      return ok(userView(row));
    }));
  }

  /** Tells every cache (of every replica) once the change committed. */
  async #changed(userId: number, result: Result<UserView>): Promise<Result<UserView>> {
    if (result.ok) await this.#changes.publish({ kind: 'user', id: userId });
    return result;
  }

  /** A user an admin acts on: non-admins are forbidden before anything is looked up. */
  async #adminTarget(actor: Actor, id: number | string): Promise<Result<User>> {
    const allowed = authorize(actor, 'admin_instance', 'instance');
    if (!allowed.ok) return allowed;
    const userId = parseId(id);
    if (userId === null) return notFound('user');
    return guarded(async () => {
      const user = await this.#db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
      return user ? ok(user) : notFound('user');
    });
  }

  async #visibleUser(actor: Actor, id: number | string): Promise<Result<User>> {
    if (actor.kind === 'anonymous') return unauthenticated();
    const userId = parseId(id);
    const self = actor.kind === 'user' && actor.userId === userId && canSee(actor, 'instance');
    if (!self && !can(actor, 'admin_instance', 'instance')) return notFound('user');
    if (userId === null) return notFound('user');
    return guarded(async () => {
      const user = await this.#db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
      return user ? ok(user) : notFound('user');
    });
  }

  async #findByUsername(username: string): Promise<User | undefined> {
    return this.#db.selectFrom('users').selectAll().where(sql<string>`lower(username)`, '=', username.toLowerCase()).executeTakeFirst();
  }
}
