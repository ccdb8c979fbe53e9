// The cleanup policy of a group (DESIGN §1, §4): evict cache entries not downloaded for N days, every
// 1/7/14/30/90 days. This service keeps the policy and shows its runs; cleanup-runner.ts applies it
// when next_run_at comes.
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import type { CleanupPolicy, CleanupRun } from '../db/schema.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeGroup, notFound } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, lockGroup, transact } from './registry-store.ts';
import { validate } from './validation.ts';

export const CADENCES = [1, 7, 14, 30, 90] as const;
export const DEFAULT_KEEP_DAYS = 30;
export const DEFAULT_CADENCE_DAYS = 7;
const DAY = 24 * 60 * 60 * 1000;

export const keepDaysSchema = z.number('must be a whole number of days')
  .int('must be a whole number of days')
  .min(1, 'must be at least 1')
  .max(365, 'must be at most 365');
export const cadenceSchema = z.number('must be one of 1, 7, 14, 30, 90')
  .refine((days) => (CADENCES as readonly number[]).includes(days), 'must be one of 1, 7, 14, 30, 90');

/** Fields left out keep their value (or take the default when the policy is new). */
export const cleanupPolicyInputSchema = z.object({
  enabled: z.boolean('must be true or false').optional(),
  keep_n_days_after_download: keepDaysSchema.optional(),
  cadence_days: cadenceSchema.optional(),
}, 'must be an object');
export type CleanupPolicyInput = z.input<typeof cleanupPolicyInputSchema>;

export interface CleanupPolicyView {
  group_id: number;
  enabled: boolean;
  keep_n_days_after_download: number;
  cadence_days: number;
  /** When the runner applies it next; null while disabled. */
  next_run_at: number | null;
  last_run_at: number | null;
  last_run_deleted_entries: number;
  last_run_deleted_bytes: number;
  failure_message: string | null;
  created_at: number;
  updated_at: number;
}

