// Persistence shared by the registry, upstream and link services: write transactions with row locks,
// contiguous link positions, marking cache entries for destruction, and database errors as results.
//
// Lock order, the same in every write, so that concurrent writers queue instead of deadlocking:
// group → registries (ascending id) → upstreams (ascending id).
import { PostgresAdapter } from 'kysely';
import type { Transaction } from 'kysely';
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { Database, RegistryUpstream } from '../db/schema.ts';
import { err } from '../result.ts';
import type { Err, Result } from '../result.ts';
import { isUniqueViolation } from './validation.ts';

export type Trx = Transaction<Database>;

export function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * node:sqlite is synchronous: two connections to one file in the same process (tests open several)
 * cannot wait for each other's write lock, since waiting would block the very thread that has to
 * release it; SQLite answers "database is locked" instead. Write transactions of this process
 * therefore queue here (the registry's row lock of PostgreSQL, in effect). With the usual single
 * connection, whose transactions Kysely serialises anyway, this costs nothing.
 */
let sqliteWriters: Promise<unknown> = Promise.resolve();

/** Carries an expected failure out of a transaction so that it rolls back. */
class Rollback extends Error {
  readonly result: Err;
  constructor(result: Err) {
    super(result.message);
    this.result = result;
  }
}

/** A database failure as a result: unique violations are conflicts, anything else keeps its cause. */
export function persistenceFailure(error: unknown, conflict: Err = err('conflict', 'already exists')): Err {
  if (isUniqueViolation(error)) return conflict;
  return err('persistence_error', `database error: ${(error as Error | null)?.message ?? String(error)}`, { cause: error });
}

/**
 * Runs `work` in one write transaction. A failed result returned by `work` rolls the transaction back
 * and is returned as is; a database exception becomes `persistence_error`, or `conflict` (given or a
 * generic one) for a unique violation: a race lost to a concurrent writer.
 */
export async function transact<T>(db: Db, work: (trx: Trx) => Promise<Result<T>>, conflict?: Err): Promise<Result<T>> {
  const run = async () => {
    try {
      return await db.transaction().execute(async (trx) => {
        const result = await work(trx);
        if (!result.ok) throw new Rollback(result);
        return result;
      });
    } catch (error) {
      if (error instanceof Rollback) return error.result;
      return persistenceFailure(error, conflict);
    }
  };
  if (isPostgres(db)) return run();
  const queued = sqliteWriters.then(run);
  sqliteWriters = queued.catch(() => undefined);
  return queued;
}

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

/** A small time-bounded memory of lookups; DESIGN §8 allows seconds of staleness for hot metadata. */
export class LookupCache<V> {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, { value: V; expiresAt: number }>();
  #generation = 0;

  constructor(options: { ttlMs: number; maxEntries?: number }) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries ?? 10_000;
  }

  /** Take it before reading the database and give it to `set`, so that a read older than a `clear` is not kept. */
  get generation(): number {
    return this.#generation;
  }

  get(key: string, now = Date.now()): V | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt > now) return hit.value;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, generation: number, now = Date.now()): void {
    if (this.#ttlMs <= 0 || generation !== this.#generation) return;
    this.#entries.delete(key);
    // Maps iterate in insertion order: drop the oldest when full (unknown names must not grow it forever).
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(key, { value, expiresAt: now + this.#ttlMs });
  }

  clear(): void {
    this.#generation += 1;
    this.#entries.clear();
  }
}

/** Runs a read; a database exception becomes `persistence_error`. */
export async function guarded<T>(read: () => Promise<Result<T>>): Promise<Result<T>> {
  try {
    return await read();
  } catch (error) {
    return persistenceFailure(error);
  }
}

