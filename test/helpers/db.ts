// A fresh, migrated database for one test file: SQLite in a temporary directory, or, when
// TEST_DATABASE_URL is set, a schema of its own in that PostgreSQL database (dropped afterwards).
// A PostgreSQL that cannot be reached fails the test; it is never skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase } from '../../src/db/connect.ts';
import type { DatabaseHandle, DatabaseOptions, Db } from '../../src/db/connect.ts';
import type { Database } from '../../src/db/schema.ts';

export interface TestDatabase extends DatabaseHandle {
  /** Opens another connection (pool) to the same database, e.g. to race two callers. */
  another(options?: { poolSize?: number }): DatabaseHandle;
  /** Closes every connection and removes the database. */
  destroy(): Promise<void>;
}

export const testDatabaseUrl = process.env.TEST_DATABASE_URL;
export const dialectUnderTest = testDatabaseUrl ? 'postgres' : 'sqlite';

/**
 * PostgreSQL for what exists only there (replicas, LISTEN/NOTIFY), in both CI passes: TEST_DATABASE_URL,
 * else the local `test` database CI guarantees. One that cannot be reached fails the test, never skips it.
 */
export const postgresUrl = testDatabaseUrl ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface PostgresSchema {
  schema: string;
  /** postgresUrl with `options=-c search_path=<schema>`: what a Manifold process is given. */
  url: string;
  drop(): Promise<void>;
}

/** Runs `run` with a fresh connection to `url` (postgresUrl by default), closed afterwards; one that cannot connect fails loudly. */
export async function withPostgresClient<T>(run: (client: pg.Client) => Promise<T>, url = postgresUrl): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(`PostgreSQL at ${url} cannot be reached (${(error as Error).message}): this test needs it in every pass (set TEST_DATABASE_URL, or run the local server with a database named test)`, { cause: error });
  }
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

/** A schema of its own in postgresUrl's database, for Manifold processes (replicas) sharing it. */
export async function createPostgresSchema(prefix = 'test'): Promise<PostgresSchema> {
  const schema = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const query = (text: string) => withPostgresClient(async (client) => void (await client.query(text)));
  await query(`create schema ${schema}`);
  const url = new URL(postgresUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return { schema, url: url.toString(), drop: () => query(`drop schema if exists ${schema} cascade`) };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const others: DatabaseHandle[] = [];
  let options: DatabaseOptions;
  let drop: () => Promise<void>;
  if (testDatabaseUrl) {
    const schema = `test_${process.pid}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: testDatabaseUrl });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.end();
    options = { url: testDatabaseUrl, searchPath: schema, poolSize: 10 };
    drop = async () => {
      const client = new pg.Client({ connectionString: testDatabaseUrl });
      await client.connect();
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    };
  } else {
    const dir = mkdtempSync(path.join(tmpdir(), 'manifold-db-'));
    options = { sqlitePath: path.join(dir, 'test.db') };
    drop = async () => rmSync(dir, { recursive: true, force: true });
  }
  const handle = openDatabase(options);
  await handle.migrate();
  return {
    ...handle,
    another(extra = {}) {
      const other = openDatabase('url' in options ? { ...options, ...extra } : options);
      others.push(other);
      return other;
    },
    async destroy() {
      await Promise.all(others.map((o) => o.close()));
      await handle.close();
      await drop();
    },
  };
}

const TABLES: (keyof Database)[] = ['users', 'groups', 'memberships', 'access_tokens', 'registries', 'upstreams', 'registry_upstreams', 'mirror_routes', 'registry_hostnames', 'cache_entries', 'cleanup_policies', 'audit_events'];

/** Row counts of every table of the data model: compare before and after a refused call (it writes nothing). */
export async function countRows(db: Db): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const { n } = await db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    counts[table] = Number(n);
  }
  return counts;
}
