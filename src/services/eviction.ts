// Eviction (issue 18): marks live cache entries pending_destruction, least recently pulled first
// (downloaded_at, else created_at), for the cleanup policies and the storage quotas; the destroy
// worker then deletes them and the objects no live entry refers to any more (cache-destroyer.ts).
//
// Storage is counted by object, not by entry: bytes stored are the sizes of the unique digests of the
// live entries (an object shared by two upstreams is stored once). An eviction that must free N bytes
// walks entries in LRU order and counts an object's bytes as freed only once every live entry referring
// to it (within the scope) is chosen; entries younger than the grace period are never chosen, so a fill
// that has just created its entry is not undone by an eviction racing it.
import { sql } from 'kysely';
import type { Db } from '../db/connect.ts';
import { CACHE_ENTRY_STATUS } from '../db/schema.ts';
import type { CleanupRunReason } from '../db/schema.ts';

const { default: LIVE, processing: PROCESSING, pending_destruction: PENDING_DESTRUCTION } = CACHE_ENTRY_STATUS;
const HOUR = 60 * 60 * 1000;
/** Entries read, counted or marked per statement. */
const BATCH = 1000;

/** The whole instance, or one group's entries. */
export interface EvictionScope {
  groupId?: number;
}

export interface EvictionGoal {
  /** Stop once this many bytes of objects would be freed (within the scope). */
  freeBytes?: number;
  /** Only entries last pulled (or, never pulled, created) before this time. */
  usedBefore?: number;
}

/** What one eviction marked, in all and per group. */
export interface EvictionTally {
  entries: number;
  /** The sum of the marked entries' sizes. */
  bytes: number;
  /** Bytes of objects no live entry of the scope refers to any more (counted when freeBytes is asked). */
  freedBytes: number;
  groups: Map<number, { entries: number; bytes: number }>;
}

interface Candidate {
  id: number;
  digest: string;
  size: number;
  used_at: number;
}

interface Marked {
  id: number;
  group_id: number;
  upstream_id: number | null;
  size: number;
}

export class Evictor {
  readonly #db: Db;
  readonly #graceMs: number;
  readonly #now: () => number;

  constructor(deps: { db: Db; graceMs: number; now?: () => number }) {
    this.#db = deps.db;
    this.#graceMs = deps.graceMs;
    this.#now = deps.now ?? Date.now;
  }

  /** Bytes of the unique objects the scope's live entries refer to, and how many entries that is. */
  async stored(scope: EvictionScope = {}): Promise<{ bytes: number; entries: number }> {
    let perDigest = this.#db.selectFrom('cache_entries')
      .select((eb) => ['digest', eb.fn.max('size').as('size'), eb.fn.countAll().as('n')])
      .where('status', 'in', [LIVE, PROCESSING]).where('upstream_id', 'is not', null)
      .groupBy('digest');
    if (scope.groupId !== undefined) perDigest = perDigest.where('group_id', '=', scope.groupId);
    const row = await this.#db.selectFrom(perDigest.as('d'))
      .select((eb) => [eb.fn.coalesce(eb.fn.sum<number>('d.size'), sql<number>`0`).as('bytes'), eb.fn.coalesce(eb.fn.sum<number>('d.n'), sql<number>`0`).as('entries')])
      .executeTakeFirstOrThrow();
    return { bytes: Number(row.bytes), entries: Number(row.entries) };
  }

  /**
   * Marks entries of the scope pending_destruction, least recently pulled first, until the goal is
   * met or no entry old enough is left. Returns what was marked.
   */
  async evict(scope: EvictionScope, goal: EvictionGoal): Promise<EvictionTally> {
    const tally: EvictionTally = { entries: 0, bytes: 0, freedBytes: 0, groups: new Map() };
    const createdBefore = this.#now() - this.#graceMs;
    /** Live entries of the scope per digest not yet chosen (only when bytes are to be freed). */
    const remaining = new Map<string, number>();
    let after: { usedAt: number; id: number } | null = null;
    for (;;) {
      const batch = await this.#candidates(scope, createdBefore, goal.usedBefore, after);
      if (batch.length === 0) break;
      after = { usedAt: Number(batch[batch.length - 1].used_at), id: batch[batch.length - 1].id };
      let chosen = batch;
      if (goal.freeBytes !== undefined) {
        await this.#countReferences(scope, batch.map((c) => c.digest).filter((d) => !remaining.has(d)), remaining);
        chosen = [];
        for (const candidate of batch) {
          if (tally.freedBytes >= goal.freeBytes) break;
          chosen.push(candidate);
          const left = (remaining.get(candidate.digest) ?? 1) - 1;
          remaining.set(candidate.digest, left);
          if (left === 0) tally.freedBytes += Number(candidate.size);
        }
      }
      await this.#mark(chosen.map((c) => c.id), tally);
      if (goal.freeBytes !== undefined && tally.freedBytes >= goal.freeBytes) break;
      if (batch.length < BATCH) break;
    }
    return tally;
  }

