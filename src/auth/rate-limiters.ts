// The two stores of rate-limiter-flexible the sign-in throttle uses, loaded one by one (issue 19): the
// package's index loads every store it has (Redis, Mongo, DynamoDB, Prisma, etcd, the cluster one…),
// about 1 MB of an idle server. Types are the package's own. Import the limiters from here only.
import type * as Flexible from 'rate-limiter-flexible';
import MemoryStore from 'rate-limiter-flexible/lib/RateLimiterMemory.js';
import PostgresStore from 'rate-limiter-flexible/lib/RateLimiterPostgres.js';

export const RateLimiterMemory = MemoryStore as typeof Flexible.RateLimiterMemory;
export const RateLimiterPostgres = PostgresStore as typeof Flexible.RateLimiterPostgres;
