// The SQLite database holds password hashes, token digests and encrypted upstream credentials: the file
// and its -wal and -shm companions are the owner's only (0600), and so is a data directory it creates
// (0700), like the keys. SQLite-specific: it runs on SQLite in both suite runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { openDatabase } from '../../src/db/connect.ts';

const mode = (file: string) => statSync(file).mode & 0o777;

test('a new SQLite database, its WAL and SHM files and its new directory are for the owner only', async () => {
  const parent = mkdtempSync(path.join(tmpdir(), 'manifold-modes-'));
  const previousUmask = process.umask(0o022);
  try {
    const file = path.join(parent, 'data', 'manifold.db');
    const database = openDatabase({ sqlitePath: file });
    await database.migrate();
    await sql`insert into groups (path, name, description, created_at, updated_at) values ('acme', 'acme', null, 1, 1)`.execute(database.db);
    // Written while open: the WAL and the shared-memory index exist now.
    for (const name of ['manifold.db', 'manifold.db-wal', 'manifold.db-shm']) {
      assert.equal(mode(path.join(parent, 'data', name)).toString(8), '600', name);
    }
    assert.equal(mode(path.join(parent, 'data')).toString(8), '700', 'the data directory');
    await database.close();
  } finally {
    process.umask(previousUmask);
    rmSync(parent, { recursive: true, force: true });
  }
});