export function toCleanupPolicyView(row: CleanupPolicy): CleanupPolicyView {
  return {
    group_id: row.group_id,
    enabled: row.enabled === 1,
    keep_n_days_after_download: row.keep_n_days_after_download,
    cadence_days: row.cadence_days,
    next_run_at: row.next_run_at,
    last_run_at: row.last_run_at,
    last_run_deleted_entries: Number(row.last_run_deleted_entries),
    last_run_deleted_bytes: Number(row.last_run_deleted_bytes),
    failure_message: row.failure_message,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export interface CleanupRunView {
  id: number;
  group_id: number;
  /** What started it: the group's cleanup policy, the group's quota or the instance's (storage.maxBytes). */
  reason: CleanupRun['reason'];
  started_at: number;
  finished_at: number;
  /** Entries removed from the cache by the run. */
  deleted_entries: number;
  /** The sum of those entries' sizes (an object another entry still uses stays stored). */
  deleted_bytes: number;
  failure_message: string | null;
}

export const RUNS_LIMIT = 100;

function auditState(view: CleanupPolicyView) {
  return { enabled: view.enabled, keep_n_days_after_download: view.keep_n_days_after_download, cadence_days: view.cadence_days };
}

export class CleanupPolicyService {
  readonly #db: Db;
  readonly #now: () => number;

  constructor(deps: { db: Db; now?: () => number }) {
    this.#db = deps.db;
    this.#now = deps.now ?? Date.now;
  }

  /** Members (read_virtual_registry) see the policy; not_found when the group has none. */
  async get(actor: Actor, groupId: number | string): Promise<Result<CleanupPolicyView>> {
    return guarded(async () => {
      const group = await authorizeGroup(this.#db, actor, groupId, 'read_virtual_registry');
      if (!group.ok) return group;
      const row = await this.#db.selectFrom('cleanup_policies').selectAll().where('group_id', '=', group.value.id).executeTakeFirst();
      return row ? ok(toCleanupPolicyView(row)) : notFound('cleanup policy');
    });
  }

  /**
   * Owners (admin_virtual_registry): creates the policy or changes it. The next run is scheduled one
   * cadence from now when the policy is created, enabled or given a new cadence; disabling clears it.
   */
  async put(actor: Actor, groupId: number | string, input: CleanupPolicyInput): Promise<Result<{ policy: CleanupPolicyView; created: boolean }>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, groupId, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const parsed = validate(cleanupPolicyInputSchema, input);
    if (!parsed.ok) return parsed;
    const changes = parsed.value;
    const id = group.value.id;
    return transact(this.#db, async (trx) => {
      // The group's lock serialises concurrent puts: one creates, the other updates.
      if (!(await lockGroup(trx, id))) return notFound('group');
      const now = this.#now();
      const existing = await trx.selectFrom('cleanup_policies').selectAll().where('group_id', '=', id).executeTakeFirst();
      const before = existing ? toCleanupPolicyView(existing) : null;
      const enabled = changes.enabled ?? before?.enabled ?? true;
      const keep = changes.keep_n_days_after_download ?? before?.keep_n_days_after_download ?? DEFAULT_KEEP_DAYS;
      const cadence = changes.cadence_days ?? before?.cadence_days ?? DEFAULT_CADENCE_DAYS;
      const reschedule = !before || !before.enabled || before.cadence_days !== cadence || before.next_run_at === null;
      const nextRunAt = !enabled ? null : reschedule ? now + cadence * DAY : before.next_run_at;
      const values = { enabled: enabled ? 1 as const : 0 as const, keep_n_days_after_download: keep, cadence_days: cadence, next_run_at: nextRunAt, updated_at: now };
      const row = existing
        ? await trx.updateTable('cleanup_policies').set(values).where('id', '=', existing.id).returningAll().executeTakeFirstOrThrow()
        : await trx.insertInto('cleanup_policies').values({ ...values, group_id: id, last_run_at: null, last_run_deleted_entries: 0, last_run_deleted_bytes: 0, failure_message: null, created_at: now }).returningAll().executeTakeFirstOrThrow();
      const after = toCleanupPolicyView(row);
      await recordAudit(trx, actor, {
        groupId: id, action: existing ? 'cleanup_policy.update' : 'cleanup_policy.create', targetType: 'cleanup_policy', targetId: row.id,
        details: before ? { before: auditState(before), after: auditState(after) } : { after: auditState(after) },
      });
      return ok({ policy: after, created: !existing });
    });
  }

  /** Members (read_virtual_registry): the group's latest cleanup and eviction runs, newest first. */
  async runs(actor: Actor, groupId: number | string, limit = RUNS_LIMIT): Promise<Result<CleanupRunView[]>> {
    return guarded(async () => {
      const group = await authorizeGroup(this.#db, actor, groupId, 'read_virtual_registry');
      if (!group.ok) return group;
      const rows = await this.#db.selectFrom('cleanup_runs').selectAll().where('group_id', '=', group.value.id)
        .orderBy('id', 'desc').limit(Math.max(1, Math.min(limit, RUNS_LIMIT))).execute();
      return ok(rows.map((row) => ({
        id: row.id, group_id: row.group_id, reason: row.reason, started_at: Number(row.started_at), finished_at: Number(row.finished_at),
        deleted_entries: Number(row.deleted_entries), deleted_bytes: Number(row.deleted_bytes), failure_message: row.failure_message,
      })));
    });
  }

  /** Owners: removes the policy; nothing is evicted by it any more. */
  async delete(actor: Actor, groupId: number | string): Promise<Result<CleanupPolicyView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, groupId, 'admin_virtual_registry'));
    if (!group.ok) return group;
    const id = group.value.id;
    return transact(this.#db, async (trx) => {
      if (!(await lockGroup(trx, id))) return notFound('group');
      const row = await trx.selectFrom('cleanup_policies').selectAll().where('group_id', '=', id).executeTakeFirst();
      if (!row) return notFound('cleanup policy');
      await trx.deleteFrom('cleanup_policies').where('id', '=', row.id).execute();
      const before = toCleanupPolicyView(row);
      await recordAudit(trx, actor, { groupId: id, action: 'cleanup_policy.destroy', targetType: 'cleanup_policy', targetId: row.id, details: { before: auditState(before) } });
      return ok(before);
    });
  }
}
