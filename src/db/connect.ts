// Opens the database: node:sqlite for the embedded default, PostgreSQL when given a postgres:// URL.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import type { Database } from './schema.ts';
import { migrationProvider } from './migrations.ts';

export type Dialect = 'sqlite' | 'postgres';

export type Db = Kysely<Database>;

export interface DatabaseHandle {
  db: Db;
  dialect: Dialect;
  /** Runs pending migrations; safe to call from several processes at once. */
  migrate(): Promise<void>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export type DatabaseOptions =
  | { url: string; poolSize?: number; searchPath?: string }
  | { sqlitePath: string };

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
function nodeSqliteDatabase(file: string) {
  const database = new DatabaseSync(file);
  database.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
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
  return {
    close: () => database.close(),
    prepare(text: string) {
      const statement = prepare(text);
      return {
        reader: statement.columns().length > 0,
        all: (parameters: Params) => statement.all(...bind(parameters)),
        run: (parameters: Params) => statement.run(...bind(parameters)),
        iterate: (parameters: Params) => statement.iterate(...bind(parameters)) as IterableIterator<unknown>,
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

function isOtherSchemaDropped(error: unknown, ownSchema: string | undefined): boolean {
  const match = /^schema "([^"]+)" does not exist$/.exec((error as Error | undefined)?.message ?? '');
  return match !== null && match[1] !== ownSchema;
}

export function openDatabase(options: DatabaseOptions): DatabaseHandle {
  let db: Db;
  let dialect: Dialect;
  if ('url' in options) {
    dialect = 'postgres';
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      options: options.searchPath ? `-c search_path=${options.searchPath}` : undefined,
      // bigint ids, times and sizes fit in a double (2^53); services see plain numbers on both databases.
      types: { getTypeParser: (oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) } as pg.CustomTypesConfig,
    });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    dialect = 'sqlite';
    if (options.sqlitePath !== ':memory:') {
      mkdirSync(path.dirname(path.resolve(options.sqlitePath)), { recursive: true, mode: 0o700 });
      createPrivateFile(options.sqlitePath);
    }
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: nodeSqliteDatabase(options.sqlitePath) }) });
  }
  return {
    db,
    dialect,
    async migrate() {
      // With a search_path of its own (tests, or `?options=-c search_path=…` in the URL), the migration
      // tables must live in that schema too, or Kysely finds another schema's lock table.
      const migrationTableSchema = 'url' in options ? (options.searchPath ?? urlSearchPath(options.url)) : undefined;
      const migrator = new Migrator({ db, provider: migrationProvider(dialect), migrationTableSchema });
      let { error, results } = await migrator.migrateToLatest();
      // Kysely looks for its tables across every schema of the database; a schema dropped meanwhile by
      // someone else (parallel test files) fails that lookup once. Nothing was migrated then: try again.
      for (let retry = 0; retry < 3 && !results && isOtherSchemaDropped(error, migrationTableSchema); retry++) {
        ({ error, results } = await migrator.migrateToLatest());
      }
      const failed = results?.find((r) => r.status === 'Error');
      if (error || failed) {
        throw new Error(`migration ${failed?.migrationName ?? ''} failed: ${(error as Error | undefined)?.message ?? 'unknown error'}`, { cause: error });
      }
    },
    async ping() {
      try {
        await sql`select 1`.execute(db);
        return true;
      } catch {
        return false;
      }
    },
    close: () => db.destroy(),
  };
}
