// Persistence shared by the registry, upstream and link services: write transactions with row locks,
// contiguous link positions, marking cache entries for destruction, and database errors as results.
//
// Lock order, the same in every write, so that concurrent writers queue instead of deadlocking:
// group → registries (ascending id) → upstreams (ascending id).
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { RegistryUpstream } from '../db/schema.ts';
import { isPostgres } from './database.ts';
import type { Trx } from './database.ts';

// The database helpers live in database.ts (one for every service); re-exported for this store's users.
export { guarded, isPostgres, persistenceFailure, transact } from './database.ts';
export type { Trx } from './database.ts';

/** Locks rows for the rest of the transaction (PostgreSQL); SQLite writers are already serialised. */
async function lockRows(trx: Trx, table: 'groups' | 'registries' | 'upstreams', ids: readonly number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  let query = trx.selectFrom(table).select('id').where('id', 'in', [...ids]).orderBy('id');
  if (isPostgres(trx)) query = query.forUpdate();
  return (await query.execute()).map((row) => row.id);
}

/** False when the group does not exist (any more). */
export async function lockGroup(trx: Trx, groupId: number): Promise<boolean> {
  return (await lockRows(trx, 'groups', [groupId])).length === 1;
}

/** Returns the ids that still exist. */
export const lockRegistries = (trx: Trx, ids: readonly number[]) => lockRows(trx, 'registries', ids);
export const lockUpstreams = (trx: Trx, ids: readonly number[]) => lockRows(trx, 'upstreams', ids);

export function linksOf(trx: Trx, registryId: number): Promise<RegistryUpstream[]> {
  return trx.selectFrom('registry_upstreams').selectAll().where('registry_id', '=', registryId).orderBy('position').execute();
}

/**
 * Gives the links of one registry the positions 1..N in the given order (links of the registry not in
 * `ordered` must be deleted already). The table has unique (registry_id, position) and a check
 * position between 1 and 20, both checked row by row on both databases, so renumbering in place can
 * collide halfway (1↔2) and there is no spare range to park rows in when a registry has 20 links.
 * Instead the rows whose position changes are deleted and inserted again with their ids and creation
 * times: the positions they free are exactly the positions they take, so no statement ever collides.
 * Callers hold the registry's lock (PostgreSQL) so concurrent rewrites queue.
 */
export async function writePositions(trx: Trx, ordered: readonly RegistryUpstream[], now: number): Promise<void> {
  const moved = ordered
    .map((link, index) => ({ ...link, position: index + 1 }))
    .filter((link, index) => link.position !== ordered[index].position);
  if (moved.length === 0) return;
  await trx.deleteFrom('registry_upstreams').where('id', 'in', moved.map((link) => link.id)).execute();
  await trx.insertInto('registry_upstreams').values(moved.map((link) => ({ ...link, updated_at: now }))).execute();
}

/** Renumbers what is left of a registry's links to 1..N, keeping their order. */
export async function closeGaps(trx: Trx, registryId: number, now: number): Promise<void> {
  await writePositions(trx, await linksOf(trx, registryId), now);
}

/**
 * Marks the live cache entries of these upstreams for the destroy worker (DESIGN §4): one set-based
 * update, so destroying a large upstream stays instant. Entries in other states lose their upstream
 * when it is deleted (upstream_id set null), which the worker collects as well.
 */
export async function markEntriesForDestruction(trx: Trx, upstreamIds: readonly number[], now: number): Promise<number> {
  if (upstreamIds.length === 0) return 0;
  const result = await trx.updateTable('cache_entries')
    .set({ status: CACHE_ENTRY_STATUS.pending_destruction, updated_at: now })
    .where('upstream_id', 'in', [...upstreamIds])
    .where('status', '=', CACHE_ENTRY_STATUS.default)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
