// Access tokens (DESIGN §1, §5): personal (of the acting user), group (a robot of a group, with a role) and
// deploy tokens (pull only). The plaintext is returned once by create; only its SHA-256 is stored.
import { z } from 'zod';
import { SCOPES, can, canSee } from '../auth/policy.ts';
import type { Actor, Scope } from '../auth/policy.ts';
import { generateToken, tokenDigest } from '../auth/secrets.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import { ROLES } from '../db/schema.ts';
import type { AccessLevel, AccessToken, RoleName, TokenKind } from '../db/schema.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeGroup, denied, notFound, unauthenticated } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, transact } from './database.ts';
import { roleName, roleSchema } from './memberships.ts';
import { freeTextNameSchema, offsetOf, paginationSchema, parseId, validate } from './validation.ts';
import type { Page } from './validation.ts';

export const MAX_TOKEN_LIFETIME_DAYS = 365;
const DAY = 24 * 60 * 60 * 1000;
/** Characters of the plaintext kept to recognise a token in lists: the prefix and a few more. */
const HINT_LENGTH = 10;

const nameSchema = freeTextNameSchema;

const scopesSchema = z.array(z.enum(SCOPES, { error: `must be one of ${SCOPES.join(', ')}` }), 'must be a list of scopes')
  .min(1, 'must name at least one scope')
  .transform((scopes) => [...new Set(scopes)].sort());

/** Optional expiry: an ISO 8601 date or date-time, or epoch milliseconds; in the future, at most a year away. */
const expiresAtSchema = z.union([z.number(), z.iso.datetime({ offset: true }), z.iso.date()], { error: 'must be an ISO 8601 date or date-time' })
  .transform((value, context) => {
    const at = typeof value === 'number' ? value : Date.parse(value);
    const now = Date.now();
    if (!Number.isFinite(at) || at <= now) context.addIssue({ code: 'custom', message: 'must be in the future' });
    else if (at > now + MAX_TOKEN_LIFETIME_DAYS * DAY) context.addIssue({ code: 'custom', message: `must be at most ${MAX_TOKEN_LIFETIME_DAYS} days away` });
    return at;
  })
  .nullish();

const personalSchema = z.object({ name: nameSchema, scopes: scopesSchema, expires_at: expiresAtSchema });
const groupTokenSchema = personalSchema.extend({ role: roleSchema });
const deploySchema = z.object({
  name: nameSchema,
  scopes: z.array(z.literal('read_virtual_registry', 'deploy tokens have only the read_virtual_registry scope')).min(1, 'must name at least one scope').optional(),
  expires_at: expiresAtSchema,
});

type GroupScoped = { group_id: number | string };

export interface TokenView {
  id: number;
  kind: TokenKind;
  name: string;
  user_id: number | null;
  group_id: number | null;
  role: RoleName | null;
  access_level: AccessLevel | null;
  scopes: Scope[];
  /** The first characters of the plaintext, to recognise it; never the digest. */
  token_hint: string;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  created_at: number;
  /** Neither revoked nor expired. */
  active: boolean;
}

/** The create result: the view plus the plaintext, which is never shown again. */
export type CreatedToken = TokenView & { token: string };

export function tokenView(row: AccessToken, now = Date.now()): TokenView {
  return {
    id: row.id,
    kind: row.kind,
    name: row.name,
    user_id: row.user_id,
    group_id: row.group_id,
    role: row.access_level === null ? null : roleName(row.access_level),
    access_level: row.access_level,
    scopes: (JSON.parse(row.scopes) as string[]).filter((scope): scope is Scope => (SCOPES as readonly string[]).includes(scope)),
    token_hint: row.token_hint,
    expires_at: row.expires_at,
    revoked_at: row.revoked_at,
    last_used_at: row.last_used_at,
    created_at: row.created_at,
    active: row.revoked_at === null && (row.expires_at === null || row.expires_at > now),
  };
}

