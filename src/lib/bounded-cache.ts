// A bounded in-memory cache with a time to live: at most `maxEntries` entries and (with `sizeOf`) at
// most `maxBytes` bytes, least recently used evicted first (lru-cache underneath). The one cache of the
// process: lookups, verified tokens, permissions, hot manifests, negative answers.
//
// Invalidation: `clear()`, `delete()` and `deleteWhere()` bump a generation. A caller reading the source
// of truth takes `generation` first and hands it to `set`: an answer read before an invalidation is then
// not kept (it may already be out of date).
//
// An entry is fresh for its ttl; with `keepMs` longer than the ttl it is kept that long after it was read
// and still answers `getStale` (e.g. to stand in while the database is away).
import { LRUCache } from 'lru-cache';

export interface BoundedCacheOptions<V> {
  maxEntries: number;
  /** With sizeOf: the total size kept. */
  maxBytes?: number;
  /** The size of one entry in bytes (key included, if it matters); required with maxBytes. */
  sizeOf?: (value: V, key: string) => number;
  /** How long an entry is fresh; 0 with no keepMs = the cache keeps nothing. */
  ttlMs: number;
  /** How long an entry is kept for getStale (≥ ttlMs); default ttlMs. */
  keepMs?: number;
  now?: () => number;
}

interface Held<V> {
  value: V;
  readAt: number;
  /** Fresh until (epoch ms of `now`). */
  freshUntil: number;
}

export class BoundedCache<V> {
  readonly #ttlMs: number;
  readonly #keepMs: number;
  readonly #now: () => number;
  readonly #entries: LRUCache<string, Held<V>>;
  #generation = 0;
  #evictions = 0;

  constructor(options: BoundedCacheOptions<V>) {
    if (!(options.maxEntries > 0)) throw new Error('a bounded cache needs maxEntries > 0');
    if (options.maxBytes !== undefined && !options.sizeOf) throw new Error('maxBytes needs sizeOf');
    this.#ttlMs = Math.max(0, options.ttlMs);
    this.#keepMs = Math.max(this.#ttlMs, options.keepMs ?? 0);
    this.#now = options.now ?? Date.now;
    const sizeOf = options.sizeOf;
    this.#entries = new LRUCache<string, Held<V>>({
      max: options.maxEntries,
      ...(options.maxBytes !== undefined && sizeOf ? { maxSize: options.maxBytes, sizeCalculation: (held: Held<V>, key: string) => Math.max(1, sizeOf(held.value, key)) } : {}),
      // Kept no longer than keepMs; expired entries are dropped when met (no timers).
      ttl: Math.max(1, this.#keepMs),
      ttlAutopurge: false,
      perf: { now: this.#now },
      ttlResolution: 0,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.#evictions++;
      },
    });
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

  /** The value read within keepMs, fresh or not. */
  getStale(key: string): V | undefined {
    const held = this.#entries.get(key);
    return held && this.#now() - held.readAt < this.#keepMs ? held.value : undefined;
  }

  /**
   * Keeps a value (fresh for ttlMs, default the cache's). Not kept when the cache keeps nothing, when
   * `generation` is given and an invalidation came since, or when it alone exceeds maxBytes.
   */
  set(key: string, value: V, options: { generation?: number; ttlMs?: number } = {}): void {
    // A ttl given per entry never exceeds the cache's: that is the bound the cache documents.
    const ttlMs = Math.max(0, Math.min(options.ttlMs ?? this.#ttlMs, this.#ttlMs));
    if (Math.max(ttlMs, this.#keepMs) <= 0) return;
    if (options.generation !== undefined && options.generation !== this.#generation) return;
    const now = this.#now();
    this.#entries.set(key, { value, readAt: now, freshUntil: now + ttlMs }, { ttl: Math.max(ttlMs, this.#keepMs) });
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

  /** Entries held (expired ones not yet met included). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held (0 without sizeOf). */
  get bytes(): number {
    return this.#entries.calculatedSize;
  }

  /** Entries evicted to keep the bounds since the start. */
  get evictions(): number {
    return this.#evictions;
  }
}
