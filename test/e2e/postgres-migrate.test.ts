// Migrating a PostgreSQL database that other schemas share: other test files (or other applications)
// create and drop schemas meanwhile, and may keep Kysely tables of their own. Neither may fail
// Manifold's start. Found in CI: a schema dropped by a parallel test file during another file's
// migration failed it with `relation "e2e_….login_throttle" does not exist`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/connect.ts';
import { createPostgresSchema, postgresUrl, withPostgresClient } from '../helpers/db.ts';
import type { PostgresSchema } from '../helpers/db.ts';

let schema: PostgresSchema;
before(async () => {
  schema = await createPostgresSchema('migrate');
});
after(() => schema.drop());

test('migrations succeed while other schemas of the database are created and dropped', async () => {
  let churning = true;
  // What parallel test files do all the time: a schema with a few tables, then `drop schema … cascade`.
  const churn = () => withPostgresClient(async (client) => {
    while (churning) {
      const other = `churn_${process.pid}_${randomBytes(4).toString('hex')}`;
      await client.query(`create schema ${other}; ${[1, 2, 3, 4, 5].map((i) => `create table ${other}.t${i} (id serial primary key, a text)`).join('; ')}`);
      await client.query(`drop schema ${other} cascade`);
    }
  });
  const churners = [churn(), churn(), churn(), churn()];
  const database = openDatabase({ url: postgresUrl, searchPath: schema.schema, poolSize: 2 });
  const failures: string[] = [];
  try {
    // The first run creates the tables; the next ones find them all and change nothing: each looks.
    for (let run = 0; run < 40; run++) {
      await database.migrate().catch((error: Error) => failures.push(error.message));
    }
  } finally {
    churning = false;
    await Promise.all(churners);
    await database.close();
  }
  assert.deepEqual(failures, []);
});

test("another application's Kysely tables in another schema are not taken for Manifold's", async () => {
  // A database of its own: Manifold without a search_path migrates into `public`, which the shared
  // test database must not get.
  const name = `manifold_migrate_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withPostgresClient((client) => client.query(`create database ${name}`));
  const url = new URL(postgresUrl);
  url.pathname = `/${name}`;
  try {
    await withPostgresClient((client) => client.query(`
      create schema other_app;
      create table other_app.kysely_migration (name varchar(255) primary key, timestamp varchar(255) not null);
      create table other_app.kysely_migration_lock (id varchar(255) primary key, is_locked integer not null default 0);
      insert into other_app.kysely_migration_lock values ('migration_lock', 0);`), url.toString());
    const database = openDatabase({ url: url.toString(), poolSize: 2 });
    try {
      await database.migrate();
      await database.migrate();
      const tables = await sql<{ schema: string; name: string }>`select table_schema as schema, table_name as name from information_schema.tables where table_name in ('kysely_migration', 'cache_entries') order by 1, 2`.execute(database.db);
      assert.deepEqual(tables.rows, [
        { schema: 'other_app', name: 'kysely_migration' },
        { schema: 'public', name: 'cache_entries' },
        { schema: 'public', name: 'kysely_migration' },
      ]);
      const theirs = await withPostgresClient((client) => client.query('select count(*)::int as n from other_app.kysely_migration'), url.toString());
      assert.equal(theirs.rows[0].n, 0, "the other application's migration record is untouched");
    } finally {
      await database.close();
    }
  } finally {
    await withPostgresClient((client) => client.query(`drop database ${name} with (force)`));
  }
});
