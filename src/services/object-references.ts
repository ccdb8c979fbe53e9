// Keeps "create an entry for a stored object" and "delete an object no live entry refers to" apart,
// per digest, so that an object is never deleted while a live entry points at it (DESIGN §4).
//
// The creator holds the digest shared while it checks that the object is stored and writes its entry;
// the destroyer holds it exclusively while it checks that no live entry uses the digest and deletes the
// object. Whoever comes second sees the first one's outcome: the destroyer sees the new live entry and
// keeps the object, or the creator sees the object gone and refuses the entry (object_not_present).
//
// Within one process an in-memory lock does it (SQLite is single-process); across processes on
// PostgreSQL a transaction-scoped advisory lock on the digest does it too.
import { sql } from 'kysely';
import type { Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';

/** First key of our advisory locks ("mf" + 1), so they cannot collide with other users' locks. */
export const ADVISORY_NAMESPACE = 0x6d6601;

/** A 32-bit advisory lock key for a digest; collisions only serialise two digests needlessly. */
export function digestLockKey(digest: string): number {
  const hex = digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 9);
  return Number.parseInt(hex, 16) | 0;
}

export async function lockDigestShared(trx: Transaction<Database>, digest: string): Promise<void> {
  await sql`select pg_advisory_xact_lock_shared(${ADVISORY_NAMESPACE}, ${digestLockKey(digest)})`.execute(trx);
}

/** Locks every digest exclusively, in key order so that two destroyers cannot deadlock. */
export async function lockDigestsExclusive(trx: Transaction<Database>, digests: readonly string[]): Promise<void> {
  const keys = [...new Set(digests.map(digestLockKey))].sort((a, b) => a - b);
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000);
    await sql`select pg_advisory_xact_lock(${ADVISORY_NAMESPACE}, k) from unnest(${chunk}::int[]) with ordinality as t(k, n) order by n`.execute(trx);
  }
}

interface LockState {
  readers: number;
  writer: boolean;
  waiting: Array<{ exclusive: boolean; grant: () => void }>;
}

/** A per-key readers–writer lock, first come first served. */
export class KeyedLock {
  readonly #states = new Map<string, LockState>();

  shared<T>(key: string, run: () => Promise<T>): Promise<T> {
    return this.#with(key, false, run);
  }

  exclusive<T>(key: string, run: () => Promise<T>): Promise<T> {
    return this.#with(key, true, run);
  }

  async #with<T>(key: string, exclusive: boolean, run: () => Promise<T>): Promise<T> {
    let state = this.#states.get(key);
    if (!state) {
      state = { readers: 0, writer: false, waiting: [] };
      this.#states.set(key, state);
    }
    if (state.waiting.length > 0 || state.writer || (exclusive && state.readers > 0)) {
      await new Promise<void>((grant) => state.waiting.push({ exclusive, grant }));
    } else if (exclusive) state.writer = true;
    else state.readers++;
    try {
      return await run();
    } finally {
      if (exclusive) state.writer = false;
      else state.readers--;
      this.#grant(key, state);
    }
  }

  #grant(key: string, state: LockState): void {
    while (state.waiting.length > 0 && !state.writer) {
      const next = state.waiting[0];
      if (next.exclusive && state.readers > 0) break;
      state.waiting.shift();
      if (next.exclusive) state.writer = true;
      else state.readers++;
      next.grant();
    }
    if (state.readers === 0 && !state.writer && state.waiting.length === 0) this.#states.delete(key);
  }
}

/** The one in-process lock shared by every CacheEntryService and CacheDestroyer. */
export const objectReferenceLock = new KeyedLock();
