// `/v2/_catalog` (Distribution's catalog API; not in the OCI spec): the repositories with cached
// content that the caller may pull, as `<group>/<registry>/<image>`, in lexical order, a page at a time.
// A repository is listed under every registry linked to an upstream holding one of its manifests (a
// pull through that registry would be served from the cache). Blob entries alone do not list a
// repository: without a manifest nothing of it can be pulled by name.
import { sql } from 'kysely';
import type { Actor } from '../auth/policy.ts';
import { can } from '../auth/policy.ts';
import type { Db, Dialect } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import { invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { unauthenticated } from './access.ts';
import { guarded } from './registry-store.ts';

export const CATALOG_DEFAULT_PAGE = 100;
export const CATALOG_MAX_PAGE = 1000;

export interface CatalogRequest {
  actor: Actor;
  /** Page size: default 100, at most 1000. */
  n?: number;
  /** The last repository of the previous page (not included). */
  last?: string;
}

export interface CatalogAnswer {
  repositories: string[];
  /** The `last` of the next page, when there are more. */
  nextLast: string | null;
}

export class CatalogService {
  readonly #db: Db;
  readonly #dialect: Dialect;

  constructor(deps: { db: Db; dialect: Dialect }) {
    this.#db = deps.db;
    this.#dialect = deps.dialect;
  }

  async list(request: CatalogRequest): Promise<Result<CatalogAnswer>> {
    const { actor } = request;
    if (actor.kind === 'anonymous') return unauthenticated();
    if (request.n !== undefined && (!Number.isSafeInteger(request.n) || request.n < 0)) return invalid({ n: ['must be a whole number, 0 or more'] }, 'invalid page size');
    const n = Math.min(request.n ?? CATALOG_DEFAULT_PAGE, CATALOG_MAX_PAGE);
    const groups = readableGroups(actor);
    if ((groups !== 'all' && groups.length === 0) || n === 0) return ok({ repositories: [], nextLast: null });
    return guarded(async () => {
      // The image of `/<image>/manifests/<reference>`: everything before the last `/manifests/` (a reference
      // has no `/`). rtrim(p, <p without slashes>) keeps p up to its last `/`, on SQLite and PostgreSQL alike.
      const upToReference = sql<string>`rtrim(e.relative_path, replace(e.relative_path, '/', ''))`;
      const repository = sql<string>`g.path || '/' || r.name || '/' || substr(${upToReference}, 2, length(${upToReference}) - ${sql.lit('/manifests/'.length + 1)})`;
      let candidates = this.#db.selectFrom('cache_entries as e')
        .innerJoin('registry_upstreams as ru', 'ru.upstream_id', 'e.upstream_id')
        .innerJoin('registries as r', 'r.id', 'ru.registry_id')
        .innerJoin('groups as g', 'g.id', 'r.group_id')
        .where('e.status', '=', CACHE_ENTRY_STATUS.default)
        .where('e.relative_path', 'like', '%/manifests/%')
        .select(repository.as('repository'))
        .distinct();
      if (groups !== 'all') candidates = candidates.where('g.id', 'in', groups);
      // Byte order on both databases (PostgreSQL's default collation would order by locale).
      const ordered = this.#dialect === 'postgres' ? sql`c.repository collate "C"` : sql`c.repository`;
      let page = this.#db.selectFrom(candidates.as('c')).select('c.repository');
      if (request.last !== undefined) page = page.where(sql<boolean>`${ordered} > ${request.last}`);
      const rows = await page.orderBy(ordered).limit(n + 1).execute();
      const repositories = rows.slice(0, n).map((row) => row.repository);
      return ok({ repositories, nextLast: rows.length > n ? repositories[repositories.length - 1] : null });
    });
  }
}

/** The groups whose registries the actor may pull from: every group, or a list of ids. */
function readableGroups(actor: Actor): 'all' | number[] {
  switch (actor.kind) {
    case 'anonymous':
      return [];
    case 'system':
      return 'all';
    case 'user': {
      // An admin may read every group (when its token allows reads at all); others their memberships.
      if (actor.admin) return can(actor, 'read_virtual_registry', { groupId: 0 }) ? 'all' : [];
      return [...actor.memberships.keys()].filter((groupId) => can(actor, 'read_virtual_registry', { groupId }));
    }
    case 'group_token':
    case 'deploy_token':
      return can(actor, 'read_virtual_registry', { groupId: actor.groupId }) ? [actor.groupId] : [];
  }
}
