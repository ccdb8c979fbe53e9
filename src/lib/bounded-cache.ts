// A bounded in-memory cache with a time to live: at most `maxEntries` entries and (with `sizeOf`) at
// most `maxBytes` bytes, least recently used evicted first (lru-cache underneath). The one cache of the
// process: lookups, verified tokens, permissions, hot manifests, negative answers.
//
// Invalidation: `clear()`, `delete()` and `deleteWhere()` bump a generation. A caller reading the source
// of truth takes `generation` first and hands it to `set`: an answer read before an invalidation is then
// not kept (it may already be out of date).
//
// An entry is fresh for its ttl; with `keepMs` longer than the ttl it is kept that long after it was read
// and still answers `getStale` (e.g. to stand in while the database is away). Without keepMs an entry is
// dropped when it stops being fresh.
//
// Expired entries are dropped when met, not by timers: `purgeExpiredEverywhere()` drops the rest in every
// live cache. The server calls it when it gives memory back after a busy period (src/memory-release.ts):
// a scan of unknown names leaves thousands of answers (404s, unknown groups) that nobody asks for again.
import { LRUCache } from 'lru-cache';

export interface BoundedCacheOptions<V> {
  maxEntries: number;
  /** With sizeOf: the total size kept. */
  maxBytes?: number;
  /** The size of one entry in bytes (key included, if it matters); required with maxBytes. */
  sizeOf?: (value: V, key: string) => number;
  /** How long an entry is fresh; 0 with no keepMs = the cache keeps nothing. */
  ttlMs: number;
  /** How long an entry is kept for getStale after it was read (at least as long as it is fresh); default: only while fresh. */
  keepMs?: number;
  now?: () => number;
}

/** What a cache holds, for /metrics. */
export interface CacheStats {
  entries: number;
  bytes: number;
  evictions: number;
}

interface Held<V> {
  value: V;
  readAt: number;
  /** Fresh until (epoch ms of `now`). */
  freshUntil: number;
}

/** The caches alive, for purgeExpiredEverywhere (weakly: a cache nobody holds is not kept for this). */
interface Purgeable {
  purgeExpired(): number;
}
const liveCaches = new Set<WeakRef<Purgeable>>();
const forgetCache = new FinalizationRegistry<WeakRef<Purgeable>>((ref) => liveCaches.delete(ref));

/** Drops the expired entries of every live cache; returns how many. */
export function purgeExpiredEverywhere(): number {
  let purged = 0;
  for (const ref of liveCaches) purged += ref.deref()?.purgeExpired() ?? 0;
  return purged;
}

export class BoundedCache<V> {
  readonly #ttlMs: number;
  readonly #keepMs: number;
  readonly #now: () => number;
  readonly #entries: LRUCache<string, Held<V>>;
  readonly #byteBound: boolean;
  #generation = 0;
  #evictions = 0;

  constructor(options: BoundedCacheOptions<V>) {
    if (!(options.maxEntries > 0)) throw new Error('a bounded cache needs maxEntries > 0');
    if (options.maxBytes !== undefined && !options.sizeOf) throw new Error('maxBytes needs sizeOf');
    this.#ttlMs = Math.max(0, options.ttlMs);
    this.#keepMs = options.keepMs === undefined ? 0 : Math.max(this.#ttlMs, options.keepMs);
    this.#now = options.now ?? Date.now;
    const sizeOf = options.sizeOf;
    this.#byteBound = options.maxBytes !== undefined;
    this.#entries = new LRUCache<string, Held<V>>({
      // lru-cache allocates its lists for `max` entries up front (about 40 bytes each: 400 kB for 10,000,
      // in every cache, whether used or not). Without a byte bound, the entry bound is a size of 1 per
      // entry instead, and the lists grow with what is held.
      ...(options.maxBytes !== undefined && sizeOf
        ? { max: options.maxEntries, maxSize: options.maxBytes, sizeCalculation: (held: Held<V>, key: string) => Math.max(1, sizeOf(held.value, key)) }
        : { maxSize: options.maxEntries, sizeCalculation: () => 1 }),
      // Each entry's own lifetime is given by set(); expired entries are dropped when met or purged (no timers).
      ttl: Math.max(1, this.#ttlMs, this.#keepMs),
      ttlAutopurge: false,
      perf: { now: this.#now },
      ttlResolution: 0,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.#evictions++;
      },
    });
    const ref = new WeakRef<Purgeable>(this);
    liveCaches.add(ref);
    forgetCache.register(this, ref);
  }

  /** Take it before reading the source and give it to `set`. */
  get generation(): number {
    return this.#generation;
  }

  /** The fresh value, or undefined. */
  get(key: string): V | undefined {
    const held = this.#entries.get(key);
    return held && this.#now() < held.freshUntil ? held.value : undefined;
  }

  /** The value while fresh or read within keepMs. */
  getStale(key: string): V | undefined {
    const held = this.#entries.get(key);
    if (!held) return undefined;
    const now = this.#now();
    return now < held.freshUntil || now - held.readAt < this.#keepMs ? held.value : undefined;
  }

  /**
   * Keeps a value (fresh for ttlMs, default the cache's). Not kept when the cache keeps nothing, when
   * `generation` is given and an invalidation came since, or when it alone exceeds maxBytes. `since`:
   * when the value was read from its source (default now); its freshness counts from then, so that a
   * slow read does not stretch the bound.
   */
  set(key: string, value: V, options: { generation?: number; ttlMs?: number; since?: number } = {}): void {
    // A ttl given per entry never exceeds the cache's: that is the bound the cache documents.
    const ttlMs = Math.max(0, Math.min(options.ttlMs ?? this.#ttlMs, this.#ttlMs));
    if (Math.max(ttlMs, this.#keepMs) <= 0) return;
    if (options.generation !== undefined && options.generation !== this.#generation) return;
    const readAt = Math.min(options.since ?? Infinity, this.#now());
    this.#entries.set(key, { value, readAt, freshUntil: readAt + ttlMs }, { ttl: Math.max(ttlMs, this.#keepMs) });
  }

  delete(key: string): void {
    this.#generation++;
    this.#entries.delete(key);
  }

  /** Removes every entry the predicate picks. */
  deleteWhere(predicate: (value: V, key: string) => boolean): number {
    this.#generation++;
    const doomed: string[] = [];
    for (const [key, held] of this.#entries.entries()) if (predicate(held.value, key)) doomed.push(key);
    for (const key of doomed) this.#entries.delete(key);
    return doomed.length;
  }

  clear(): void {
    this.#generation++;
    this.#entries.clear();
  }

  /** Drops the entries past their lifetime (fresh ones and those kept for getStale stay); returns how many. */
  purgeExpired(): number {
    const before = this.#entries.size;
    this.#entries.purgeStale();
    return before - this.#entries.size;
  }

  /** Entries held (expired ones not yet met included). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held (0 without a byte bound). */
  get bytes(): number {
    return this.#byteBound ? this.#entries.calculatedSize : 0;
  }

  /** Entries evicted to keep the bounds since the start. */
  get evictions(): number {
    return this.#evictions;
  }

  get stats(): CacheStats {
    return { entries: this.size, bytes: this.bytes, evictions: this.#evictions };
  }
}