export class TokenService {
  readonly #db: Db;
  readonly #changes: ChangeFeed;

  constructor(deps: { db: Db; changes: ChangeFeed }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
  }

  /** A personal access token of the acting user (a password session or a token with the `api` scope). */
  async createPersonal(actor: Actor, input: z.input<typeof personalSchema>): Promise<Result<CreatedToken>> {
    const owner = personalOwner(actor);
    if (!owner.ok) return owner;
    const parsed = validate(personalSchema, input);
    if (!parsed.ok) return parsed;
    return this.#insert(actor, {
      kind: 'personal', user_id: owner.value, group_id: null, access_level: null,
      name: parsed.value.name, scopes: parsed.value.scopes, expires_at: parsed.value.expires_at ?? null,
    });
  }

  /** Owners: a robot of the group acting with `role` and `scopes`. */
  async createGroupToken(actor: Actor, input: GroupScoped & z.input<typeof groupTokenSchema>): Promise<Result<CreatedToken>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const parsed = validate(groupTokenSchema, input);
    if (!parsed.ok) return parsed;
    return this.#insert(actor, {
      kind: 'group', user_id: null, group_id: group.value.id, access_level: ROLES[parsed.value.role],
      name: parsed.value.name, scopes: parsed.value.scopes, expires_at: parsed.value.expires_at ?? null,
    });
  }

  /** Owners: pulls from the group's registries, nothing else. */
  async createDeployToken(actor: Actor, input: GroupScoped & z.input<typeof deploySchema>): Promise<Result<CreatedToken>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const parsed = validate(deploySchema, input);
    if (!parsed.ok) return parsed;
    return this.#insert(actor, {
      kind: 'deploy', user_id: null, group_id: group.value.id, access_level: null,
      name: parsed.value.name, scopes: ['read_virtual_registry'], expires_at: parsed.value.expires_at ?? null,
    });
  }

  /** The acting user's personal tokens, newest first, revoked ones included. */
  async listPersonal(actor: Actor, input: z.input<typeof paginationSchema> = {}): Promise<Result<Page<TokenView>>> {
    const owner = personalOwner(actor, 'read');
    if (!owner.ok) return owner;
    return this.#list(input, { kind: 'personal', user_id: owner.value });
  }

  async listGroupTokens(actor: Actor, input: GroupScoped & z.input<typeof paginationSchema>): Promise<Result<Page<TokenView>>> {
    return this.#listOfGroup(actor, input, 'group');
  }

  async listDeployTokens(actor: Actor, input: GroupScoped & z.input<typeof paginationSchema>): Promise<Result<Page<TokenView>>> {
    return this.#listOfGroup(actor, input, 'deploy');
  }

  /**
   * Revokes a token: one's own personal token, or (owners) a group or deploy token. `kind` and `group_id`,
   * when given (from the route), must match the token. Revoking a revoked token changes nothing.
   */
  async revoke(actor: Actor, input: { id: number | string; kind?: TokenKind; group_id?: number | string }): Promise<Result<TokenView>> {
    if (actor.kind === 'anonymous') return unauthenticated();
    const id = parseId(input?.id);
    const found = id === null ? ok(undefined) : await guarded(async () => ok(await this.#db.selectFrom('access_tokens').selectAll().where('id', '=', id).executeTakeFirst()));
    if (!found.ok) return found;
    const row = found.value;
    if (!row || (input.kind !== undefined && input.kind !== row.kind)) return notFound('token');
    if (input.group_id !== undefined && parseId(input.group_id) !== row.group_id) return notFound('token');
    if (row.kind === 'personal') {
      const owner = personalOwner(actor);
      if (!owner.ok) return owner;
      // Instance admins may revoke anyone's token (a leak); others see only their own.
      if (owner.value !== row.user_id && !can(actor, 'admin_instance', 'instance')) return notFound('token');
    } else {
      const group = await guarded(() => authorizeGroup(this.#db, actor, row.group_id, 'admin_virtual_registry'));
      if (!group.ok) return group.reason === 'not_found' ? notFound('token') : group;
    }
    if (row.revoked_at !== null) return ok(tokenView(row));
    const revoked = await transact(this.#db, async (trx) => {
      const updated = await trx.updateTable('access_tokens').set({ revoked_at: Date.now() }).where('id', '=', row.id).returningAll().executeTakeFirst();
      if (!updated) return notFound('token');
      await recordAudit(trx, actor, { groupId: row.group_id, action: 'token.revoke', targetType: `${row.kind}_token`, targetId: row.id, details: { before: tokenView(row), after: { revoked_at: updated.revoked_at } } });
      return ok(tokenView(updated));
    });
    if (revoked.ok) await this.#changes.publish({ kind: 'token', id: row.id });
    return revoked;
  }

  async #insert(actor: Actor, values: { kind: TokenKind; user_id: number | null; group_id: number | null; access_level: AccessLevel | null; name: string; scopes: string[]; expires_at: number | null }): Promise<Result<CreatedToken>> {
    const plaintext = generateToken(values.kind);
    return transact(this.#db, async (trx) => {
      const inserted = await trx.insertInto('access_tokens').values({
        ...values,
        scopes: JSON.stringify(values.scopes),
        token_digest: tokenDigest(plaintext),
        token_hint: plaintext.slice(0, HINT_LENGTH),
        revoked_at: null,
        last_used_at: null,
        created_at: Date.now(),
      }).returningAll().executeTakeFirstOrThrow();
      await recordAudit(trx, actor, { groupId: values.group_id, action: 'token.create', targetType: `${values.kind}_token`, targetId: inserted.id, details: { after: tokenView(inserted) } });
      return ok({ ...tokenView(inserted), token: plaintext });
    });
  }

  async #listOfGroup(actor: Actor, input: GroupScoped & z.input<typeof paginationSchema>, kind: 'group' | 'deploy'): Promise<Result<Page<TokenView>>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, input?.group_id, 'admin_virtual_registry'));
    if (!group.ok) return group;
    return this.#list(input, { kind, group_id: group.value.id });
  }

  async #list(input: unknown, owner: { kind: TokenKind; user_id?: number; group_id?: number }): Promise<Result<Page<TokenView>>> {
    const parsed = validate(paginationSchema, input ?? {});
    if (!parsed.ok) return parsed;
    const pagination = parsed.value;
    const scoped = this.#db.selectFrom('access_tokens').where('kind', '=', owner.kind)
      .where((eb) => (owner.user_id !== undefined ? eb('user_id', '=', owner.user_id) : eb('group_id', '=', owner.group_id ?? 0)));
    return guarded(async () => {
      const [{ total }, rows] = await Promise.all([
        scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
        scoped.selectAll().orderBy('id', 'desc').limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
      ]);
      const now = Date.now();
      return ok({ items: rows.map((row) => tokenView(row, now)), total: Number(total), page: pagination.page, per_page: pagination.per_page });
    });
  }
}

/**
 * The user whose personal tokens the actor manages: a user in a password session, or with a token allowing
 * it (`api` to create or revoke, `read_api` too for listing). Group and deploy tokens have no personal tokens.
 */
function personalOwner(actor: Actor, purpose: 'read' | 'write' = 'write'): Result<number> {
  if (actor.kind === 'anonymous') return unauthenticated();
  if (actor.kind !== 'user' || !canSee(actor, 'instance')) return denied(actor, 'only users have personal access tokens');
  if (actor.token) {
    const needed: Scope[] = purpose === 'read' ? ['api', 'read_api'] : ['api'];
    if (!actor.token.scopes.some((scope) => needed.includes(scope)) || actor.channel !== 'api') return denied(actor, 'the token\'s scopes do not allow this');
  }
  return ok(actor.userId);
}
