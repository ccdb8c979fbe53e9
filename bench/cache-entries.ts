// Cache entry service on PostgreSQL (DESIGN §4): create-or-update throughput with 16 concurrent
// callers, marking 100,000 entries of one upstream for destruction, and the destroy worker deleting
// them and their objects. Runs in a schema of its own, dropped at the end.
//
//   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --disable-warning=ExperimentalWarning bench/cache-entries.ts
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { sql } from 'kysely';
import { openDatabase } from '../src/db/connect.ts';
import { SYSTEM } from '../src/auth/policy.ts';
import { CacheDestroyer } from '../src/services/cache-destroyer.ts';
import { CacheEntryService } from '../src/services/cache-entries.ts';
import { FilesystemObjectStore } from '../src/storage/filesystem.ts';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const CALLERS = 16;
const UPSERTS = Number(process.env.BENCH_UPSERTS ?? 20_000);
const MARKED = Number(process.env.BENCH_MARKED ?? 100_000);
const OBJECTS_FOR_UPSERTS = 64;

const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;
const rate = (count: number, elapsed: number) => `${Math.round(count / elapsed).toLocaleString('en')}/s`;

async function withAdmin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

const schema = `bench_${process.pid}_${randomBytes(3).toString('hex')}`;
const root = mkdtempSync(path.join(tmpdir(), 'manifold-bench-'));
await withAdmin(`create schema ${schema}`);
const database = openDatabase({ url, searchPath: schema, poolSize: CALLERS + 4 });
try {
  await database.migrate();
  const { db } = database;
  const store = new FilesystemObjectStore({ root });
  await store.init();
  const entries = new CacheEntryService({ db, dialect: 'postgres', store, changes: database.changes });

  const now = Date.now();
  const group = await db.insertInto('groups').values({ path: 'bench', name: 'bench', created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow();
  const newUpstream = (name: string) => db.insertInto('upstreams').values({ group_id: group.id, name, url: `https://${name}.example.com`, cache_validity_hours: 24, created_at: now, updated_at: now }).returning('id').executeTakeFirstOrThrow();

  // 1. create-or-update, 16 callers: first creating UPSERTS entries, then refreshing them.
  const upstream = await newUpstream('upserts');
  const objects: Array<{ digest: string; size: number }> = [];
  for (let i = 0; i < OBJECTS_FOR_UPSERTS; i++) {
    const bytes = Buffer.from(`{"manifest":${i}}`);
    const writer = await store.createWriter(sha256(bytes));
    await writer.write(bytes);
    const committed = await writer.commit(bytes.length);
    if (!committed.ok) throw new Error(committed.message);
    objects.push(committed.value);
  }
  const upsertRound = async (etag: string) => {
    let next = 0;
    let failures = 0;
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CALLERS }, async () => {
      while (next < UPSERTS) {
        const i = next++;
        const object = objects[i % objects.length];
        const result = await entries.createOrUpdate(SYSTEM, {
          upstreamId: upstream.id, relativePath: `/bench/image${i % 100}/manifests/tag${i}`,
          digest: object.digest, size: object.size, contentType: 'application/vnd.oci.image.manifest.v1+json', upstreamEtag: etag,
        });
        if (!result.ok) failures++;
      }
    }));
    return { elapsed: seconds(started), failures };
  };
  const created = await upsertRound('"v1"');
  const refreshed = await upsertRound('"v2"');

  // 2. marking MARKED entries of one upstream; every entry has its own stored object.
  const purged = await newUpstream('purged');
  const objectsDir = path.join(root, 'sha256');
  const digests: string[] = [];
  for (let i = 0; i < MARKED; i++) {
    const content = `blob ${i}`;
    const digest = sha256(content);
    const hex = digest.slice(7);
    mkdirSync(path.join(objectsDir, hex.slice(0, 2)), { recursive: true });
    writeFileSync(path.join(objectsDir, hex.slice(0, 2), hex), content);
    digests.push(digest);
  }
  for (let i = 0; i < MARKED; i += 5000) {
    await db.insertInto('cache_entries').values(digests.slice(i, i + 5000).map((digest, j) => ({
      group_id: group.id, upstream_id: purged.id, relative_path: `/bench/layers${(i + j) % 50}/blobs/${digest}`,
      digest, size: `blob ${i + j}`.length, content_type: 'application/octet-stream', upstream_etag: null,
      upstream_checked_at: now, created_at: now, updated_at: now,
    }))).execute();
  }
  await sql`analyze cache_entries`.execute(db);
  let started = process.hrtime.bigint();
  const marked = await entries.markUpstreamForDestruction(SYSTEM, purged.id);
  const markSeconds = seconds(started);
  if (!marked.ok || marked.value.marked !== MARKED) throw new Error(`marked ${JSON.stringify(marked)}`);

  // 3. the destroy worker deleting them (rows and objects).
  started = process.hrtime.bigint();
  const run = await new CacheDestroyer({ db, dialect: 'postgres', store }).runOnce();
  const destroySeconds = seconds(started);

  console.log(`create-or-update, ${CALLERS} concurrent callers: ${UPSERTS} new entries in ${created.elapsed.toFixed(2)} s (${rate(UPSERTS, created.elapsed)}, ${created.failures} failures); ${UPSERTS} refreshes in ${refreshed.elapsed.toFixed(2)} s (${rate(UPSERTS, refreshed.elapsed)}, ${refreshed.failures} failures)`);
  console.log(`mark ${MARKED.toLocaleString('en')} entries of one upstream for destruction: ${markSeconds.toFixed(2)} s (${rate(MARKED, markSeconds)})`);
  console.log(`destroy worker (batches of 500): ${run.entries.toLocaleString('en')} entries and ${run.objects.toLocaleString('en')} objects in ${destroySeconds.toFixed(2)} s (${rate(run.entries, destroySeconds)}), ${run.errors} errors`);
} finally {
  await database.close();
  await withAdmin(`drop schema ${schema} cascade`);
  rmSync(root, { recursive: true, force: true });
}
