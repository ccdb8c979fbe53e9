// Upstream 404s remembered for a short time (DESIGN §3.5), per upstream and path, so that a client
// asking again and again for a tag that does not exist costs each upstream one request per window.
// Bounded (least recently used go first) so unknown names cannot grow it without limit.
import { BoundedCache } from '../../lib/bounded-cache.ts';
import { MAX_NEGATIVE_CACHE_SECONDS } from '../freshness.ts';

const MAX_ENTRIES = 50_000;

export class NegativeCache {
  readonly #missing: BoundedCache<true>;

  constructor(now: () => number = Date.now) {
    this.#missing = new BoundedCache({ maxEntries: MAX_ENTRIES, ttlMs: MAX_NEGATIVE_CACHE_SECONDS * 1000, now });
  }

  /** The upstream answered 404 for this path; remembered `ttlMs` (0 = not at all). */
  remember(upstreamId: number, path: string, ttlMs: number): void {
    if (ttlMs > 0) this.#missing.set(`${upstreamId}:${path}`, true, { ttlMs });
  }

  isMissing(upstreamId: number, path: string): boolean {
    return this.#missing.get(`${upstreamId}:${path}`) === true;
  }

  /** The path was stored from this upstream after all (e.g. a push landed): forget the 404. */
  forget(upstreamId: number, path: string): void {
    this.#missing.delete(`${upstreamId}:${path}`);
  }

  /** The upstream changed (its URL, its credentials) or is gone: what it said no longer counts. */
  forgetUpstream(upstreamId: number): void {
    const prefix = `${upstreamId}:`;
    this.#missing.deleteWhere((_, key) => key.startsWith(prefix));
  }

  clear(): void {
    this.#missing.clear();
  }
}
