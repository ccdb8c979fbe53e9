// What the cache saves, per registry and hour (issue 20): hits, misses, bytes served from the cache and
// bytes fetched from upstreams. Like the download counters, requests are merged in memory and written
// every few seconds (one upsert per chunk of (registry, hour) rows), never once per request; the console
// charts the last 24 hours. Rows older than RETENTION_HOURS are deleted once an hour.
import { sql } from 'kysely';
import type { Readable } from 'node:stream';
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import { ok } from '../result.ts';
import type { Result } from '../result.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';
import type { Logger } from '../log.ts';
import type { CacheResult } from '../metrics.ts';
import { authorizeRegistry } from './access.ts';
import { guarded } from './registry-store.ts';

const HOUR = 60 * 60 * 1000;
/** A week of hours is kept. */
export const RETENTION_HOURS = 7 * 24;
/** Rows per statement: 6 parameters each. */
const FLUSH_CHUNK = 500;

export interface TrafficHour {
  hour: number;
  hits: number;
  misses: number;
  bytes_from_cache: number;
  bytes_from_upstream: number;
}

export interface RegistryStatistics {
  registry_id: number;
  since: number;
  hours: TrafficHour[];
  hits: number;
  misses: number;
  hit_ratio: number | null;
  bytes_from_cache: number;
  bytes_from_upstream: number;
  cached_entries: number;
  cached_bytes: number;
}

/** The part of a pull's answer the counts need. */
export interface ServedPull {
  cache: CacheResult;
  size: number | null;
  range: { start: number; end: number } | null;
  body: Readable | null;
  /** A body sent from memory. */
  bytes?: Buffer;
}

const hourOf = (at: number) => Math.floor(at / HOUR) * HOUR;

export class RegistryTraffic {
  readonly #db: Db;
  readonly #flushes: PeriodicTask<{ writes: number }>;
  readonly #now: () => number;
  /** `<registry>:<hour>` → counts not yet written. */
  #pending = new Map<string, TrafficHour & { registry_id: number }>();
  #prunedHour = 0;

  constructor(deps: { db: Db; flushIntervalMs: number; logger?: Logger; now?: () => number }) {
    this.#db = deps.db;
    this.#flushes = new PeriodicTask({ name: 'registry traffic flush', intervalMs: deps.flushIntervalMs, logger: deps.logger, run: () => this.#flushNow() });
    this.#now = deps.now ?? Date.now;
  }

  /**
   * Counts one answered pull of a registry: a hit or a miss now, and the bytes of its body once the body
   * has closed (what was actually passed on, so an aborted download counts what it got).
   */
  record(registryId: number, served: ServedPull): void {
    // A tag revalidated with a HEAD, or served stale, still came from the cache.
    const fromCache = served.cache === 'hit' || served.cache === 'revalidated' || served.cache === 'stale';
    this.#add(registryId, this.#now(), { hits: fromCache ? 1 : 0, misses: fromCache ? 0 : 1 });
    if (served.bytes) {
      this.#add(registryId, this.#now(), fromCache ? { bytes_from_cache: served.bytes.length } : { bytes_from_upstream: served.bytes.length });
      return;
    }
    const body = served.body;
    if (!body) return;
    const length = served.size === null ? null : served.range ? Math.min(served.range.end, served.size - 1) - served.range.start + 1 : served.size;
    // No 'data' listener: it would switch the body to flowing before the HTTP layer pipes it.
    body.once('close', () => {
      const passed = (body as Readable & { bytesPassed?: unknown }).bytesPassed;
      const bytes = typeof passed === 'number' ? passed : body.readableEnded ? (length ?? 0) : 0;
      if (bytes > 0) this.#add(registryId, this.#now(), fromCache ? { bytes_from_cache: bytes } : { bytes_from_upstream: bytes });
    });
  }

