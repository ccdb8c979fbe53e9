// Tag listing through the cache (DESIGN §3.3; distribution-spec "Listing Tags"): the tags of every
// upstream of the registry, merged, de-duplicated and in lexical order, a page at a time (`n`, `last`).
//
// Each upstream's list is kept per (upstream, image) for `cache.tagsTtlSeconds`, in a bounded LRU, and
// asked again once older; concurrent requests for the same list share one upstream call. The last good
// list of an upstream outlives its freshness: when the upstream cannot be asked, it is used instead and
// the answer carries `Warning: 299`. An upstream that does not know the repository adds no tags; when none
// knows it, the answer is NAME_UNKNOWN.
import type { Actor } from '../auth/policy.ts';
import type { Change } from '../db/change-feed.ts';
import type { Logger } from '../log.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import type { UpstreamClient, UpstreamFailure, UpstreamResult, TagList } from '../upstream/client.ts';
import { authorizeRepository } from './pull-access.ts';
import { STALE_WARNING } from './pull.ts';
import type { PullUpstream, RegistryService } from './registries.ts';
import { BoundedCache } from '../lib/bounded-cache.ts';
import { SingleFlight } from '../lib/single-flight.ts';

/** Said when an upstream that could not be asked has no list we could serve in its place. */
export const PARTIAL_WARNING = '299 - "some upstreams could not be asked; the tag list may be incomplete"';

export interface TagsRequest {
  actor: Actor;
  /** `<group>/<registry>/<image>`. */
  name: string;
  /** Page size; all tags after `last` when undefined. */
  n?: number;
  /** The last tag of the previous page (not included). */
  last?: string;
}

export interface TagsAnswer {
  tags: string[];
  /** The `last` of the next page when there are more tags than `n`. */
  nextLast: string | null;
  warning: string | null;
}

export interface TagsDeps {
  registries: Pick<RegistryService, 'findForPull'>;
  client: Pick<UpstreamClient, 'listTags'>;
  logger: Logger;
  /** How long an upstream's list is used without asking again; 0 asks every time (the last good list is still kept). */
  ttlMs: number;
  /** (upstream, image) lists kept at most. */
  maxEntries?: number;
  /** Upstream `Link` pages followed at most per list. */
  maxPages?: number;
  now?: () => number;
}

/** What one upstream said: its tags, or that it does not know the repository (null). */
interface Known {
  tags: string[] | null;
  fetchedAt: number;
}

type Outcome = { kind: 'known'; known: Known; stale: boolean } | { kind: 'failed'; failure: UpstreamFailure };

/** Lexical order (the spec's order for pagination): by code unit, which for tags ([A-Za-z0-9_.-]) is byte order. */
function lexical(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** How long the last good list of an upstream is kept to stand in while it fails. */
const LAST_GOOD_KEEP_MS = 7 * 24 * 60 * 60 * 1000;

export class TagService {
  readonly #deps: TagsDeps;
  readonly #lists: BoundedCache<Known>;
  readonly #flights = new SingleFlight<UpstreamResult<TagList>>();
  readonly #now: () => number;

  constructor(deps: TagsDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    // Fresh for ttlMs; the last good list stands in for a failing upstream for a week.
    this.#lists = new BoundedCache({ maxEntries: deps.maxEntries ?? 10_000, ttlMs: deps.ttlMs, keepMs: LAST_GOOD_KEEP_MS, now: this.#now });
  }

  /** An upstream's lists are dropped when it changes (its URL or credentials may list other tags now). */
  onChange(change: Change): void {
    if (change.kind === 'upstream') {
      const prefix = `${change.id}\n`;
      this.#lists.deleteWhere((_, key) => key.startsWith(prefix));
    } else if (change.kind === 'all') {
      this.#lists.clear();
    }
  }

  async list(request: TagsRequest): Promise<Result<TagsAnswer>> {
    const access = await authorizeRepository(this.#deps.registries, request.actor, request.name);
    if (!access.ok) return access;
    const { name, registry } = access.value;
    if (request.n !== undefined && (!Number.isSafeInteger(request.n) || request.n < 0)) return invalid({ n: ['must be a whole number, 0 or more'] }, 'invalid page size');
    if (registry.upstreams.length === 0) return err('no_upstreams', `registry ${name.groupPath}/${name.registryName} has no upstreams`);

    const outcomes = await Promise.all(registry.upstreams.map((upstream) => this.#upstreamTags(upstream, name.image)));
    const merged = new Set<string>();
    let anyKnown = false;
    let stale = false;
    let missing = false;
    const failures: UpstreamFailure[] = [];
    for (const outcome of outcomes) {
      if (outcome.kind === 'failed') {
        failures.push(outcome.failure);
        missing = true;
        continue;
      }
      if (outcome.stale) stale = true;
      if (outcome.known.tags === null) continue;
      anyKnown = true;
      for (const tag of outcome.known.tags) merged.add(tag);
    }
    if (failures.length === outcomes.length) {
      const rateLimited = failures.every((f) => f.kind === 'rate_limited');
      return err(rateLimited ? 'rate_limited' : 'upstream_unavailable', `no upstream could list the tags of ${name.image}, and none was listed before`);
    }
    if (!anyKnown && !missing) return err('not_found', `repository ${request.name} is not known to any upstream of this registry`);

    const sorted = [...merged].sort(lexical);
    const after = request.last === undefined ? sorted : sorted.filter((tag) => lexical(tag, request.last!) > 0);
    const page = request.n === undefined ? after : after.slice(0, request.n);
    const more = request.n !== undefined && request.n > 0 && after.length > page.length;
    return ok({
      tags: page,
      nextLast: more ? page[page.length - 1] : null,
      warning: missing ? PARTIAL_WARNING : stale ? STALE_WARNING : null,
    });
  }

  /** One upstream's list: fresh from memory, asked again, or (when it cannot be asked) the last good one. */
  async #upstreamTags(upstream: PullUpstream, image: string): Promise<Outcome> {
    const key = `${upstream.id}\n${image}`;
    const fresh = this.#lists.get(key);
    if (fresh) return { kind: 'known', known: fresh, stale: false };
    const kept = this.#lists.getStale(key);
    const got = await this.#flights.run(key, () => this.#deps.client.listTags(upstream, image, { maxPages: this.#deps.maxPages ?? 100 }));
    if (got.kind === 'found' || got.kind === 'not_found') {
      const known: Known = { tags: got.kind === 'found' ? got.value.tags : null, fetchedAt: this.#now() };
      this.#lists.set(key, known);
      return { kind: 'known', known, stale: false };
    }
    this.#deps.logger.warn({ upstream: upstream.id, image, failure: got, lastGoodAt: kept?.fetchedAt ?? null }, 'upstream tag list failed');
    return kept ? { kind: 'known', known: kept, stale: true } : { kind: 'failed', failure: got };
  }
}
