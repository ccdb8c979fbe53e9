// The destroy worker (DESIGN §4): deletes cache entries marked pending_destruction (and those whose
// upstream was deleted), then the stored objects that no live entry refers to any more. Several
// workers may run at once: on PostgreSQL each batch claims its rows with FOR UPDATE SKIP LOCKED; on
// SQLite (one process) batches run one at a time.
//
// Order within a batch, and why it is safe against a fill creating an entry for the same digest:
//   1. claim the batch rows (they stay in place until step 4);
//   2. lock the batch's digests exclusively (object-references.ts), then find which still have a live
//      entry (status default or processing, upstream present); the others are orphans;
//   3. delete the orphans' objects, still holding the locks;
//   4. delete the batch rows, except those whose object could not be deleted: they get status error and
//      a later run retries them.
// An orphan this process is still reading or filling (a response, a follower, a fill: `inUse`) is not
// deleted yet: its rows stay pending and a later run takes them again.
// A fill commits its object, then creates its entry holding the same digest lock shared and re-checking
// that the object is stored. Either the entry is committed before step 2 (the destroyer sees it and
// keeps the object) or the creator runs after step 3 (it sees the object gone and creates no entry:
// object_not_present). A live entry never points at a deleted object.
import type { Db, Dialect } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';
import type { Logger } from '../log.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { guarded, transact } from './database.ts';
import { KeyedLock, lockDigestsExclusive, objectReferenceLock } from './object-references.ts';

const { default: LIVE, processing: PROCESSING, pending_destruction: PENDING_DESTRUCTION, error: ERROR } = CACHE_ENTRY_STATUS;

const DEFAULT_BATCH_SIZE = 500;
const DEFAULT_INTERVAL_MS = 30_000;
/** Rows whose destruction failed are tried again after this long. */
const DEFAULT_RETRY_AFTER_MS = 10 * 60_000;
/** Objects deleted at once within a batch (S3 deletes are network round trips). */
const DELETE_CONCURRENCY = 16;

export interface DestroyRun {
  /** Rows deleted. */
  entries: number;
  /** Stored objects deleted. */
  objects: number;
  /** Rows set to status error (their object could not be deleted), plus batches that failed outright. */
  errors: number;
}

/** One batch of runOnce: the rows it claimed (fewer than the batch size: nothing is left). */
/** `deferred`: rows left pending because their object is in use. */
type Batch = DestroyRun & { claimed: number; deferred: number };

interface Claimed {
  id: number;
  digest: string;
}

/** Runs `work` holding the in-process exclusive lock of every key (taken in the order given). */
function withExclusiveLocks<T>(keys: readonly string[], work: () => Promise<T>, from = 0): Promise<T> {
  if (from === keys.length) return work();
  return objectReferenceLock.exclusive(keys[from], () => withExclusiveLocks(keys, work, from + 1));
}

/** SQLite has no SKIP LOCKED: batches of every worker in this process take turns. */
const sqliteBatches = new KeyedLock();

export class CacheDestroyer {
  readonly #db: Db;
  readonly #dialect: Dialect;
  readonly #store: ObjectStore;
  readonly #batchSize: number;
  readonly #logger: Logger | undefined;
  readonly #retryAfterMs: number;
  readonly #inUse: (digest: string) => boolean;
  readonly #runs: PeriodicTask<DestroyRun>;