  /** The registry's counts over the last `hours` hours (read_virtual_registry), with what it caches now. */
  async statistics(actor: Actor, registryId: number | string, hours: number): Promise<Result<RegistryStatistics>> {
    return guarded(async () => {
      const found = await authorizeRegistry(this.#db, actor, registryId, 'read_virtual_registry');
      if (!found.ok) return found;
      const registry = found.value;
      const current = hourOf(this.#now());
      const since = current - (hours - 1) * HOUR;
      const rows = await this.#db.selectFrom('registry_traffic').selectAll().where('registry_id', '=', registry.id).where('hour', '>=', since).execute();
      const byHour = new Map(rows.map((row) => [Number(row.hour), row]));
      const series: TrafficHour[] = [];
      for (let hour = since; hour <= current; hour += HOUR) {
        const row = byHour.get(hour);
        series.push({ hour, hits: Number(row?.hits ?? 0), misses: Number(row?.misses ?? 0), bytes_from_cache: Number(row?.bytes_from_cache ?? 0), bytes_from_upstream: Number(row?.bytes_from_upstream ?? 0) });
      }
      const sum = (key: keyof TrafficHour) => series.reduce((total, hour) => total + hour[key], 0);
      const hits = sum('hits');
      const misses = sum('misses');
      const cached = await this.#db.selectFrom('cache_entries')
        .where('upstream_id', 'in', (eb) => eb.selectFrom('registry_upstreams').select('upstream_id').where('registry_id', '=', registry.id))
        .where('status', 'in', [CACHE_ENTRY_STATUS.default, CACHE_ENTRY_STATUS.processing, CACHE_ENTRY_STATUS.error])
        .select((eb) => [eb.fn.countAll<number>().as('entries'), eb.fn.coalesce(eb.fn.sum<number>('size'), sql<number>`0`).as('bytes')])
        .executeTakeFirstOrThrow();
      return ok({
        registry_id: registry.id,
        since,
        hours: series,
        hits,
        misses,
        hit_ratio: hits + misses === 0 ? null : hits / (hits + misses),
        bytes_from_cache: sum('bytes_from_cache'),
        bytes_from_upstream: sum('bytes_from_upstream'),
        cached_entries: Number(cached.entries),
        cached_bytes: Number(cached.bytes),
      });
    });
  }

  /** Writes the merged counts; on failure they go back into the buffer and the error is thrown. */
  flush(): Promise<{ writes: number }> {
    return this.#flushes.runNow();
  }

  start(): void {
    this.#flushes.start();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    await this.#flushes.stop();
    await this.flush();
  }

  #add(registryId: number, at: number, counts: Partial<Omit<TrafficHour, 'hour'>>): void {
    const hour = hourOf(at);
    const key = `${registryId}:${hour}`;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = { registry_id: registryId, hour, hits: 0, misses: 0, bytes_from_cache: 0, bytes_from_upstream: 0 };
      this.#pending.set(key, pending);
    }
    pending.hits += counts.hits ?? 0;
    pending.misses += counts.misses ?? 0;
    pending.bytes_from_cache += counts.bytes_from_cache ?? 0;
    pending.bytes_from_upstream += counts.bytes_from_upstream ?? 0;
  }

  async #flushNow(): Promise<{ writes: number }> {
    let writes = 0;
    if (this.#pending.size > 0) {
      const batch = [...this.#pending.values()];
      this.#pending = new Map();
      for (let i = 0; i < batch.length; i += FLUSH_CHUNK) {
        try {
          await this.#write(batch.slice(i, i + FLUSH_CHUNK));
          writes++;
        } catch (error) {
          for (const row of batch.slice(i)) this.#add(row.registry_id, row.hour, row);
          throw error;
        }
      }
    }
    const hour = hourOf(this.#now());
    if (hour !== this.#prunedHour) {
      this.#prunedHour = hour;
      await this.#db.deleteFrom('registry_traffic').where('hour', '<', hour - RETENTION_HOURS * HOUR).execute();
      writes++;
    }
    return { writes };
  }

  async #write(rows: Array<TrafficHour & { registry_id: number }>): Promise<void> {
    // A registry deleted since its pulls were counted: its rows would break the foreign key.
    const ids = [...new Set(rows.map((row) => row.registry_id))];
    const live = new Set((await this.#db.selectFrom('registries').select('id').where('id', 'in', ids).execute()).map((row) => row.id));
    const values = rows.filter((row) => live.has(row.registry_id));
    if (values.length === 0) return;
    await this.#db.insertInto('registry_traffic').values(values)
      .onConflict((conflict) => conflict.columns(['registry_id', 'hour']).doUpdateSet((eb) => ({
        hits: eb('registry_traffic.hits', '+', eb.ref('excluded.hits')),
        misses: eb('registry_traffic.misses', '+', eb.ref('excluded.misses')),
        bytes_from_cache: eb('registry_traffic.bytes_from_cache', '+', eb.ref('excluded.bytes_from_cache')),
        bytes_from_upstream: eb('registry_traffic.bytes_from_upstream', '+', eb.ref('excluded.bytes_from_upstream')),
      })))
      .execute();
  }
}
