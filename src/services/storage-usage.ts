// What a registry's cache holds and saves (issue 18): bytes stored and entries (unique objects of its
// upstreams' live entries), hits and misses, bytes served from the cache and fetched from upstreams
// (registry-traffic.ts), and evictions (eviction.ts), per registry and per upstream.
import { sql } from 'kysely';
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeRegistry } from './access.ts';
import { guarded } from './registry-store.ts';
import { RETENTION_HOURS } from './registry-traffic.ts';

const HOUR = 60 * 60 * 1000;
const LIVE = [CACHE_ENTRY_STATUS.default, CACHE_ENTRY_STATUS.processing];

export interface UpstreamUsage {
  upstream_id: number;
  name: string;
  stored_bytes: number;
  entries: number;
  evicted_entries: number;
  evicted_bytes: number;
}

export interface RegistryUsage {
  registry_id: number;
  /** Counts (hits, misses, bytes served, evictions) are since this time: the retained week of hours. */
  since: number;
  /** Bytes of the unique objects the registry's upstreams' live entries refer to (an object is counted once). */
  stored_bytes: number;
  entries: number;
  hits: number;
  misses: number;
  bytes_from_cache: number;
  bytes_from_upstream: number;
  evicted_entries: number;
  evicted_bytes: number;
  upstreams: UpstreamUsage[];
}

export class StorageUsage {
  readonly #db: Db;
  readonly #now: () => number;

  constructor(deps: { db: Db; now?: () => number }) {
    this.#db = deps.db;
    this.#now = deps.now ?? Date.now;
  }

  /** The registry's usage (read_virtual_registry). */
  async registry(actor: Actor, registryId: number | string): Promise<Result<RegistryUsage>> {
    return guarded(async () => {
      const found = await authorizeRegistry(this.#db, actor, registryId, 'read_virtual_registry');
      if (!found.ok) return found;
      const registry = found.value;
      const since = Math.floor(this.#now() / HOUR) * HOUR - (RETENTION_HOURS - 1) * HOUR;
      const upstreams = await this.#db.selectFrom('registry_upstreams as ru').innerJoin('upstreams as u', 'u.id', 'ru.upstream_id')
        .select(['u.id', 'u.name']).where('ru.registry_id', '=', registry.id).orderBy('ru.position').execute();
      const upstreamIds = upstreams.map((u) => u.id);

      const traffic = await this.#db.selectFrom('registry_traffic').where('registry_id', '=', registry.id).where('hour', '>=', since)
        .select((eb) => [
          eb.fn.coalesce(eb.fn.sum<number>('hits'), sql<number>`0`).as('hits'),
          eb.fn.coalesce(eb.fn.sum<number>('misses'), sql<number>`0`).as('misses'),
          eb.fn.coalesce(eb.fn.sum<number>('bytes_from_cache'), sql<number>`0`).as('bytes_from_cache'),
          eb.fn.coalesce(eb.fn.sum<number>('bytes_from_upstream'), sql<number>`0`).as('bytes_from_upstream'),
        ])
        .executeTakeFirstOrThrow();
      const usage: RegistryUsage = {
        registry_id: registry.id, since, stored_bytes: 0, entries: 0,
        hits: Number(traffic.hits), misses: Number(traffic.misses), bytes_from_cache: Number(traffic.bytes_from_cache), bytes_from_upstream: Number(traffic.bytes_from_upstream),
        evicted_entries: 0, evicted_bytes: 0, upstreams: [],
      };
      if (upstreamIds.length === 0) return ok(usage);

      const live = this.#db.selectFrom('cache_entries').where('upstream_id', 'in', upstreamIds).where('status', 'in', LIVE);
      // Per upstream, each object once; for the registry, an object behind two of its upstreams once too.
      const perUpstreamObjects = live.select((eb) => ['upstream_id', 'digest', eb.fn.max('size').as('size'), eb.fn.countAll().as('n')]).groupBy(['upstream_id', 'digest']);
      const stored = await this.#db.selectFrom(perUpstreamObjects.as('o'))
        .select((eb) => ['o.upstream_id', eb.fn.sum<number>('o.size').as('bytes'), eb.fn.sum<number>('o.n').as('entries')])
        .groupBy('o.upstream_id').execute();
      const registryObjects = live.select((eb) => ['digest', eb.fn.max('size').as('size')]).groupBy('digest');
      const total = await this.#db.selectFrom(registryObjects.as('o'))
        .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('o.size'), sql<number>`0`).as('bytes')).executeTakeFirstOrThrow();
      const evictions = await this.#db.selectFrom('upstream_evictions')
        .select((eb) => ['upstream_id', eb.fn.sum<number>('entries').as('entries'), eb.fn.sum<number>('bytes').as('bytes')])
        .where('upstream_id', 'in', upstreamIds).where('hour', '>=', since).groupBy('upstream_id')
        .execute();
      const perUpstream = new Map(upstreams.map((u) => [u.id, { upstream_id: u.id, name: u.name, stored_bytes: 0, entries: 0, evicted_entries: 0, evicted_bytes: 0 }]));
      for (const row of stored) {
        const one = perUpstream.get(Number(row.upstream_id))!;
        one.stored_bytes = Number(row.bytes);
        one.entries = Number(row.entries);
        usage.entries += one.entries;
      }
      usage.stored_bytes = Number(total.bytes);
      for (const row of evictions) {
        const one = perUpstream.get(Number(row.upstream_id))!;
        one.evicted_entries = Number(row.entries);
        one.evicted_bytes = Number(row.bytes);
        usage.evicted_entries += one.evicted_entries;
        usage.evicted_bytes += one.evicted_bytes;
      }
      usage.upstreams = [...perUpstream.values()];
      return ok(usage);
    });
  }
}
