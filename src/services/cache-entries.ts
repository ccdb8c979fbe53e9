// Cache entries (DESIGN §4): one live row per (upstream, path), written by one atomic upsert on the
// partial unique index, looked up by the pull path, and marked for destruction in set-based batches.
import { sql } from 'kysely';
import type { Change, ChangeFeed } from '../db/change-feed.ts';
import type { Db, Dialect } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { CacheEntry } from '../db/schema.ts';
import { can, canSee } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import { isValidName, parseDigest, parseReference } from '../oci/reference.ts';
import { err, invalid, ok } from '../result.ts';
import type { FieldErrors, Result } from '../result.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { BoundedCache } from '../lib/bounded-cache.ts';
import type { CacheStats } from '../lib/bounded-cache.ts';
import { guarded, isDatabaseUnavailable, transact, unavailable } from './database.ts';
import { lockDigestShared, objectReferenceLock } from './object-references.ts';

export interface CacheEntryInput {
  upstreamId: number;
  /** `/<image>/manifests/<reference>` or `/<image>/blobs/<digest>`. */
  relativePath: string;
  digest: string;
  size: number;
  contentType: string;
  upstreamEtag: string | null;
  /** When the upstream was asked (epoch ms); now when omitted. */
  checkedAt?: number;
}

export type CacheEntryForPath = CacheEntry & { position: number };

/** How long an upstream's group is remembered (upstreams never change group). */
const GROUP_CACHE_MS = 30_000;
const GROUP_CACHE_MAX = 10_000;
/** Rows marked per statement: big purges stay a series of short transactions. */
const MARK_BATCH = 10_000;

const { default: LIVE, processing: PROCESSING, pending_destruction: PENDING_DESTRUCTION } = CACHE_ENTRY_STATUS;
const RELATIVE_PATH = /^\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const MAX_PATH_LENGTH = 1024;

/** Checks the relative path's grammar and that a digest in it names the entry's digest. */
function pathErrors(relativePath: string, digest: string): string[] {
  if (relativePath.length > MAX_PATH_LENGTH) return [`must be at most ${MAX_PATH_LENGTH} characters`];
  const match = RELATIVE_PATH.exec(relativePath);
  if (!match) return ['must be /<image>/manifests/<reference> or /<image>/blobs/<digest>'];
  const [, image, kind, reference] = match;
  if (!isValidName(image)) return ['the image name is invalid'];
  if (kind === 'blobs') {
    if (!parseDigest(reference)) return ['the blob digest is invalid'];
    if (reference !== digest) return ['the blob digest must be the entry digest'];
    return [];
  }
  const parsed = parseReference(reference);
  if (!parsed) return ['the manifest reference is invalid'];
  if (parsed.kind === 'digest' && reference !== digest) return ['the manifest digest must be the entry digest'];
  return [];
}