  constructor(deps: { db: Db; dialect: Dialect; store: ObjectStore; batchSize?: number; logger?: Logger; intervalMs?: number; retryAfterMs?: number; inUse?: (digest: string) => boolean }) {
    this.#db = deps.db;
    this.#dialect = deps.dialect;
    this.#store = deps.store;
    this.#batchSize = deps.batchSize ?? DEFAULT_BATCH_SIZE;
    this.#logger = deps.logger;
    this.#retryAfterMs = deps.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
    this.#inUse = deps.inUse ?? (() => false);
    this.#runs = new PeriodicTask({
      name: 'cache destruction',
      intervalMs: deps.intervalMs ?? DEFAULT_INTERVAL_MS,
      logger: deps.logger,
      run: () => this.runOnce(),
      onResult: (run) => {
        if (run.entries > 0 || run.errors > 0) this.#logger?.info(run, 'cache entries destroyed');
      },
    });
  }

  /** Destroys batches until none is left (or one fails). */
  async runOnce(): Promise<DestroyRun> {
    const total: DestroyRun = { entries: 0, objects: 0, errors: 0 };
    // Rows that fail during this run are set to error with a later time: this run does not retry them.
    const retryBefore = Date.now() - this.#retryAfterMs;
    for (;;) {
      const batch = this.#dialect === 'postgres' ? await this.#postgresBatch(retryBefore) : await sqliteBatches.exclusive('batch', () => guarded(() => this.#sqliteBatch(retryBefore)));
      if (!batch.ok) {
        this.#logger?.error({ err: batch.cause, reason: batch.reason }, `cache destruction batch failed (${batch.message}); retrying at the next run`);
        total.errors++;
        return total;
      }
      total.entries += batch.value.entries;
      total.objects += batch.value.objects;
      total.errors += batch.value.errors;
      // A full batch of rows whose objects are all in use: leave them for the next run.
      if (batch.value.claimed < this.#batchSize || batch.value.claimed === batch.value.deferred) return total;
    }
  }

  /** Runs every intervalMs until stop(); a run still going when the next is due is not doubled. */
  start(): void {
    this.#runs.start();
  }

  async stop(): Promise<void> {
    await this.#runs.stop();
  }

  /**
   * Deletes the objects of these digests that no live entry refers to, under the same per-digest lock
   * as a batch (steps 2-3 above), so that an entry created meanwhile keeps its object. `keep` is asked
   * under the lock too (storage check: an object committed since it was listed stays).
   */
  async deleteUnreferenced(digests: readonly string[], keep: (digest: string) => Promise<boolean> = async () => false): Promise<{ deleted: string[]; kept: string[]; failed: string[] }> {
    const outcome = { deleted: [] as string[], kept: [] as string[], failed: [] as string[] };
    const decide = async (db: Db, batch: string[]) => {
      const live = await this.#liveDigests(db, batch);
      const doomed: string[] = [];
      for (const digest of batch) {
        if (live.has(digest) || this.#inUse(digest) || (await keep(digest))) outcome.kept.push(digest);
        else doomed.push(digest);
      }
      const { failed } = await this.#deleteObjects(doomed);
      for (const digest of doomed) (failed.has(digest) ? outcome.failed : outcome.deleted).push(digest);
    };
    const unique = [...new Set(digests)];
    if (this.#dialect === 'postgres') {
      for (let i = 0; i < unique.length; i += this.#batchSize) {
        const batch = unique.slice(i, i + this.#batchSize);
        const done = await transact(this.#db, async (trx) => {
          await lockDigestsExclusive(trx, batch);
          await decide(trx, batch);
          return ok(undefined);
        });
        // The storage check reports a failure as it happened (its callers expect the database's error).
        if (!done.ok) throw done.cause ?? new Error(done.message);
      }
    } else {
      for (const digest of unique) await objectReferenceLock.exclusive(digest, () => decide(this.#db, [digest]));
    }
    return outcome;
  }

  /** Rows waiting for this worker: marked, upstream gone, or failed long enough ago. */
  #claimable(retryBefore: number) {
    return this.#db.selectFrom('cache_entries').select(['id', 'digest'])
      .where((eb) => eb.or([
        eb('status', '=', PENDING_DESTRUCTION),
        eb.and([eb('status', 'in', [LIVE, PROCESSING]), eb('upstream_id', 'is', null)]),
        eb.and([eb('status', '=', ERROR), eb('updated_at', '<', retryBefore)]),
      ]))
      .limit(this.#batchSize);
  }

  async #postgresBatch(retryBefore: number): Promise<Result<Batch>> {
    return transact(this.#db, async (trx) => {
      const rows: Claimed[] = await this.#claimable(retryBefore).forUpdate().skipLocked().execute();
      if (rows.length === 0) return ok({ claimed: 0, deferred: 0, entries: 0, objects: 0, errors: 0 });
      const digests = [...new Set(rows.map((row) => row.digest))];
      await lockDigestsExclusive(trx, digests);
      const live = await this.#liveDigests(trx, digests);
      const orphans = digests.filter((digest) => !live.has(digest));
      const busy = new Set(orphans.filter((digest) => this.#inUse(digest)));
      const { deleted, failed } = await this.#deleteObjects(orphans.filter((digest) => !busy.has(digest)));
      return ok({ claimed: rows.length, objects: deleted, ...(await this.#finish(trx, rows, failed, busy)) });
    });
  }

  /** SQLite: no transaction; the process-wide digest locks keep pulls and this worker apart. */
  async #sqliteBatch(retryBefore: number): Promise<Result<Batch>> {
    const rows: Claimed[] = await this.#claimable(retryBefore).execute();
    if (rows.length === 0) return ok({ claimed: 0, deferred: 0, entries: 0, objects: 0, errors: 0 });
    // Every digest of the batch locked at once (in order: creators hold one at a time), then one query.
    const digests = [...new Set(rows.map((row) => row.digest))].sort();
    return withExclusiveLocks(digests, async () => {
      const live = await this.#liveDigests(this.#db, digests);
      const orphans = digests.filter((digest) => !live.has(digest));
      const busy = new Set(orphans.filter((digest) => this.#inUse(digest)));
      const { deleted, failed } = await this.#deleteObjects(orphans.filter((digest) => !busy.has(digest)));
      return ok({ claimed: rows.length, objects: deleted, ...(await this.#finish(this.#db, rows, failed, busy)) });
    });
  }

  async #liveDigests(db: Db, digests: string[]): Promise<Set<string>> {
    const live = new Set<string>();
    for (let i = 0; i < digests.length; i += 1000) {
      const rows = await db.selectFrom('cache_entries').select('digest').distinct()
        .where('digest', 'in', digests.slice(i, i + 1000)).where('status', 'in', [LIVE, PROCESSING]).where('upstream_id', 'is not', null)
        .execute();
      for (const row of rows) live.add(row.digest);
    }
    return live;
  }

  async #deleteObjects(digests: string[]): Promise<{ deleted: number; failed: Set<string> }> {
    let deleted = 0;
    const failed = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < digests.length) {
        const digest = digests[next++];
        try {
          await this.#store.delete(digest);
          deleted++;
        } catch (error) {
          failed.add(digest);
          this.#logger?.warn({ err: error, digest }, 'stored object not deleted; its entries are kept with status error');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, digests.length) }, worker));
    return { deleted, failed };
  }

  /** Deletes the batch rows, except those whose object is still to be deleted: status error. */
  async #finish(db: Db, rows: Claimed[], failed: Set<string>, busy: Set<string>): Promise<{ entries: number; errors: number; deferred: number }> {
    const done = rows.filter((row) => !failed.has(row.digest) && !busy.has(row.digest)).map((row) => row.id);
    const kept = rows.filter((row) => failed.has(row.digest)).map((row) => row.id);
    const deferred = rows.filter((row) => busy.has(row.digest)).length;
    let entries = 0;
    if (done.length > 0) {
      const result = await db.deleteFrom('cache_entries').where('id', 'in', done).executeTakeFirst();
      entries = Number(result.numDeletedRows);
    }
    if (kept.length > 0) {
      await db.updateTable('cache_entries').set({ status: ERROR, updated_at: Date.now() }).where('id', 'in', kept).execute();
    }
    return { entries, errors: kept.length, deferred };
  }
}
