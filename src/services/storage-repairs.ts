// Self-repair (DESIGN §4): a cache entry whose object is missing, of another size than the entry says
// (truncated behind Manifold's back) or unreadable is a miss, never an error for the client. This is
// where such a find is counted (metric), logged and recorded, so that `manifold storage check` can say
// what pulls repaired. The pull path finds them before the first byte of a response; the refetch
// through the normal fill then rewrites the object and the entry.
//
// An object deleted on purpose is not such a find: eviction and cleanup mark the entry, then the destroy
// worker deletes the object and the row (cache-destroyer.ts), and a tag that moved points its entry at
// another digest. A pull that read the entry before that and then finds the object gone is an ordinary
// miss; `pullFound` asks the entry's row, which tells the two apart on every replica.
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';

const { default: LIVE, processing: PROCESSING } = CACHE_ENTRY_STATUS;

export type RepairReason = 'missing' | 'size_mismatch' | 'unreadable';
export type RepairSource = 'pull' | 'check';

export interface RepairFind {
  digest: string;
  upstreamId: number | null;
  relativePath: string;
  reason: RepairReason;
  expectedSize: number;
  foundSize: number | null;
}

export interface RepairView {
  digest: string;
  upstream_id: number | null;
  relative_path: string;
  reason: RepairReason;
  expected_size: number;
  found_size: number | null;
  source: RepairSource;
  created_at: number;
}

/** Finds older than this are dropped when new ones are recorded: the record is for recent history. */
export const REPAIR_HISTORY_MS = 30 * 24 * 60 * 60 * 1000;

/** What a stored object's stat says about an entry: null when it may be served. */
export function objectProblem(info: { size: number } | null, entrySize: number): Exclude<RepairReason, 'unreadable'> | null {
  if (!info) return 'missing';
  return info.size === entrySize ? null : 'size_mismatch';
}

export class StorageRepairs {
  readonly #db: Db;
  readonly #metrics: Metrics | undefined;
  readonly #logger: Logger | undefined;

  constructor(deps: { db: Db; metrics?: Metrics; logger?: Logger }) {
    this.#db = deps.db;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
  }

  /**
   * What a pull found for the entry `entryId`: recorded unless the entry is no longer live with that
   * digest (destroyed on purpose, see above). Never fails the caller; a row that cannot be read counts
   * as live (the find is recorded, as it would be without this check).
   */
  async pullFound(find: RepairFind, entryId: number): Promise<void> {
    let current: { status: number; digest: string } | undefined = { status: LIVE, digest: find.digest };
    try {
      current = await this.#db.selectFrom('cache_entries').select(['status', 'digest']).where('id', '=', entryId).executeTakeFirst();
    } catch (error) {
      this.#logger?.warn({ err: error, digest: find.digest }, 'cannot read the cache entry of a missing object; recording it as a repair');
    }
    if (!current || current.digest !== find.digest || (current.status !== LIVE && current.status !== PROCESSING)) {
      this.#logger?.debug({ digest: find.digest, path: find.relativePath }, 'cached object destroyed on purpose while a pull read its entry; fetching it again');
      return;
    }
    // Counted and logged now; the row is written in the background.
    void this.record(find, 'pull');
  }

  /** Counts, logs and records a find; never fails the caller (a record that cannot be written is logged). */
  async record(find: RepairFind, source: RepairSource): Promise<void> {
    this.#metrics?.storageRepairs.inc({ reason: find.reason, source });
    this.#logger?.warn({ digest: find.digest, upstream: find.upstreamId, path: find.relativePath, reason: find.reason, expectedSize: find.expectedSize, foundSize: find.foundSize, source }, source === 'pull' ? 'cached object missing or damaged; refetching it (self-repair)' : 'cached object missing or damaged; entry marked for refetch');
    try {
      const now = Date.now();
      await this.#db.insertInto('storage_repairs').values({
        digest: find.digest,
        upstream_id: find.upstreamId,
        relative_path: find.relativePath,
        reason: find.reason,
        expected_size: find.expectedSize,
        found_size: find.foundSize,
        source,
        created_at: now,
      }).execute();
      await this.#db.deleteFrom('storage_repairs').where('created_at', '<', now - REPAIR_HISTORY_MS).execute();
    } catch (error) {
      this.#logger?.error({ err: error, digest: find.digest }, 'storage repair not recorded');
    }
  }

  /** Finds since `since` (epoch ms), of one source or all, newest first, at most `limit`, and how many there were in all. */
  async since(since: number, limit = 100, source?: RepairSource): Promise<{ total: number; items: RepairView[] }> {
    let scoped = this.#db.selectFrom('storage_repairs').where('created_at', '>=', since);
    if (source) scoped = scoped.where('source', '=', source);
    const [{ total }, rows] = await Promise.all([
      scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
      scoped.selectAll().orderBy('id', 'desc').limit(limit).execute(),
    ]);
    return {
      total: Number(total),
      items: rows.map((row) => ({
        digest: row.digest,
        upstream_id: row.upstream_id,
        relative_path: row.relative_path,
        reason: row.reason as RepairReason,
        expected_size: Number(row.expected_size),
        found_size: row.found_size === null ? null : Number(row.found_size),
        source: row.source as RepairSource,
        created_at: Number(row.created_at),
      })),
    };
  }
}
