// The pull path (DESIGN §3): answer a manifest or blob request from the cache, or from the first
// upstream that has it while filling the cache. This is the entry point; the parts live in pull/:
// access.ts (names and the grammar of references; who may pull is pull-access.ts), plan.ts (the decision, a pure function), manifests.ts and
// blobs.ts (carrying the plan out), context.ts (what they share), negative-cache.ts (upstream 404s).
import type { Actor } from '../auth/policy.ts';
import type { Change } from '../db/change-feed.ts';
import { err } from '../result.ts';
import type { Err, Result } from '../result.ts';
import { BlobFills } from './blob-fills.ts';
import { unavailableAsResult } from './database.ts';
import { BoundedCache } from '../lib/bounded-cache.ts';
import type { CacheStats } from '../lib/bounded-cache.ts';
import { SingleFlight } from '../lib/single-flight.ts';
import { UpstreamHealth } from './upstream-health.ts';
import { referenceError } from './pull/access.ts';
import type { PullRegistry, RepositoryName } from './pull/access.ts';
import { authorizeRepository } from './pull-access.ts';
import { pullBlob } from './pull/blobs.ts';
import { PullRun } from './pull/context.ts';
import type { ManifestFilled, PullDeps, PullRequest, PullResponse, PullShared } from './pull/context.ts';
import { pullManifest } from './pull/manifests.ts';
import { NegativeCache } from './pull/negative-cache.ts';

export { parseRepositoryName } from './pull/access.ts';
export type { RepositoryName } from './pull/access.ts';
export type { PullDeps, PullRequest, PullResponse } from './pull/context.ts';
export { STALE_WARNING } from './pull/plan.ts';

const DEFAULT_REVALIDATE_TIMEOUT_MS = 2_000;
/**
 * A tag refreshed in the background is not refreshed again within this time: with max_age 0 (always
 * stale) and stale_while_revalidate, every request would otherwise send the upstream a HEAD.
 */
const MIN_REFRESH_INTERVAL_MS = 1_000;
/** How long a manifest stays in memory without being asked for (the byte bound evicts it sooner). */
const MANIFEST_MEMORY_MS = 60 * 60 * 1000;

/** The complete length a 416 answer names (`Content-Range: bytes *\/<length>`), when known. */
export function unsatisfiedLength(failure: Err): number | null {
  const cause = failure.cause as { completeLength?: unknown } | undefined;
  return typeof cause?.completeLength === 'number' ? cause.completeLength : null;
}

export class PullService {
  readonly blobFills: BlobFills;
  readonly health: UpstreamHealth;
  #deps: PullDeps;
  #shared: PullShared;
  #manifestFills = new SingleFlight<Result<ManifestFilled>>();
  #revalidations = new SingleFlight<unknown>();
  #background = new SingleFlight<void>();
  #refreshed: BoundedCache<true>;
  #now: () => number;

  constructor(deps: PullDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#refreshed = new BoundedCache({ maxEntries: 10_000, ttlMs: MIN_REFRESH_INTERVAL_MS, now: this.#now });
    this.blobFills = new BlobFills({ store: deps.store, metrics: deps.metrics, logger: deps.logger, graceMs: deps.fillGraceMs, cluster: deps.cluster });
    this.health = deps.health ?? new UpstreamHealth({ failureThreshold: 3, openMs: 10_000, maxOpenMs: 300_000, defaultRateLimitMs: 60_000, now: this.#now });
    const manifestBytes = deps.manifestMemory?.maxBytes ?? 16 * 1024 * 1024;
    this.#shared = {
      deps,
      health: this.health,
      negative: new NegativeCache(this.#now),
      manifests: new BoundedCache({
        maxEntries: deps.manifestMemory?.maxEntries ?? 10_000,
        maxBytes: Math.max(1, manifestBytes),
        sizeOf: (bytes, digest) => bytes.length + digest.length + 64,
        // Content by digest never changes: it stays until evicted; what may be served is the entries' decision.
        ttlMs: manifestBytes > 0 ? MANIFEST_MEMORY_MS : 0,
        now: this.#now,
      }),
      blobFills: this.blobFills,
      revalidateTimeoutMs: deps.revalidateTimeoutMs ?? DEFAULT_REVALIDATE_TIMEOUT_MS,
      now: this.#now,
      fillManifest: (key, work) => this.fillManifest(key, work),
      revalidate: <T>(key: string, work: () => Promise<T>) => this.#revalidations.run(key, work) as Promise<T>,
      background: (key, work) => this.#runInBackground(key, work),
    };
  }

  /** The hot manifests in memory (for /metrics). */
  get manifestMemory(): CacheStats {
    return this.#shared.manifests.stats;
  }

  /**
   * A changed or deleted upstream (here or on another replica, change feed) starts afresh: its URL or
   * credentials may well answer now, and what it said before (404s, failures) was about the old ones.
   */
  onChange(change: Change): void {
    if (change.kind === 'upstream') {
      this.#shared.negative.forgetUpstream(change.id);
      this.health.forget(change.id);
    } else if (change.kind === 'all') {
      this.#shared.negative.clear();
      this.health.forget();
    }
  }

  /** A database that is unavailable with nothing in memory to stand in is `unavailable` (services/database.ts). */
  async pull(request: PullRequest): Promise<Result<PullResponse>> {
    return unavailableAsResult(() => this.#pull(request));
  }

  async #pull(request: PullRequest): Promise<Result<PullResponse>> {
    const startedAt = Date.now();
    const access = await this.#access(request.actor, request.name);
    if (!access.ok) return access;
    return this.pullFrom(access.value.registry, access.value.name, request, startedAt);
  }

  /**
   * The pull for a registry already resolved and checked (the access step done by the caller, e.g. a
   * mirror route): validation, then the plan carried out.
   */
  async pullFrom(registry: PullRegistry, name: RepositoryName, request: PullRequest, startedAt = Date.now()): Promise<Result<PullResponse>> {
    const invalidReference = referenceError(request.kind, request.reference);
    if (invalidReference) return invalidReference;
    if (registry.upstreams.length === 0) return err('no_upstreams', `registry ${name.groupPath}/${name.registryName} has no upstreams`);
    const run = new PullRun(this.#shared, registry, name, request, this.#now(), startedAt);
    const result = await (request.kind === 'blob' ? pullBlob(run) : pullManifest(run));
    if (result.ok) this.#deps.traffic?.record(registry.registry.id, result.value);
    return result;
  }

  /** DESIGN §3.1 step 1 (pull-access.ts, shared with referrers and tags). */
  #access(actor: Actor, repository: string): Promise<Result<{ name: RepositoryName; registry: PullRegistry }>> {
    return authorizeRepository(this.#deps.registries, actor, repository);
  }

  /** One fetch per (upstream, path) at a time for manifests; they are small and shared in memory. */
  fillManifest(key: string, work: () => Promise<Result<ManifestFilled>>): Promise<Result<ManifestFilled>> {
    return this.#manifestFills.run(key, work);
  }

  /** Waits for fills and background refreshes in flight (shutdown). */
  async settle(): Promise<void> {
    await Promise.all([this.blobFills.settle(), this.#background.settle()]);
  }

  /** One background job per key at a time, and not again within a second; a failure is logged. */
  #runInBackground(key: string, work: () => Promise<void>): void {
    if (this.#background.has(key) || this.#refreshed.get(key)) return;
    void this.#background.run(key, () => work()
      .catch((error: unknown) => this.#deps.logger.error({ key, err: error }, 'background refresh failed'))
      .finally(() => this.#refreshed.set(key, true)));
  }
}
