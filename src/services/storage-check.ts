// `manifold storage check [--repair]` (DESIGN §4 repair): walks the cache entries against the stored
// objects (the backend's list(), which every backend has) and reports both directions:
//   - live entries whose object is missing or of another size than the entry (truncated behind
//     Manifold's back); --repair marks them pending_destruction, so the next pull is a miss that
//     refetches the object and writes a new entry (and the destroyer removes a damaged object once no
//     live entry refers to it);
//   - objects that no entry refers to; --repair deletes them under the destroyer's per-digest lock
//     (CacheDestroyer.deleteUnreferenced), so an entry created meanwhile keeps its object. Objects
//     younger than the grace period are left alone: they may be fills whose entry is being written.
// The report also lists what pulls repaired recently (storage-repairs.ts).
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import type { CacheDestroyer } from './cache-destroyer.ts';
import { REPAIR_HISTORY_MS, objectProblem } from './storage-repairs.ts';
import type { RepairView, StorageRepairs } from './storage-repairs.ts';

const { default: LIVE, pending_destruction: PENDING_DESTRUCTION } = CACHE_ENTRY_STATUS;

/** Entries read per statement. */
const PAGE = 1000;
/** Items listed per kind in a report (the counts are complete). */
const LISTED_MAX = 1000;
export const DEFAULT_GRACE_MS = 60 * 60 * 1000;

export interface DamagedEntry {
  id: number;
  upstream_id: number;
  relative_path: string;
  digest: string;
  size: number;
  reason: 'missing' | 'size_mismatch';
  /** The stored object's size when it has another size. */
  found_size: number | null;
}

export interface OrphanObject {
  digest: string;
  size: number;
  modified_at: number | null;
}

export interface StorageCheckReport {
  checked_at: number;
  repair: boolean;
  grace_seconds: number;
  objects: { count: number; bytes: number };
  live_entries: number;
  /** Live entries whose object is missing or has another size. */
  damaged_entries: { count: number; items: DamagedEntry[] };
  /** Objects no entry refers to, older than the grace period. */
  orphan_objects: { count: number; bytes: number; items: OrphanObject[] };
  /** Objects without entries left alone because they are younger than the grace period. */
  young_objects_skipped: number;
  /** What --repair did; null without it. */
  repaired: { entries_marked: number; objects_deleted: number; objects_kept: number; objects_failed: number } | null;
  /** What pulls repaired (refetched) within the recorded history, newest first. */
  pull_repairs: { since: number; count: number; items: RepairView[] };
}

export class StorageCheck {
  readonly #db: Db;
  readonly #store: ObjectStore;
  readonly #destroyer: Pick<CacheDestroyer, 'deleteUnreferenced'>;
  readonly #repairs: StorageRepairs;

  constructor(deps: { db: Db; store: ObjectStore; destroyer: Pick<CacheDestroyer, 'deleteUnreferenced'>; repairs: StorageRepairs }) {
    this.#db = deps.db;
    this.#store = deps.store;
    this.#destroyer = deps.destroyer;
    this.#repairs = deps.repairs;
  }

  async run(options: { repair: boolean; graceMs?: number }): Promise<StorageCheckReport> {
    const checkedAt = Date.now();
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    // Objects first: an entry is written after its object, so one written meanwhile finds its object
    // listed or is re-checked below.
    const objects = new Map<string, { size: number; modifiedAt: number | null }>();
    let bytes = 0;
    for await (const info of this.#store.list()) {
      objects.set(info.digest, { size: info.size, modifiedAt: info.modifiedAt ?? null });
      bytes += info.size;
    }

    const referenced = new Set<string>();
    const damaged: DamagedEntry[] = [];
    let liveEntries = 0;
    for (let after = 0; ;) {
      const rows = await this.#db.selectFrom('cache_entries').select(['id', 'upstream_id', 'relative_path', 'digest', 'size', 'status'])
        .where('id', '>', after).orderBy('id').limit(PAGE).execute();
      if (rows.length === 0) break;
      after = rows[rows.length - 1].id;
      for (const row of rows) {
        // Rows waiting for the destroyer still claim their object: the destroyer decides about it.
        referenced.add(row.digest);
        if (row.status !== LIVE || row.upstream_id === null) continue;
        liveEntries++;
        const size = Number(row.size);
        let object: { size: number } | null = objects.get(row.digest) ?? null;
        if (!objectProblem(object, size)) continue;
        // Committed since the listing (a repair by a pull, a new fill)? Ask the store itself.
        object = await this.#store.stat(row.digest);
        const problem = objectProblem(object, size);
        if (problem) damaged.push({ id: row.id, upstream_id: row.upstream_id, relative_path: row.relative_path, digest: row.digest, size, reason: problem, found_size: object?.size ?? null });
      }
    }

    const orphans: OrphanObject[] = [];
    let orphanBytes = 0;
    let young = 0;
    const youngerThan = checkedAt - graceMs;
    for (const [digest, object] of objects) {
      if (referenced.has(digest)) continue;
      if (object.modifiedAt === null || object.modifiedAt > youngerThan) {
        young++;
        continue;
      }
      orphans.push({ digest, size: object.size, modified_at: object.modifiedAt });
      orphanBytes += object.size;
    }

    let repaired: StorageCheckReport['repaired'] = null;
    if (options.repair) {
      let marked = 0;
      for (const entry of damaged) {
        // Only while it is still the row that was checked: a pull may have repaired it meanwhile.
        const result = await this.#db.updateTable('cache_entries').set({ status: PENDING_DESTRUCTION, updated_at: Date.now() })
          .where('id', '=', entry.id).where('status', '=', LIVE).where('digest', '=', entry.digest)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) === 0) continue;
        marked++;
        await this.#repairs.record({ digest: entry.digest, upstreamId: entry.upstream_id, relativePath: entry.relative_path, reason: entry.reason, expectedSize: entry.size, foundSize: entry.found_size }, 'check');
      }
      // Under the lock: an object committed again since the listing is young again and stays.
      const outcome = await this.#destroyer.deleteUnreferenced(orphans.map((o) => o.digest), async (digest) => {
        const now = await this.#store.stat(digest);
        return now === null || now.modifiedAt === undefined || now.modifiedAt > youngerThan;
      });
      repaired = { entries_marked: marked, objects_deleted: outcome.deleted.length, objects_kept: outcome.kept.length, objects_failed: outcome.failed.length };
    }

    const since = checkedAt - REPAIR_HISTORY_MS;
    const pulls = await this.#repairs.since(since, 100, 'pull');
    return {
      checked_at: checkedAt,
      repair: options.repair,
      grace_seconds: Math.round(graceMs / 1000),
      objects: { count: objects.size, bytes },
      live_entries: liveEntries,
      damaged_entries: { count: damaged.length, items: damaged.slice(0, LISTED_MAX) },
      orphan_objects: { count: orphans.length, bytes: orphanBytes, items: orphans.slice(0, LISTED_MAX) },
      young_objects_skipped: young,
      repaired,
      pull_repairs: { since, count: pulls.total, items: pulls.items },
    };
  }
}
