// The one way services reach the database: `transact` for writes, `guarded` for reads. Both return
// Results; a database that is unavailable (see db/unavailable.ts) is always the `unavailable` reason,
// whichever service and whichever database, so that every caller answers it the same way (503).
import { PostgresAdapter } from 'kysely';
import type { Transaction } from 'kysely';
import type { Db } from '../db/connect.ts';
import type { Database } from '../db/schema.ts';
import { isDatabaseUnavailable, unavailabilityOf } from '../db/unavailable.ts';
import { err } from '../result.ts';
import type { Err, Result } from '../result.ts';
import { isUniqueViolation } from './validation.ts';

export type Trx = Transaction<Database>;

export { isDatabaseUnavailable };

export function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** The failure every service returns when the database cannot be reached or does not answer in time. */
export function unavailable(cause?: unknown): Err<'unavailable'> {
  const kind = unavailabilityOf(cause);
  return err('unavailable', `the database is unavailable${kind ? ` (${kind})` : ''}; try again shortly`, { cause });
}

/**
 * A database exception as a result: unavailability is `unavailable`, a unique violation the given
 * `conflict` (a race lost to a concurrent writer), anything else `persistence_error` with its cause.
 */
export function persistenceFailure(error: unknown, conflict: Err = err('conflict', 'already exists')): Err {
  if (isDatabaseUnavailable(error)) return unavailable(error);
  if (isUniqueViolation(error)) return conflict;
  return err('persistence_error', `database error: ${(error as Error | null)?.message ?? String(error)}`, { cause: error });
}

/** Carries an expected failure out of a transaction so that it rolls back. */
class Rollback extends Error {
  readonly result: Err;
  constructor(result: Err) {
    super(result.message);
    this.result = result;
  }
}

/**
 * node:sqlite is synchronous: two connections to one file in the same process (tests open several)
 * cannot wait for each other's write lock, since waiting would block the very thread that has to
 * release it; SQLite answers "database is locked" instead. Write transactions of this process
 * therefore queue here (the registry's row lock of PostgreSQL, in effect). With the usual single
 * connection, whose transactions Kysely serialises anyway, this costs nothing.
 */
let sqliteWriters: Promise<unknown> = Promise.resolve();

/**
 * Runs `work` in one write transaction. A failed result returned by `work` rolls the transaction back
 * and is returned as is; a database exception becomes a result (see persistenceFailure).
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

/** Runs reads (or a single write outside a transaction); a database exception becomes a result. */
export async function guarded<T>(read: () => Promise<Result<T>>, conflict?: Err): Promise<Result<T>> {
  try {
    return await read();
  } catch (error) {
    return persistenceFailure(error, conflict);
  }
}

/**
 * Runs a service call whose reads may throw (the pull path reads through in-memory fallbacks, see
 * RegistryService.findForPull): a database that is unavailable becomes the `unavailable` result.
 */
export async function unavailableAsResult<T>(call: () => Promise<Result<T>>): Promise<Result<T>> {
  try {
    return await call();
  } catch (error) {
    if (isDatabaseUnavailable(error)) return unavailable(error);
    throw error;
  }
}
