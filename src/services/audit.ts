// Audit events (DESIGN §1): who changed what and when. Every change of the identity services records one,
// inside the same transaction as the change. Details hold before/after values and never secrets.
import { z } from 'zod';
import { SYSTEM } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorize, authorizeGroup } from './access.ts';
import { offsetOf, paginationSchema, validate } from './validation.ts';
import type { Page } from './validation.ts';

export interface AuditInput {
  /** Null for instance-level events (users). */
  groupId: number | null;
  /** `<target>.<verb>`, e.g. `member.add`, `token.revoke`. */
  action: string;
  targetType: string;
  targetId: number | null;
  details?: Record<string, unknown>;
}

export interface AuditView {
  id: number;
  actor_user_id: number | null;
  actor_token_id: number | null;
  actor_name: string;
  group_id: number | null;
  action: string;
  target_type: string;
  target_id: number | null;
  details: Record<string, unknown>;
  created_at: number;
}

/** Keys whose values are never written to the audit log, at any depth. */
const SECRET_KEYS = new Set([
  'password', 'password_hash', 'password_encrypted', 'current_password', 'new_password',
  'token', 'token_digest', 'plaintext', 'secret', 'authorization', 'access_token', 'refresh_token',
]);

/** A copy of `value` without secret keys; services pass rows or views and need not remember to strip them. */
export function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (!SECRET_KEYS.has(key.toLowerCase())) copy[key] = withoutSecrets(inner);
  }
  return copy;
}

function actorColumns(actor: Actor): { actor_user_id: number | null; actor_token_id: number | null; actor_name: string } {
  switch (actor.kind) {
    case 'user':
      return { actor_user_id: actor.userId, actor_token_id: actor.token?.id ?? null, actor_name: actor.username };
    case 'group_token':
      return { actor_user_id: null, actor_token_id: actor.token.id, actor_name: `group token ${actor.token.id}` };
    case 'deploy_token':
      return { actor_user_id: null, actor_token_id: actor.token.id, actor_name: `deploy token ${actor.token.id}` };
    case 'system':
    case 'anonymous':
      return { actor_user_id: null, actor_token_id: null, actor_name: actor.kind };
  }
}

/** Records one event; pass the transaction of the change so both commit or neither does. */
export async function recordAudit(db: Db, actor: Actor, event: AuditInput): Promise<void> {
  await db.insertInto('audit_events').values({
    ...actorColumns(actor),
    group_id: event.groupId,
    action: event.action,
    target_type: event.targetType,
    target_id: event.targetId,
    details: JSON.stringify(withoutSecrets(event.details ?? {})),
    created_at: Date.now(),
  }).execute();
}

const listSchema = paginationSchema.extend({
  /** Null or absent: instance-level events (admins only). */
  group_id: z.union([z.number(), z.string()]).nullish(),
});

export class AuditService {
  readonly #db: Db;

  constructor(deps: { db: Db }) {
    this.#db = deps.db;
  }

  /**
   * An instance-level event: sign-in attempts from one address or for one username were blocked after
   * repeated failures (the throttle calls this at most once per block and key). Secrets never reach it.
   */
  async recordSignInBlocked(event: { key: 'address' | 'username'; value: string; attempts: number; blockSeconds: number }): Promise<Result<undefined>> {
    try {
      await recordAudit(this.#db, SYSTEM, {
        groupId: null,
        action: 'sign_in.block',
        targetType: event.key,
        targetId: null,
        details: { [event.key]: event.value, failed_attempts: event.attempts, blocked_seconds: event.blockSeconds },
      });
      return ok();
    } catch (error) {
      return err('persistence_error', 'the audit event could not be written', { cause: error });
    }
  }

  /** Events of a group (owners and admins) or of the instance (admins), newest first. */
  async list(actor: Actor, input: z.input<typeof listSchema>): Promise<Result<Page<AuditView>>> {
    const parsed = validate(listSchema, input);
    if (!parsed.ok) return parsed;
    const { group_id: rawGroupId, ...pagination } = parsed.value;
    let groupId: number | null = null;
    if (rawGroupId === null || rawGroupId === undefined) {
      const allowed = authorize(actor, 'admin_instance', 'instance');
      if (!allowed.ok) return allowed;
    } else {
      const group = await authorizeGroup(this.#db, actor, rawGroupId, 'admin_virtual_registry');
      if (!group.ok) return group;
      groupId = group.value.id;
    }
    const scoped = this.#db.selectFrom('audit_events').where((eb) => (groupId === null ? eb('group_id', 'is', null) : eb('group_id', '=', groupId)));
    const [{ total }, rows] = await Promise.all([
      scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
      scoped.selectAll().orderBy('id', 'desc').limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
    ]);
    return ok({
      items: rows.map((row) => ({ ...row, details: JSON.parse(row.details) as Record<string, unknown> })),
      total: Number(total),
      page: pagination.page,
      per_page: pagination.per_page,
    });
  }
}
