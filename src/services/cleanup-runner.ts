// Runs the cleanup policies (issue 18, GitLab's semantics): when a group's policy is due (next_run_at),
// its entries not pulled for keep_n_days_after_download days (never pulled: since their creation) are
// evicted (eviction.ts), the run is recorded (cleanup_runs, and last_run_* on the policy) and the next
// one is scheduled a cadence later. A run is claimed by moving next_run_at in one statement (on
// PostgreSQL with FOR UPDATE SKIP LOCKED), so each due run happens once across replicas.
import { sql } from 'kysely';
import type { Db, Dialect } from '../db/connect.ts';
import type { CleanupPolicy } from '../db/schema.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { CacheDestroyer } from './cache-destroyer.ts';
import type { DownloadCounter } from './download-counter.ts';
import type { Evictor } from './eviction.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';

const DAY = 24 * 60 * 60 * 1000;

export interface CleanupRunResult {
  policies: number;
  entries: number;
  bytes: number;
}

export class CleanupRunner {
  readonly #db: Db;
  readonly #dialect: Dialect;
  readonly #evictor: Evictor;
  readonly #destroyer: Pick<CacheDestroyer, 'runOnce'>;
  readonly #counter: Pick<DownloadCounter, 'flush'> | undefined;
  readonly #metrics: Metrics | undefined;
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  readonly #runs: PeriodicTask<CleanupRunResult>;

  constructor(deps: { db: Db; dialect: Dialect; evictor: Evictor; destroyer: Pick<CacheDestroyer, 'runOnce'>; counter?: Pick<DownloadCounter, 'flush'>; intervalMs: number; metrics?: Metrics; logger?: Logger; now?: () => number }) {
    this.#db = deps.db;
    this.#dialect = deps.dialect;
    this.#evictor = deps.evictor;
    this.#destroyer = deps.destroyer;
    this.#counter = deps.counter;
    this.#runs = new PeriodicTask({ name: 'cleanup policies', intervalMs: deps.intervalMs, logger: deps.logger, run: () => this.#runDue() });
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    this.#now = deps.now ?? Date.now;
  }

  /** Runs every policy that is due, one after another; one run at a time per process. */
  runDue(): Promise<CleanupRunResult> {
    return this.#runs.runNow();
  }

  start(): void {
    this.#runs.start();
  }

  stop(): Promise<void> {
    return this.#runs.stop();
  }

  async #runDue(): Promise<CleanupRunResult> {
    const total: CleanupRunResult = { policies: 0, entries: 0, bytes: 0 };
    // Pulls counted in memory are downloads too: write them before deciding what was not downloaded.
    await this.#counter?.flush().catch((error: unknown) => this.#logger?.warn({ err: error }, 'download counters not written before the cleanup'));
    for (;;) {
      const policy = await this.#claim();
      if (!policy) break;
      total.policies++;
      const startedAt = this.#now();
      try {
        const tally = await this.#evictor.evict({ groupId: policy.group_id }, { usedBefore: startedAt - policy.keep_n_days_after_download * DAY });
        await this.#evictor.record('cleanup_policy', startedAt, tally, { groupId: policy.group_id });
        await this.#db.updateTable('cleanup_policies')
          .set({ last_run_at: startedAt, last_run_deleted_entries: tally.entries, last_run_deleted_bytes: tally.bytes, failure_message: null })
          .where('id', '=', policy.id).execute();
        this.#metrics?.evictions.inc({ reason: 'cleanup_policy' }, tally.entries);
        this.#metrics?.evictedBytes.inc({ reason: 'cleanup_policy' }, tally.bytes);
        total.entries += tally.entries;
        total.bytes += tally.bytes;
        this.#logger?.info({ groupId: policy.group_id, entries: tally.entries, bytes: tally.bytes }, 'cleanup policy run');
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        this.#logger?.error({ err: error, groupId: policy.group_id }, 'cleanup policy run failed; it runs again at its next time');
        await this.#db.updateTable('cleanup_policies').set({ last_run_at: startedAt, failure_message: message }).where('id', '=', policy.id).execute();
        await this.#evictor.record('cleanup_policy', startedAt, { entries: 0, bytes: 0, freedBytes: 0, groups: new Map() }, { groupId: policy.group_id, failure: message });
      }
    }
    if (total.entries > 0) await this.#destroyer.runOnce();
    return total;
  }

  /** Claims one due policy by moving its next run a cadence ahead; null when none is due. */
  async #claim(): Promise<CleanupPolicy | null> {
    const now = this.#now();
    let due = this.#db.selectFrom('cleanup_policies').select('id')
      .where('enabled', '=', 1).where('next_run_at', '<=', now)
      .orderBy('next_run_at').limit(1);
    if (this.#dialect === 'postgres') due = due.forUpdate().skipLocked();
    const claimed = await this.#db.updateTable('cleanup_policies')
      .set({ next_run_at: sql<number>`cast(${now} as bigint) + cast(cadence_days as bigint) * cast(${DAY} as bigint)`, updated_at: now })
      .where('id', '=', due)
      .returningAll()
      .executeTakeFirst();
    return claimed ?? null;
  }
}
