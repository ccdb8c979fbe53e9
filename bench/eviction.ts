// Eviction of 100,000 cache entries (issue 18, "Measure"): the time and the number of database
// statements of one storage quota check that must evict (almost) everything — measuring storage, walking
// the LRU order, marking, recording — and of the destroy run that deletes the rows and their objects;
// and the cost of the storage measure alone (the aggregate query the quota check runs every interval).
// SQLite in a temporary directory, or PostgreSQL in a schema of its own with BENCH_DATABASE_URL.
//
//   node --disable-warning=ExperimentalWarning bench/eviction.ts
//   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --disable-warning=ExperimentalWarning bench/eviction.ts
//
// Entries: BENCH_ENTRIES (100,000) blobs of 1 KiB over two upstreams, one in ten sharing its digest with
// an entry of the other upstream (the same layer behind two upstreams), pulled at distinct times.
// Objects: one file of 1 KiB per digest, so that the destroyer's deletes are real unlinks.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { openDatabase } from '../src/db/connect.ts';
import { CacheDestroyer } from '../src/services/cache-destroyer.ts';
import { Evictor } from '../src/services/eviction.ts';
import { StorageQuota } from '../src/services/storage-quota.ts';
import { FilesystemObjectStore } from '../src/storage/filesystem.ts';

const url = process.env.BENCH_DATABASE_URL;
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 100_000);
const SIZE = 1024;
const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;

/** Counts the statements Kysely sends. */
class StatementCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.count++;
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

const root = mkdtempSync(path.join(tmpdir(), 'manifold-bench-eviction-'));
const schema = `bench_${process.pid}_${randomBytes(3).toString('hex')}`;
const admin = async (statement: string) => {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(statement);
  await client.end();
};
if (url) await admin(`create schema ${schema}`);
const database = url ? openDatabase({ url, searchPath: schema, poolSize: 8 }) : openDatabase({ sqlitePath: path.join(root, 'manifold.db') });
try {
  await database.migrate();
  const { db } = database;
  const store = new FilesystemObjectStore({ root: path.join(root, 'objects') });
  await store.init();

  const now = Date.now();
  const group = await db.insertInto('groups').values({ path: 'bench', name: 'bench', created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow();
  const upstreams = [];
  for (const name of ['one', 'two']) {
    upstreams.push(await db.insertInto('upstreams').values({ group_id: group.id, name, url: `https://${name}.example.com`, cache_validity_hours: 24, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow());
  }

  // The entries and their objects (files written directly where the filesystem store keeps them).
  const started = process.hrtime.bigint();
  const body = randomBytes(SIZE);
  const digests: string[] = [];
  let rows = [];
  for (let i = 0; i < ENTRIES; i++) {
    const shared = i % 10 === 1;
    const digest = shared ? digests[digests.length - 1] : `sha256:${randomBytes(32).toString('hex')}`;
    if (!shared) {
      digests.push(digest);
      const hex = digest.slice(7);
      const dir = path.join(root, 'objects', 'sha256', hex.slice(0, 2));
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, hex), body);
    }
    const pulledAt = now - 2 * 3600_000 + i;
    rows.push({
      group_id: group.id, upstream_id: upstreams[shared ? 1 : 0].id, relative_path: `/bench/image${i % 1000}/blobs/${digest}`, digest, size: SIZE,
      content_type: 'application/octet-stream', upstream_etag: null, upstream_checked_at: pulledAt, downloaded_at: pulledAt, created_at: pulledAt - 1000, updated_at: pulledAt,
    });
    if (rows.length === 1000) {
      await db.insertInto('cache_entries').values(rows).execute();
      rows = [];
    }
  }
  if (rows.length > 0) await db.insertInto('cache_entries').values(rows).execute();
  console.log(`${url ? 'PostgreSQL' : 'SQLite'}: ${ENTRIES.toLocaleString('en')} entries, ${digests.length.toLocaleString('en')} objects of ${SIZE} B written in ${seconds(started).toFixed(1)} s`);

  const counter = new StatementCounter();
  const counted = db.withPlugin(counter);
  const evictor = new Evictor({ db: counted, graceMs: 0 });

  // The storage measure alone (median of 5).
  const measures: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = process.hrtime.bigint();
    await evictor.stored();
    measures.push(seconds(t) * 1000);
  }
  measures.sort((a, b) => a - b);
  console.log(`storage measure (unique objects of live entries): ${measures[2].toFixed(1)} ms median of 5 (${measures[0].toFixed(1)}–${measures[4].toFixed(1)})`);

  // One quota check that evicts down to the low watermark of a limit far below what is stored.
  const destroyer = new CacheDestroyer({ db: counted, dialect: database.dialect, store });
  let destroyedIn = 0;
  let destroyStatements = 0;
  const timedDestroyer = {
    runOnce: async () => {
      const before = counter.count;
      const t = process.hrtime.bigint();
      const run = await destroyer.runOnce();
      destroyedIn = seconds(t);
      destroyStatements = counter.count - before;
      console.log(`  destroy run: ${run.entries.toLocaleString('en')} rows and ${run.objects.toLocaleString('en')} objects deleted in ${destroyedIn.toFixed(2)} s, ${destroyStatements} statements`);
      return run;
    },
  };
  const quota = new StorageQuota({ db: counted, dialect: database.dialect, evictor, destroyer: timedDestroyer, settings: { maxBytes: 100 * SIZE, highWatermarkPercent: 90, lowWatermarkPercent: 80 }, intervalMs: 3600_000 });
  counter.count = 0;
  const t = process.hrtime.bigint();
  const check = await quota.check();
  const total = seconds(t);
  console.log(`quota check: ${check.evictedEntries.toLocaleString('en')} entries (${(check.evictedBytes / 1024 / 1024).toFixed(1)} MiB) evicted; eviction ${(total - destroyedIn).toFixed(2)} s, ${counter.count - destroyStatements} statements; with the destroy run ${total.toFixed(2)} s, ${counter.count} statements`);
  const left = await db.selectFrom('cache_entries').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
  console.log(`  entries left: ${Number(left.n)} (the newest, under the low watermark of 80 entries' worth)`);
} finally {
  await database.close();
  if (url) await admin(`drop schema ${schema} cascade`);
  rmSync(root, { recursive: true, force: true });
}
