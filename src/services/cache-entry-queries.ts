// Reading the cache entries of an upstream for the management API (DESIGN §6): search by path, a page at
// a time, newest first. Entries waiting for the destroy worker are gone as far as users are concerned.
import { sql } from 'kysely';
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { CacheEntry } from '../db/schema.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeFound, authorizeRegistry, authorizeUpstream } from './access.ts';
import { guarded } from './registry-store.ts';
import { offsetOf, paginationSchema, validate } from './validation.ts';
import type { Page } from './validation.ts';

export type CacheEntryStatusName = keyof typeof CACHE_ENTRY_STATUS;
export const CACHE_ENTRY_STATUS_NAMES = Object.keys(CACHE_ENTRY_STATUS) as CacheEntryStatusName[];

export interface CacheEntryView {
  id: number;
  group_id: number;
  upstream_id: number;
  relative_path: string;
  digest: string;
  size: number;
  content_type: string;
  upstream_etag: string | null;
  upstream_checked_at: number;
  downloaded_at: number | null;
  downloads_count: number;
  status: CacheEntryStatusName;
  created_at: number;
  updated_at: number;
}

export const CACHE_ENTRY_ORDERS = ['created_at', 'size', 'downloaded_at', 'downloads_count'] as const;

export const cacheEntryListSchema = paginationSchema.extend({
  /** A substring of the relative path (`/<image>/manifests/<ref>`, `/<image>/blobs/<digest>`), case-insensitive. */
  search: z.string('must be a string').max(1024, 'must be at most 1024 characters').optional(),
  order_by: z.enum(CACHE_ENTRY_ORDERS, `must be one of ${CACHE_ENTRY_ORDERS.join(', ')}`).default('created_at'),
  sort: z.enum(['asc', 'desc'], 'must be asc or desc').default('desc'),
});
export type CacheEntryListQuery = z.input<typeof cacheEntryListSchema>;

const VISIBLE_STATUSES = [CACHE_ENTRY_STATUS.default, CACHE_ENTRY_STATUS.processing, CACHE_ENTRY_STATUS.error];

export function toCacheEntryView(row: CacheEntry): CacheEntryView {
  return {
    id: row.id,
    group_id: row.group_id,
    upstream_id: row.upstream_id as number,
    relative_path: row.relative_path,
    digest: row.digest,
    size: Number(row.size),
    content_type: row.content_type,
    upstream_etag: row.upstream_etag,
    upstream_checked_at: row.upstream_checked_at,
    downloaded_at: row.downloaded_at,
    downloads_count: Number(row.downloads_count),
    status: CACHE_ENTRY_STATUS_NAMES.find((name) => CACHE_ENTRY_STATUS[name] === row.status) ?? 'default',
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export class CacheEntryQueryService {
  readonly #db: Db;

  constructor(deps: { db: Db }) {
    this.#db = deps.db;
  }

  /** The upstream's entries (read_virtual_registry on its group), newest first unless ordered otherwise. */
  async list(actor: Actor, upstreamId: number | string, query: CacheEntryListQuery = {}): Promise<Result<Page<CacheEntryView>>> {
    return guarded(async () => {
      const upstream = await authorizeUpstream(this.#db, actor, upstreamId, 'read_virtual_registry');
      return upstream.ok ? this.#page([upstream.value.id], query) : upstream;
    });
  }

  /** The entries of every upstream the registry links (read_virtual_registry on its group). */
  async listForRegistry(actor: Actor, registryId: number | string, query: CacheEntryListQuery = {}): Promise<Result<Page<CacheEntryView>>> {
    return guarded(async () => {
      const found = await authorizeRegistry(this.#db, actor, registryId, 'read_virtual_registry');
      if (!found.ok) return found;
      const registry = found.value;
      const links = await this.#db.selectFrom('registry_upstreams').select('upstream_id').where('registry_id', '=', registry.id).execute();
      return this.#page(links.map((link) => link.upstream_id), query);
    });
  }

  async #page(upstreamIds: number[], query: CacheEntryListQuery): Promise<Result<Page<CacheEntryView>>> {
    const parsed = validate(cacheEntryListSchema, query);
    if (!parsed.ok) return parsed;
    const { search, order_by: orderBy, sort, ...pagination } = parsed.value;
    if (upstreamIds.length === 0) return ok({ items: [], total: 0, page: pagination.page, per_page: pagination.per_page });
    let scoped = this.#db.selectFrom('cache_entries').where('upstream_id', 'in', upstreamIds).where('status', 'in', VISIBLE_STATUSES);
    if (search) {
      // LIKE with its own wildcards escaped: the search is a plain substring.
      const pattern = `%${search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      scoped = scoped.where(sql<boolean>`lower(relative_path) like ${pattern} escape '\\'`);
    }
    const [{ total }, rows] = await Promise.all([
      scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
      // Never-downloaded entries sort as the oldest downloads; the id keeps pages stable.
      scoped.selectAll().orderBy(orderBy, (order) => (sort === 'asc' ? order.asc().nullsFirst() : order.desc().nullsLast())).orderBy('id', (order) => (sort === 'asc' ? order.asc() : order.desc()))
        .limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
    ]);
    return ok({ items: rows.map(toCacheEntryView), total: Number(total), page: pagination.page, per_page: pagination.per_page });
  }

  /** One entry the actor may read; entries waiting for destruction are not found. */
  async get(actor: Actor, entryId: number | string): Promise<Result<CacheEntryView>> {
    return guarded(async () => {
      const row = await authorizeFound(actor, entryId, 'read_virtual_registry', 'cache entry', (id) => this.#db.selectFrom('cache_entries').selectAll()
        .where('id', '=', id).where('status', 'in', VISIBLE_STATUSES).where('upstream_id', 'is not', null).executeTakeFirst());
      return row.ok ? ok(toCacheEntryView(row.value)) : row;
    });
  }
}
