// The sign-in throttle's counters in PostgreSQL (src/auth/login-throttle.ts): rate-limiter-flexible's
// PostgreSQL store over the services' pool, so that every replica counts the same failures and honours
// the same blocks. Its queries are the library's own, on the table `login_throttle` (migrations).
import { CompiledQuery } from 'kysely';
import { RateLimiterPostgres } from '../auth/rate-limiters.ts';
import type { LoginThrottleDeps } from '../auth/login-throttle.ts';
import type { Db } from '../db/connect.ts';

/** Limiters whose counters are rows of `login_throttle`: shared by every replica on the database. */
export function postgresLimiters(db: Db): NonNullable<LoginThrottleDeps['limiter']> {
  // node-postgres's result shape, which the store reads: rows, and rowCount (rows read or changed).
  const storeClient = {
    query: async (query: { text: string; values?: unknown[] }) => {
      const result = await db.executeQuery(CompiledQuery.raw(query.text, query.values ?? []));
      return { rows: result.rows, rowCount: result.numAffectedRows === undefined ? result.rows.length : Number(result.numAffectedRows) };
    },
  };
  return (options) => new RateLimiterPostgres({ ...options, storeClient, storeType: 'client', tableName: 'login_throttle', tableCreated: true });
}

