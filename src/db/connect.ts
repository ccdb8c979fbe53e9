// Opens the database: node:sqlite for the embedded default, PostgreSQL when given a postgres:// URL.
// Either way a database that goes away (stopped, frozen, a connection killed, a file locked for long)
// surfaces as DatabaseUnavailableError within bounded time, and never ends the process.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import type { Logger } from '../log.ts';
import type { Database } from './schema.ts';
import { ChangeFeed, PostgresChangeTransport } from './change-feed.ts';
import { MigrationPostgresDialect } from './migration-introspector.ts';
import { migrationProvider } from './migrations.ts';
import { GuardedPool, PROBE_TIMEOUT_MS } from './postgres-pool.ts';
import { classifyDatabaseError } from './unavailable.ts';

export type Dialect = 'sqlite' | 'postgres';

export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  dialect: Dialect;
  /** Runs pending migrations; safe to call from several processes at once. */
  migrate(): Promise<void>;
  /** True when the database answers a trivial query, within a second in every case. */
  ping(): Promise<boolean>;
  /** What writes changed, for every cache of this process and (PostgreSQL) of the other replicas. */
  changes: ChangeFeed;
  close(): Promise<void>;
}

export type DatabaseOptions =
  | { url: string; poolSize?: number; searchPath?: string; connectTimeoutMs?: number; statementTimeoutMs?: number; logger?: Logger }
  | { sqlitePath: string; busyTimeoutMs?: number; logger?: Logger };

export const DATABASE_DEFAULTS = { connectTimeoutMs: 5_000, statementTimeoutMs: 15_000, busyTimeoutMs: 500 };

const STATEMENT_CACHE_SIZE = 256;

/**
 * Creates the database file empty with mode 0600 before SQLite opens it (SQLite would create it 0644):
 * its -wal and -shm files take the database file's mode, so all three hold the data for the owner only.
 */
function createPrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * Kysely's SQLite dialect expects better-sqlite3's statement shape; node:sqlite differs in two ways:
 * parameters are passed as arguments, and there is no `reader` flag (a statement returning columns reads).
 */
function nodeSqliteDatabase(file: string, busyTimeoutMs: number) {
  const database = new DatabaseSync(file);
  // node:sqlite waits for a lock on the event loop's thread: the busy timeout stays short, and a lock
  // held longer is SQLITE_BUSY, which the statements below report as DatabaseUnavailableError.
  database.exec(`PRAGMA busy_timeout = ${Math.trunc(busyTimeoutMs)}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;`);
  const statements = new Map<string, StatementSync>();
  const prepare = (text: string): StatementSync => {
    let statement = statements.get(text);
    if (!statement) {
      statement = database.prepare(text);
      if (statements.size >= STATEMENT_CACHE_SIZE) statements.delete(statements.keys().next().value as string);
      statements.set(text, statement);
    }
    return statement;
  };
  type Params = ReadonlyArray<unknown>;
  const bind = (parameters: Params) => parameters as unknown as Parameters<StatementSync['all']>;
  const classified = <T>(run: () => T): T => {
    try {
      return run();
    } catch (error) {
      throw classifyDatabaseError(error);
    }
  };
  return {
    close: () => database.close(),
    prepare(text: string) {
      const statement = classified(() => prepare(text));
      return {
        reader: statement.columns().length > 0,
        all: (parameters: Params) => classified(() => statement.all(...bind(parameters))),
        run: (parameters: Params) => classified(() => statement.run(...bind(parameters))),
        iterate: (parameters: Params) => classified(() => statement.iterate(...bind(parameters)) as IterableIterator<unknown>),
      };
    },
  };
}

/** The first schema of a `search_path` set in a PostgreSQL URL's `options` parameter, if any. */
function urlSearchPath(url: string): string | undefined {
  try {
    const match = /search_path=\s*"?([^\s,"]+)/.exec(new URL(url).searchParams.get('options') ?? '');
    return match?.[1];
  } catch {
    return undefined;
  }
}

/** A promise's answer, or `fallback` once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  let db: Db;
  let dialect: Dialect;
  let ping: () => Promise<boolean>;
  let migrationDb: () => { db: Db; done: () => Promise<void> };
  let changes: ChangeFeed;
  if ('url' in options) {
    dialect = 'postgres';
    const poolOptions = {
      url: options.url,
      poolSize: options.poolSize ?? 10,
      searchPath: options.searchPath,
      connectTimeoutMs: options.connectTimeoutMs ?? DATABASE_DEFAULTS.connectTimeoutMs,
      statementTimeoutMs: options.statementTimeoutMs ?? DATABASE_DEFAULTS.statementTimeoutMs,
      logger: options.logger,
    };
    const pool = new GuardedPool(poolOptions);
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: pool as unknown as ConstructorParameters<typeof PostgresDialect>[0]['pool'] }) });
    ping = () => within(pool.ping(), PROBE_TIMEOUT_MS + 50, false);
    // Migrations may build indexes on big tables: no statement timeout, on a pool of their own.
    migrationDb = () => {
      const own = new Kysely<Database>({ dialect: new MigrationPostgresDialect({ pool: new GuardedPool({ ...poolOptions, poolSize: 2, statementTimeoutMs: 0 }) as unknown as ConstructorParameters<typeof PostgresDialect>[0]['pool'] }) });
      return { db: own, done: () => own.destroy() };
    };
    const transport = new PostgresChangeTransport({
      url: options.url,
      searchPath: options.searchPath,
      connectTimeoutMs: poolOptions.connectTimeoutMs,
      logger: options.logger,
      query: (text, values) => db.executeQuery(CompiledQuery.raw(text, values)),
    });
    changes = new ChangeFeed({ transport, logger: options.logger });
  } else {
    dialect = 'sqlite';
    if (options.sqlitePath !== ':memory:') {
      mkdirSync(path.dirname(path.resolve(options.sqlitePath)), { recursive: true, mode: 0o700 });
      createPrivateFile(options.sqlitePath);
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? DATABASE_DEFAULTS.busyTimeoutMs;
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: nodeSqliteDatabase(options.sqlitePath, busyTimeoutMs) }) });
    // Reads the schema, so a file locked against readers fails (after the busy timeout) too.
    ping = async () => {
      try {
        await sql`select count(*) from sqlite_schema`.execute(db);
        return true;
      } catch {
        return false;
      }
    };
    migrationDb = () => ({ db, done: async () => undefined });
    changes = new ChangeFeed({ logger: options.logger });
  }
  return {
    db,
    dialect,
    async migrate() {
      // With a search_path of its own (tests, or `?options=-c search_path=…` in the URL), Kysely creates
      // that schema when it is missing and keeps its migration tables there, beside Manifold's.
      const migrationTableSchema = 'url' in options ? (options.searchPath ?? urlSearchPath(options.url)) : undefined;
      const target = migrationDb();
      try {
        const migrator = new Migrator({ db: target.db, provider: migrationProvider(dialect), migrationTableSchema });
        const { error, results } = await migrator.migrateToLatest();
        const failed = results?.find((r) => r.status === 'Error');
        if (error || failed) {
          throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${(error as Error | undefined)?.message ?? 'unknown error'}`, { cause: error });
        }
      } finally {
        await target.done();
      }
    },
    ping,
    changes,
    async close() {
      await changes.close();
      await db.destroy();
    },
  };
}