  /** Records one run per group (and, for cleanup policies, a run that marked nothing), and the evictions per upstream. */
  async record(reason: CleanupRunReason, startedAt: number, tally: EvictionTally, options: { groupId?: number; failure?: string } = {}): Promise<void> {
    const finishedAt = this.#now();
    const groups = new Map(tally.groups);
    if (options.groupId !== undefined && !groups.has(options.groupId)) groups.set(options.groupId, { entries: 0, bytes: 0 });
    if (groups.size === 0) return;
    await this.#db.insertInto('cleanup_runs').values([...groups].map(([groupId, counts]) => ({
      group_id: groupId, reason, started_at: startedAt, finished_at: finishedAt, deleted_entries: counts.entries, deleted_bytes: counts.bytes, failure_message: options.failure ?? null,
    }))).execute();
  }

  /** The next batch of candidates after `after` in LRU order. */
  #candidates(scope: EvictionScope, createdBefore: number, usedBefore: number | undefined, after: { usedAt: number; id: number } | null): Promise<Candidate[]> {
    const usedAt = sql<number>`coalesce(downloaded_at, created_at)`;
    let query = this.#db.selectFrom('cache_entries')
      .select(['id', 'digest', 'size', usedAt.as('used_at')])
      .where('status', '=', LIVE)
      .where('upstream_id', 'is not', null)
      .where('created_at', '<', createdBefore)
      .orderBy(usedAt).orderBy('id')
      .limit(BATCH);
    if (scope.groupId !== undefined) query = query.where('group_id', '=', scope.groupId);
    if (usedBefore !== undefined) query = query.where(usedAt, '<', usedBefore);
    if (after) query = query.where(sql<boolean>`(coalesce(downloaded_at, created_at), id) > (${after.usedAt}, ${after.id})`);
    return query.execute();
  }

  /** Adds to `into` how many live entries of the scope refer to each digest. */
  async #countReferences(scope: EvictionScope, digests: string[], into: Map<string, number>): Promise<void> {
    const unique = [...new Set(digests)];
    if (unique.length === 0) return;
    let query = this.#db.selectFrom('cache_entries').select((eb) => ['digest', eb.fn.countAll().as('n')])
      .where('digest', 'in', unique).where('status', 'in', [LIVE, PROCESSING]).where('upstream_id', 'is not', null)
      .groupBy('digest');
    if (scope.groupId !== undefined) query = query.where('group_id', '=', scope.groupId);
    for (const row of await query.execute()) into.set(row.digest, Number(row.n));
  }

  /** Marks the entries still live (one statement), counts them, and adds them to the upstreams' evictions. */
  async #mark(ids: number[], tally: EvictionTally): Promise<void> {
    if (ids.length === 0) return;
    const now = this.#now();
    const marked: Marked[] = await this.#db.updateTable('cache_entries').set({ status: PENDING_DESTRUCTION, updated_at: now })
      .where('id', 'in', ids).where('status', '=', LIVE)
      .returning(['id', 'group_id', 'upstream_id', 'size'])
      .execute();
    const perUpstream = new Map<number, { entries: number; bytes: number }>();
    for (const entry of marked) {
      const size = Number(entry.size);
      tally.entries++;
      tally.bytes += size;
      const group = tally.groups.get(entry.group_id) ?? { entries: 0, bytes: 0 };
      group.entries++;
      group.bytes += size;
      tally.groups.set(entry.group_id, group);
      if (entry.upstream_id === null) continue;
      const upstream = perUpstream.get(entry.upstream_id) ?? { entries: 0, bytes: 0 };
      upstream.entries++;
      upstream.bytes += size;
      perUpstream.set(entry.upstream_id, upstream);
    }
    if (perUpstream.size === 0) return;
    const hour = Math.floor(now / HOUR) * HOUR;
    await this.#db.insertInto('upstream_evictions')
      .values([...perUpstream].map(([upstreamId, counts]) => ({ upstream_id: upstreamId, hour, entries: counts.entries, bytes: counts.bytes })))
      .onConflict((oc) => oc.columns(['upstream_id', 'hour']).doUpdateSet((eb) => ({
        entries: sql<number>`${eb.ref('upstream_evictions.entries')} + ${eb.ref('excluded.entries')}`,
        bytes: sql<number>`${eb.ref('upstream_evictions.bytes')} + ${eb.ref('excluded.bytes')}`,
      })))
      .execute();
  }
}
