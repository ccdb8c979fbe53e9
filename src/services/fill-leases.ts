// Cluster-wide single flight (DESIGN §8, README "Running several replicas"): before a replica fetches an
// object from an upstream it claims the fill's lease, a row of fill_leases keyed like the in-process
// single flight (`<upstream id>:<path>`). The owner renews its leases every heartbeat; a lease not renewed
// within the expiry belongs to a replica that died or lost the database, and the next replica that needs
// the object takes it over in the same statement that claims it. Times are the database's clock, so the
// replicas' clocks never matter. Rows that outlive their owner are deleted by whichever replica's
// heartbeat sees them long expired: no lease is ever stuck.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/connect.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';

/** Epoch milliseconds on the database's clock. */
const DB_NOW = sql<number>`(extract(epoch from now()) * 1000)::bigint`;

/** Who fills an object now. */
export type FillClaim =
  /** This replica owns the fill: fetch the object, then release(), whatever the outcome. */
  | { kind: 'owned'; takenOver: boolean; release(): Promise<void> }
  /** Another replica owns it: stream from `url` (blobs) or wait for its commit (manifests). */
  | { kind: 'held'; owner: string; url: string };

export interface FillLeaseOptions {
  db: Db;
  /** This replica's peer listener as the others reach it (cluster.advertiseUrl). */
  advertiseUrl: string;
  heartbeatMs: number;
  expiryMs: number;
  logger: Logger;
  metrics: Metrics;
}

export class FillLeases {
  /** Unique per process: a restarted replica is a new owner, its predecessor's leases simply expire. */
  readonly replicaId = `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  readonly advertiseUrl: string;
  readonly expiryMs: number;
  readonly #options: FillLeaseOptions;
  readonly #owned = new Set<string>();
  // A failed run means the database is away: the leases expire, and another replica may take a fill
  // over (one more upstream GET, never wrong bytes).
  readonly #heartbeat: PeriodicTask<void>;

  constructor(options: FillLeaseOptions) {
    this.#options = options;
    this.advertiseUrl = options.advertiseUrl;
    this.expiryMs = options.expiryMs;
    this.#heartbeat = new PeriodicTask({ name: 'fill lease heartbeat', intervalMs: options.heartbeatMs, run: () => this.#renew(), logger: options.logger });
  }

  /**
   * Claims the lease of `key`: a new row, or an expired one taken over atomically (the update's
   * condition is the expiry, so of two replicas racing for it exactly one wins).
   */
  async claim(key: string): Promise<FillClaim> {
    const { db, expiryMs } = this.#options;
    for (;;) {
      const claimed = await sql<{ takeovers: number }>`
        insert into fill_leases (key, owner, owner_url, acquired_at, expires_at)
        values (${key}, ${this.replicaId}, ${this.advertiseUrl}, ${DB_NOW}, ${DB_NOW} + ${expiryMs})
        on conflict (key) do update set owner = excluded.owner, owner_url = excluded.owner_url,
          acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, takeovers = fill_leases.takeovers + 1
        where fill_leases.expires_at < ${DB_NOW}
        returning takeovers`.execute(db);
      const row = claimed.rows[0];
      if (row) {
        // A row that was taken over before is deleted when released: takeovers counts this claim's.
        const takenOver = Number(row.takeovers) > 0;
        if (takenOver) {
          this.#options.metrics.clusterLeaseTakeovers.inc();
          this.#options.logger.warn({ key }, 'took over the fill of a replica that stopped renewing its lease');
        }
        this.#owned.add(key);
        this.#options.metrics.clusterFillsOwned.inc();
        return { kind: 'owned', takenOver, release: () => this.#release(key) };
      }
      const holder = await db.selectFrom('fill_leases').select(['owner', 'owner_url']).where('key', '=', key).executeTakeFirst();
      // Released between the two statements: claim again.
      if (holder) return { kind: 'held', owner: holder.owner, url: holder.owner_url };
    }
  }

  /** Whether `owner` still holds an unexpired lease of `key` (followers waiting for a commit poll it). */
  async heldBy(key: string, owner: string): Promise<boolean> {
    const row = await this.#options.db.selectFrom('fill_leases').select('key')
      .where('key', '=', key).where('owner', '=', owner).where('expires_at', '>=', DB_NOW).executeTakeFirst();
    return row !== undefined;
  }

  /** Renews this replica's leases every heartbeat and removes leases long expired. */
  start(): void {
    this.#heartbeat.start();
  }

  /** Stops renewing and releases what this replica still owns (shutdown, after fills settled). */
  async stop(): Promise<void> {
    await this.#heartbeat.stop();
    const keys = [...this.#owned];
    this.#owned.clear();
    if (keys.length > 0) {
      await this.#options.db.deleteFrom('fill_leases').where('owner', '=', this.replicaId).where('key', 'in', keys).execute().catch(() => {});
    }
  }

  async #renew(): Promise<void> {
    const { db, expiryMs } = this.#options;
    const keys = [...this.#owned];
    if (keys.length > 0) {
      const renewed = await db.updateTable('fill_leases').set({ expires_at: sql<number>`${DB_NOW} + ${expiryMs}` })
        .where('owner', '=', this.replicaId).where('key', 'in', keys).returning('key').execute();
      const still = new Set(renewed.map((row) => row.key));
      for (const key of keys) {
        // Released meanwhile, or taken over after this replica could not renew it in time.
        if (!still.has(key) && this.#owned.delete(key)) this.#options.logger.warn({ key }, 'lost the lease of a fill in flight; another replica may fetch it too');
      }
    }
    // Leases of replicas that died and whose object nobody asked for again.
    await db.deleteFrom('fill_leases').where('expires_at', '<', sql<number>`${DB_NOW} - ${expiryMs}`).execute();
  }

  async #release(key: string): Promise<void> {
    if (!this.#owned.delete(key)) return;
    try {
      await this.#options.db.deleteFrom('fill_leases').where('key', '=', key).where('owner', '=', this.replicaId).execute();
    } catch (error) {
      // It expires by itself.
      this.#options.logger.warn({ key, err: (error as Error).message }, 'cannot release a fill lease; it expires');
    }
  }
}