function inputErrors(input: CacheEntryInput): FieldErrors {
  const fields: FieldErrors = {};
  const add = (field: string, message: string) => (fields[field] ??= []).push(message);
  if (typeof input.digest !== 'string' || !parseDigest(input.digest)) add('digest', 'must be a sha256 or sha512 digest');
  if (!Number.isSafeInteger(input.size) || input.size < 0) add('size', 'must be a non-negative integer');
  if (typeof input.contentType !== 'string' || input.contentType.length === 0 || input.contentType.length > 255) add('contentType', 'must be 1 to 255 characters');
  if (input.upstreamEtag !== null && (typeof input.upstreamEtag !== 'string' || input.upstreamEtag.length > 1024)) add('upstreamEtag', 'must be null or at most 1024 characters');
  if (input.checkedAt !== undefined && (!Number.isSafeInteger(input.checkedAt) || input.checkedAt < 0)) add('checkedAt', 'must be a time in epoch milliseconds');
  if (!fields.digest) for (const message of pathErrors(input.relativePath, input.digest)) add('relativePath', message);
  return fields;
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** A database exception as a result: `unavailable` (services/database.ts), or a persistence error. */
function failure(what: string, error: unknown) {
  return isDatabaseUnavailable(error) ? unavailable(error) : err('persistence_error', `${what}: ${describe(error)}`, { cause: error });
}

/** Entries found by digest, remembered for serving cached content while the database is unavailable. */
const RECENT_BY_DIGEST_MAX = 10_000;
/** Pull-path lookups kept at most (see #lookups). */
const LOOKUPS_MAX = 10_000;
export const OUTAGE_MEMORY_MS = 60_000;


export class CacheEntryService {
  readonly #db: Db;
  readonly #dialect: Dialect;
  readonly #store: ObjectStore;
  readonly #changes: ChangeFeed;
  readonly #groups = new BoundedCache<number>({ maxEntries: GROUP_CACHE_MAX, ttlMs: GROUP_CACHE_MS });
  /** `<upstream id>:<digest>` → the live entry last found for it (see findLiveByDigest). */
  readonly #recentByDigest: BoundedCache<CacheEntry>;
  /**
   * The pull path's lookups (findLiveByDigest, findLiveForPath) reused for `hotMemoryMs`: a hot manifest
   * costs no query. Every write of this service drops them (after it committed); writes elsewhere (another
   * replica, the destroy worker) are seen within hotMemoryMs, or at once through invalidateLookups().
   */
  readonly #lookups: BoundedCache<CacheEntry | CacheEntryForPath[]>;

  constructor(deps: { db: Db; dialect: Dialect; store: ObjectStore; changes: ChangeFeed; outageMemoryMs?: number; hotMemoryMs?: number }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
    this.#dialect = deps.dialect;
    this.#store = deps.store;
    this.#recentByDigest = new BoundedCache({ maxEntries: RECENT_BY_DIGEST_MAX, ttlMs: deps.outageMemoryMs ?? OUTAGE_MEMORY_MS });
    this.#lookups = new BoundedCache({ maxEntries: LOOKUPS_MAX, ttlMs: deps.hotMemoryMs ?? 0 });
  }

  /** The pull path's entry lookups in memory (for /metrics). */
  get lookupMemory(): CacheStats {
    return this.#lookups.stats;
  }

  /** Cache entries changed where this service did not see it: lookups read before are not used again. */
  invalidateLookups(): void {
    this.#lookups.clear();
  }

  /**
   * What is marked for destruction (here or on another replica) must not be served from memory in a
   * later outage; a deleted upstream's group is forgotten (change feed).
   */
  onChange(change: Change): void {
    // The pull path's lookups are short-lived: any change of entries, upstreams or groups drops them all.
    if (change.kind === 'cache_entries' || change.kind === 'upstream' || change.kind === 'group' || change.kind === 'all') this.#lookups.clear();
    switch (change.kind) {
      case 'cache_entries':
        this.#forgetUpstreams(new Set(change.upstreamIds));
        break;
      case 'upstream':
        this.#groups.delete(String(change.id));
        this.#forgetUpstreams(new Set([change.id]));
        break;
      case 'group':
        this.#recentByDigest.deleteWhere((entry) => entry.group_id === change.id);
        break;
      case 'all':
        this.#groups.clear();
        this.#recentByDigest.clear();
        break;
      default:
        break;
    }
  }

  #forgetUpstreams(upstreamIds: ReadonlySet<number>): void {
    this.#recentByDigest.deleteWhere((entry) => entry.upstream_id !== null && upstreamIds.has(entry.upstream_id));
  }

  /**
   * Creates the live entry of (upstream, path) or refreshes it (digest, size, content type, etag,
   * checked time) in one atomic upsert; concurrent callers end with one row and no error.
   * Reasons: unauthorized, not_found (upstream, system only), path_not_present, invalid,
   * object_not_present, persistence_error.
   */
  async createOrUpdate(actor: Actor, input: CacheEntryInput): Promise<Result<CacheEntry>> {
    if (!Number.isSafeInteger(input.upstreamId) || input.upstreamId <= 0) return invalid({ upstreamId: ['must be an upstream id'] });
    let groupId: number | null;
    try {
      groupId = await this.#upstreamGroup(input.upstreamId);
    } catch (error) {
      return failure('cannot read the upstream', error);
    }
    if (groupId === null) {
      // Only those who could see every upstream learn that this one does not exist.
      return actorSeesAll(actor) ? err('not_found', 'upstream not found') : err('unauthorized', 'not allowed to write cache entries of this upstream');
    }
    if (!can(actor, 'read_virtual_registry', { groupId })) return err('unauthorized', 'not allowed to write cache entries of this upstream');
    if (typeof input.relativePath !== 'string' || input.relativePath.length === 0) return err('path_not_present', 'the relative path is missing');
    const fields = inputErrors(input);
    if (Object.keys(fields).length > 0) return invalid(fields, 'invalid cache entry');

    const saved = await objectReferenceLock.shared(input.digest, () => this.#upsert(groupId, input));
    // After the write: a lookup read before it is not kept (its generation is older) or used again.
    if (saved.ok) this.#lookups.clear();
    return saved;
  }

  /** The live entry of one upstream for one path. */
  async findLive(upstreamId: number, relativePath: string): Promise<CacheEntry | null> {
    const row = await this.#db.selectFrom('cache_entries').selectAll()
      .where('upstream_id', '=', upstreamId).where('relative_path', '=', relativePath).where('status', '=', LIVE)
      .executeTakeFirst();
    return row ?? null;
  }

  /**
   * A live entry of any of these upstreams with this digest (blob, manifest by digest, or a tag whose
   * manifest has it); null otherwise. Whether its object is stored and whole is the caller's check
   * (the pull path's serveStored: a missing or damaged object is a miss that repairs it).
   *
   * While the database is unavailable, an entry found within the outage window for one of these very
   * upstreams stands in (content by digest never goes stale); an upstream that never had the digest
   * gets nothing from another's entry. Without one the DatabaseUnavailableError goes to the caller.
   */
  async findLiveByDigest(upstreamIds: readonly number[], digest: string): Promise<CacheEntry | null> {
    if (upstreamIds.length === 0 || !parseDigest(digest)) return null;
    const key = `d\n${upstreamIds.join(',')}\n${digest}`;
    const known = this.#lookups.get(key);
    if (known) return known as CacheEntry;
    const generation = this.#lookups.generation;
    const since = Date.now();
    let row: CacheEntry | undefined;
    try {
      row = await this.#db.selectFrom('cache_entries').selectAll()
        .where('digest', '=', digest).where('status', '=', LIVE).where('upstream_id', 'in', [...upstreamIds])
        .orderBy('id').limit(1)
        .executeTakeFirst();
    } catch (error) {
      row = isDatabaseUnavailable(error) ? this.#rememberedByDigest(upstreamIds, digest) : undefined;
      if (!row) throw error;
    }
    if (!row) return null;
    this.#recentByDigest.set(`${row.upstream_id}:${digest}`, row);
    this.#lookups.set(key, row, { generation, since });
    return row;
  }

  #rememberedByDigest(upstreamIds: readonly number[], digest: string): CacheEntry | undefined {
    for (const upstreamId of upstreamIds) {
      const entry = this.#recentByDigest.get(`${upstreamId}:${digest}`);
      if (entry) return entry;
    }
    return undefined;
  }

  /** The live entries for one path across a registry's upstreams, highest priority (position 1) first. */
  async findLiveForPath(registryId: number, relativePath: string): Promise<CacheEntryForPath[]> {
    const key = `p\n${registryId}\n${relativePath}`;
    const known = this.#lookups.get(key);
    if (known) return known as CacheEntryForPath[];
    const generation = this.#lookups.generation;
    const since = Date.now();
    const rows = await this.#db.selectFrom('cache_entries as e')
      .innerJoin('registry_upstreams as ru', 'ru.upstream_id', 'e.upstream_id')
      .selectAll('e').select(['ru.position'])
      .where('ru.registry_id', '=', registryId).where('e.relative_path', '=', relativePath).where('e.status', '=', LIVE)
      .orderBy('ru.position')
      .execute();
    // Only what is there: a miss is filled, and the fill's write drops the lookups anyway.
    if (rows.length > 0) this.#lookups.set(key, rows, { generation, since });
    return rows;
  }

  /** The upstream was asked again and still has the same digest. */
  async touchChecked(entryId: number, at: number): Promise<void> {
    await this.#db.updateTable('cache_entries').set({ upstream_checked_at: at, updated_at: Date.now() })
      .where('id', '=', entryId).where('status', '=', LIVE)
      .execute();
    this.#lookups.clear();
  }

  /** Marks one entry pending_destruction; the destroy worker deletes it (and its object if unused). */
  async markEntryForDestruction(actor: Actor, entryId: number): Promise<Result<void>> {
    // What is marked must not be served from memory in a later outage.
    this.#recentByDigest.clear();
    try {
      const entry = await this.#db.selectFrom('cache_entries').select(['group_id', 'upstream_id', 'status']).where('id', '=', entryId).executeTakeFirst();
      if (!entry || !canSee(actor, { groupId: entry.group_id })) return err('not_found', 'cache entry not found');
      if (!can(actor, 'destroy_virtual_registry', { groupId: entry.group_id })) return err('unauthorized', 'not allowed to delete cache entries of this group');
      await this.#db.updateTable('cache_entries').set({ status: PENDING_DESTRUCTION, updated_at: Date.now() })
        .where('id', '=', entryId).where('status', 'in', [LIVE, PROCESSING])
        .execute();
      if (entry.upstream_id !== null) await this.#changes.publish({ kind: 'cache_entries', upstreamIds: [entry.upstream_id] });
      return ok(undefined);
    } catch (error) {
      return failure('cannot mark the cache entry', error);
    } finally {
      // After the write: a lookup read meanwhile is not kept either (its generation is older).
      this.#lookups.clear();
    }
  }

  /** Marks every entry of an upstream pending_destruction (a purge of its cache). */
  async markUpstreamForDestruction(actor: Actor, upstreamId: number): Promise<Result<{ marked: number }>> {
    // What is marked must not be served from memory in a later outage.
    this.#recentByDigest.clear();
    try {
      const upstream = await this.#db.selectFrom('upstreams').select('group_id').where('id', '=', upstreamId).executeTakeFirst();
      if (!upstream || !canSee(actor, { groupId: upstream.group_id })) return err('not_found', 'upstream not found');
      if (!can(actor, 'destroy_virtual_registry', { groupId: upstream.group_id })) return err('unauthorized', 'not allowed to purge this upstream');
      return ok({ marked: await this.#markUpstreams([upstreamId]) });
    } catch (error) {
      return failure('cannot mark the upstream\'s cache entries', error);
    } finally {
      // After the write: a lookup read meanwhile is not kept either (its generation is older).
      this.#lookups.clear();
    }
  }

  /** Marks the entries of the upstreams that only this registry uses (shared upstreams keep theirs). */
  async markRegistryForDestruction(actor: Actor, registryId: number): Promise<Result<{ marked: number }>> {
    // What is marked must not be served from memory in a later outage.
    this.#recentByDigest.clear();
    try {
      const registry = await this.#db.selectFrom('registries').select('group_id').where('id', '=', registryId).executeTakeFirst();
      if (!registry || !canSee(actor, { groupId: registry.group_id })) return err('not_found', 'registry not found');
      if (!can(actor, 'destroy_virtual_registry', { groupId: registry.group_id })) return err('unauthorized', 'not allowed to purge this registry');
      const exclusive = await this.#db.selectFrom('registry_upstreams as ru').select('ru.upstream_id')
        .where('ru.registry_id', '=', registryId)
        .where(({ not, exists, selectFrom }) => not(exists(
          selectFrom('registry_upstreams as other').select('other.id')
            .whereRef('other.upstream_id', '=', 'ru.upstream_id').where('other.registry_id', '<>', registryId),
        )))
        .execute();
      return ok({ marked: await this.#markUpstreams(exclusive.map((row) => row.upstream_id)) });
    } catch (error) {
      return failure('cannot mark the registry\'s cache entries', error);
    } finally {
      // After the write: a lookup read meanwhile is not kept either (its generation is older).
      this.#lookups.clear();
    }
  }

  /** Set-based marking in batches of MARK_BATCH rows, each its own short statement; then every replica hears of it. */
  async #markUpstreams(upstreamIds: number[]): Promise<number> {
    if (upstreamIds.length === 0) return 0;
    let marked = 0;
    try {
      for (;;) {
        const now = Date.now();
        const result = await this.#db.updateTable('cache_entries').set({ status: PENDING_DESTRUCTION, updated_at: now })
          .where('id', 'in', (eb) => eb.selectFrom('cache_entries').select('id')
            .where('upstream_id', 'in', upstreamIds).where('status', 'in', [LIVE, PROCESSING])
            .limit(MARK_BATCH))
          .where('status', 'in', [LIVE, PROCESSING])
          .executeTakeFirst();
        const count = Number(result.numUpdatedRows);
        marked += count;
        if (count < MARK_BATCH) return marked;
      }
    } finally {
      // Batches that committed before a failure are marked all the same.
      if (marked > 0) await this.#changes.publish({ kind: 'cache_entries', upstreamIds });
    }
  }

  async #upsert(groupId: number, input: CacheEntryInput): Promise<Result<CacheEntry>> {
    const now = Date.now();
    const values = {
      group_id: groupId,
      upstream_id: input.upstreamId,
      relative_path: input.relativePath,
      digest: input.digest,
      size: input.size,
      content_type: input.contentType,
      upstream_etag: input.upstreamEtag,
      upstream_checked_at: input.checkedAt ?? now,
      created_at: now,
      updated_at: now,
    };
    const write = async (db: Db): Promise<Result<CacheEntry>> => {
      // The object must still be stored once the digest is locked against the destroyer.
      let stored;
      try {
        stored = await this.#store.stat(input.digest);
      } catch (error) {
        return err('persistence_error', `cannot read the object ${input.digest}: ${describe(error)}`, { cause: error });
      }
      if (!stored) return err('object_not_present', `the object ${input.digest} is not stored`);
      if (stored.size !== input.size) return invalid({ size: [`must be the stored object's size (${stored.size})`] }, 'invalid cache entry');
      return ok(await db.insertInto('cache_entries').values(values)
        // `status = 0` is written literally: SQLite matches the partial index only against a literal.
        .onConflict((oc) => oc.columns(['upstream_id', 'relative_path']).where(sql<boolean>`status = 0`).doUpdateSet((eb) => ({
          digest: eb.ref('excluded.digest'),
          size: eb.ref('excluded.size'),
          content_type: eb.ref('excluded.content_type'),
          upstream_etag: eb.ref('excluded.upstream_etag'),
          upstream_checked_at: eb.ref('excluded.upstream_checked_at'),
          updated_at: eb.ref('excluded.updated_at'),
        })))
        .returningAll()
        .executeTakeFirstOrThrow());
    };
    // SQLite: the process-wide digest lock (objectReferenceLock) is the lock; PostgreSQL: a shared row lock too.
    if (this.#dialect !== 'postgres') return guarded(() => write(this.#db));
    return transact(this.#db, async (trx) => {
      await lockDigestShared(trx, input.digest);
      return write(trx);
    });
  }

  async #upstreamGroup(upstreamId: number): Promise<number | null> {
    const cached = this.#groups.get(String(upstreamId));
    if (cached !== undefined) return cached;
    const row = await this.#db.selectFrom('upstreams').select('group_id').where('id', '=', upstreamId).executeTakeFirst();
    if (!row) return null;
    this.#groups.set(String(upstreamId), row.group_id);
    return row.group_id;
  }
}

function actorSeesAll(actor: Actor): boolean {
  return actor.kind === 'system' || (actor.kind === 'user' && actor.admin && !actor.blocked);
}
