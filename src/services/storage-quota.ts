// The storage quotas (issue 18, DESIGN §4): `storage.maxBytes` for the instance and an optional quota
// per group. Above the high watermark, entries are evicted least recently pulled first until storage is
// under the low watermark (eviction.ts); the destroy worker then deletes the objects nothing refers to.
//
// Storage is measured by one aggregate query (eviction.ts `stored`) every quotaCheckSeconds, and kept
// as a running figure in between: every committed fill (blob or manifest) adds its size, and a figure
// above the high watermark starts a check at once, so storage exceeds the limit by no more than the
// fills in flight.
// One check runs at a time in the process, and across replicas on PostgreSQL (an advisory lock).
import { sql } from 'kysely';
import type { Db, Dialect } from '../db/connect.ts';
import type { Logger } from '../log.ts';
import { ok } from '../result.ts';
import type { Metrics } from '../metrics.ts';
import type { CacheDestroyer } from './cache-destroyer.ts';
import type { DownloadCounter } from './download-counter.ts';
import type { EvictionTally, Evictor } from './eviction.ts';
import { transact } from './database.ts';
import { ADVISORY_NAMESPACE } from './object-references.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';

/** Second key of the quota check's advisory lock (the first is object-references.ts's namespace). */
const QUOTA_LOCK_KEY = 0x71756f74; // "quot"

export interface QuotaSettings {
  /** 0: no instance limit. */
  maxBytes: number;
  highWatermarkPercent: number;
  lowWatermarkPercent: number;
}

export interface QuotaCheck {
  /** Bytes stored (unique objects of live entries) before the check evicted anything. */
  storedBytes: number;
  evictedEntries: number;
  evictedBytes: number;
  /** False when another replica was checking (nothing was done). */
  ran: boolean;
}

export class StorageQuota {
  readonly #db: Db;
  readonly #dialect: Dialect;
  readonly #evictor: Evictor;
  readonly #destroyer: Pick<CacheDestroyer, 'runOnce'>;
  readonly #counter: Pick<DownloadCounter, 'flush'> | undefined;
  readonly #settings: QuotaSettings;
  readonly #metrics: Metrics | undefined;
  readonly #logger: Logger | undefined;
  /** Bytes stored as last measured plus the fills committed since. */
  #instanceFigure = 0;
  /** Group id → [quota, bytes as last measured plus fills since]. */
  #groups = new Map<number, { quota: number; figure: number }>();
  readonly #runs: PeriodicTask<QuotaCheck>;
  #stopped = false;

  constructor(deps: { db: Db; dialect: Dialect; evictor: Evictor; destroyer: Pick<CacheDestroyer, 'runOnce'>; counter?: Pick<DownloadCounter, 'flush'>; settings: QuotaSettings; intervalMs: number; metrics?: Metrics; logger?: Logger }) {
    this.#db = deps.db;
    this.#dialect = deps.dialect;
    this.#evictor = deps.evictor;
    this.#destroyer = deps.destroyer;
    this.#counter = deps.counter;
    this.#settings = deps.settings;
    this.#runs = new PeriodicTask({ name: 'storage quota check', intervalMs: deps.intervalMs, logger: deps.logger, run: () => this.#checkExclusive() });
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    this.#metrics?.storageLimitBytes.set(deps.settings.maxBytes);
  }

