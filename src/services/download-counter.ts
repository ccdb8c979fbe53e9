// Download counters without a write per request (DESIGN §3.1 step 7): served requests are merged in
// memory per entry (count + latest time) and written every few seconds, and at shutdown, with one
// statement per FLUSH_CHUNK entries on either database.
import { sql } from 'kysely';
import type { Db } from '../db/connect.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';
import type { Logger } from '../log.ts';

/** Entries per statement: 3 parameters each, far below both databases' parameter limits. */
const FLUSH_CHUNK = 1000;

interface Pending {
  count: number;
  at: number;
}

export class DownloadCounter {
  readonly #db: Db;
  #pending = new Map<number, Pending>();
  /** Flushes run one after another, on the timer or on demand. */
  readonly #flushes: PeriodicTask<{ writes: number }>;

  constructor(deps: { db: Db; flushIntervalMs: number; logger?: Logger }) {
    this.#db = deps.db;
    this.#flushes = new PeriodicTask({ name: 'download counters flush', intervalMs: deps.flushIntervalMs, logger: deps.logger, run: () => this.#flushNow() });
  }

  /** Counts one download of an entry (in memory until the next flush). */
  record(entryId: number, at: number = Date.now()): void {
    this.#merge(entryId, 1, at);
  }

  /** Downloads recorded and not yet written. */
  get pendingEntries(): number {
    return this.#pending.size;
  }

  /**
   * Writes the recorded downloads; returns how many statements that took. On failure the downloads go
   * back into the buffer (for the next flush) and the error is thrown.
   */
  flush(): Promise<{ writes: number }> {
    return this.#flushes.runNow();
  }

  /** Flushes every flushIntervalMs until stop(). */
  start(): void {
    this.#flushes.start();
  }

  /** Stops the timer and writes what is left. */
  async stop(): Promise<void> {
    await this.#flushes.stop();
    await this.flush();
  }

  async #flushNow(): Promise<{ writes: number }> {
    if (this.#pending.size === 0) return { writes: 0 };
    const batch = [...this.#pending];
    this.#pending = new Map();
    let writes = 0;
    for (let i = 0; i < batch.length; i += FLUSH_CHUNK) {
      const chunk = batch.slice(i, i + FLUSH_CHUNK);
      try {
        await this.#write(chunk);
        writes++;
      } catch (error) {
        for (const [entryId, { count, at }] of batch.slice(i)) this.#merge(entryId, count, at);
        throw error;
      }
    }
    return { writes };
  }

  #merge(entryId: number, count: number, at: number): void {
    const pending = this.#pending.get(entryId);
    if (!pending) this.#pending.set(entryId, { count, at });
    else {
      pending.count += count;
      if (at > pending.at) pending.at = at;
    }
  }

  async #write(chunk: Array<[number, Pending]>): Promise<void> {
    // One UPDATE … FROM over a VALUES list (PostgreSQL, and SQLite ≥ 3.33). The casts give the
    // parameters a type on PostgreSQL; the latest download time wins over an older one already stored.
    const values = sql.join(chunk.map(([entryId, { count, at }]) => sql`(cast(${entryId} as bigint), cast(${count} as bigint), cast(${at} as bigint))`));
    await sql`
      with downloads (entry_id, n, at) as (values ${values})
      update cache_entries
      set downloads_count = downloads_count + downloads.n,
          downloaded_at = case when downloaded_at is null or downloaded_at < downloads.at then downloads.at else downloaded_at end
      from downloads
      where cache_entries.id = downloads.entry_id`.execute(this.#db);
  }
}