  #high(limit: number): number {
    return Math.floor((limit * this.#settings.highWatermarkPercent) / 100);
  }

  #low(limit: number): number {
    return Math.floor((limit * this.#settings.lowWatermarkPercent) / 100);
  }

  /**
   * Whether a blob of this size can be stored: false when it would not fit under the low watermark even
   * with everything else evicted (the pull then streams it through without storing it).
   */
  admits(size: number, groupId: number): boolean {
    const { maxBytes } = this.#settings;
    if (maxBytes > 0 && size > this.#low(maxBytes)) return false;
    const group = this.#groups.get(groupId);
    return !group || size <= this.#low(group.quota);
  }

  /** A fill committed an object: the running figures grow, and a check starts when one crosses its high watermark. */
  committed(size: number, groupId: number): void {
    this.#instanceFigure += size;
    const group = this.#groups.get(groupId);
    if (group) group.figure += size;
    const { maxBytes } = this.#settings;
    const over = (maxBytes > 0 && this.#instanceFigure > this.#high(maxBytes)) || (group !== undefined && group.figure > this.#high(group.quota));
    if (over) this.#checkInBackground();
  }

  /** Measures storage and evicts what is over the limits; a call during a check runs one more after it. */
  check(): Promise<QuotaCheck> {
    return this.#runs.runNow();
  }

  start(): void {
    // The group quotas are read at once, so that admits() knows them before the first interval.
    this.#checkInBackground();
    this.#runs.start();
  }

  stop(): Promise<void> {
    this.#stopped = true;
    return this.#runs.stop();
  }

  #checkInBackground(): void {
    if (this.#stopped) return;
    this.check().catch((error: unknown) => this.#logger?.error({ err: error }, 'storage quota check failed'));
  }

  async #checkExclusive(): Promise<QuotaCheck> {
    if (this.#dialect !== 'postgres') return this.#checkNow();
    // The lock lives as long as this transaction; the check's statements run on other connections.
    const checked = await transact(this.#db, async (trx) => {
      const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${ADVISORY_NAMESPACE}, ${QUOTA_LOCK_KEY}) as locked`.execute(trx);
      if (!rows[0]?.locked) return ok({ storedBytes: this.#instanceFigure, evictedEntries: 0, evictedBytes: 0, ran: false });
      return ok(await this.#checkNow());
    });
    // A failed check is reported by its caller, as when it runs without the lock (SQLite).
    if (!checked.ok) throw checked.cause ?? new Error(checked.message);
    return checked.value;
  }

  async #checkNow(): Promise<QuotaCheck> {
    const startedAt = Date.now();
    // Pulls counted in memory move entries up the LRU order: write them first.
    await this.#counter?.flush().catch((error: unknown) => this.#logger?.warn({ err: error }, 'download counters not written before the quota check'));
    const result: QuotaCheck = { storedBytes: 0, evictedEntries: 0, evictedBytes: 0, ran: true };
    const evicted: Array<{ reason: 'instance_quota' | 'group_quota'; tally: EvictionTally }> = [];

    const { maxBytes } = this.#settings;
    const instance = await this.#evictor.stored();
    result.storedBytes = instance.bytes;
    this.#instanceFigure = instance.bytes;
    if (maxBytes > 0 && instance.bytes > this.#high(maxBytes)) {
      const tally = await this.#evictor.evict({}, { freeBytes: instance.bytes - this.#low(maxBytes) });
      evicted.push({ reason: 'instance_quota', tally });
      this.#instanceFigure -= tally.freedBytes;
    }

    const quotas = await this.#db.selectFrom('groups').select(['id', 'storage_quota_bytes']).where('storage_quota_bytes', 'is not', null).execute();
    const groups = new Map<number, { quota: number; figure: number }>();
    for (const { id, storage_quota_bytes: quota } of quotas) {
      const stored = await this.#evictor.stored({ groupId: id });
      let figure = stored.bytes;
      if (stored.bytes > this.#high(Number(quota))) {
        const tally = await this.#evictor.evict({ groupId: id }, { freeBytes: stored.bytes - this.#low(Number(quota)) });
        evicted.push({ reason: 'group_quota', tally });
        figure -= tally.freedBytes;
      }
      groups.set(id, { quota: Number(quota), figure });
    }
    this.#groups = groups;

    for (const { reason, tally } of evicted) {
      result.evictedEntries += tally.entries;
      result.evictedBytes += tally.bytes;
      this.#metrics?.evictions.inc({ reason }, tally.entries);
      this.#metrics?.evictedBytes.inc({ reason }, tally.bytes);
      await this.#evictor.record(reason, startedAt, tally);
    }
    this.#metrics?.storageBytes.set(this.#instanceFigure);
    if (result.evictedEntries > 0) {
      this.#logger?.info({ storedBytes: result.storedBytes, evictedEntries: result.evictedEntries, evictedBytes: result.evictedBytes }, 'cache entries evicted over the storage quota');
      await this.#destroyer.runOnce();
    }
    return result;
  }
}
