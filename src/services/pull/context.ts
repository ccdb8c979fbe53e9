// One request's way through the pull path: what manifests.ts and blobs.ts share. Serving a stored
// object (ranges, Accept, counters), asking upstreams (the priority probe, timings, health and the
// negative cache learn from every answer) and turning failures into results whose message names the
// upstream and the cause, because that message is all `docker pull` shows.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import rangeParser from 'range-parser';
import type { Actor } from '../../auth/policy.ts';
import type { CacheEntry } from '../../db/schema.ts';
import type { Logger } from '../../log.ts';
import type { CacheResult, Metrics, ObjectKind } from '../../metrics.ts';
import type { BoundedCache } from '../../lib/bounded-cache.ts';
import { INDEX_TYPES, MEDIA_TYPES, acceptAllows } from '../../oci/media-types.ts';
import { parseDigest } from '../../oci/reference.ts';
import { err, invalid, ok } from '../../result.ts';
import type { Err, Result } from '../../result.ts';
import type { ByteRange, ObjectStore } from '../../storage/object-store.ts';
import type { ProbeResult, UpstreamClient, UpstreamFailure, UpstreamResult, UpstreamTarget } from '../../upstream/client.ts';
import type { BlobFills, FillCluster } from '../blob-fills.ts';
import type { CacheEntryService } from '../cache-entries.ts';
import type { DownloadCounter } from '../download-counter.ts';
import type { RegistryService } from '../registries.ts';
import type { RegistryTraffic } from '../registry-traffic.ts';
import { objectProblem } from '../storage-repairs.ts';
import type { RepairReason, StorageRepairs } from '../storage-repairs.ts';
import type { StorageQuota } from '../storage-quota.ts';
import type { UpstreamHealth } from '../upstream-health.ts';
import type { PullRegistry, PullUpstream, RepositoryName } from './access.ts';
import type { NegativeCache } from './negative-cache.ts';
import type { PlannedUpstream } from './plan.ts';

export interface PullRequest {
  actor: Actor;
  /** The repository name as the client wrote it: `<group>/<registry>/<image>`. */
  name: string;
  kind: ObjectKind;
  /** Tag or digest (manifests), digest (blobs). */
  reference: string;
  method: 'GET' | 'HEAD';
  /** The client's Range value (RFC 9110), blobs only. */
  range?: string;
  /** The client's Accept values, manifests only. */
  accept?: string | string[];
}

export interface PullResponse {
  digest: string;
  mediaType: string;
  /** Size of the whole object; null while filling from an upstream that sent no length. */
  size: number | null;
  /** The part served when the client asked for a satisfiable range. */
  range: ByteRange | null;
  /** Null for HEAD, and for a manifest served from memory (`bytes`). */
  body: Readable | null;
  /** A manifest's bytes from memory (GET): sent as they are, no stream. */
  bytes?: Buffer;
  /** Set when a stale entry is served because its upstream could not be asked. */
  warning: string | null;
  cache: CacheResult;
  /** A blob hit the client should fetch from this pre-signed URL instead (storage.s3.redirect); body is null then. */
  redirect?: string;
}

export interface PullDeps {
  registries: Pick<RegistryService, 'findForPull'>;
  entries: CacheEntryService;
  store: ObjectStore;
  client: UpstreamClient;
  counter: DownloadCounter;
  /** Hourly hits, misses and bytes per registry, for the console (optional in tests). */
  traffic?: Pick<RegistryTraffic, 'record'>;
  /** Where finds of missing or damaged objects are recorded (optional in tests). */
  repairs?: Pick<StorageRepairs, 'pullFound'>;
  /** The storage quotas: whether a blob may be stored, and what fills add (optional in tests). */
  quota?: Pick<StorageQuota, 'admits' | 'committed'>;
  metrics: Metrics;
  logger: Logger;
  fillGraceMs: number;
  /** Upstream health (circuit, rate limit); a fresh one per service when omitted. */
  health?: UpstreamHealth;
  /** The limit of one revalidation HEAD of a stale tag (configuration `upstream.revalidateTimeoutMs`). */
  revalidateTimeoutMs?: number;
  /** Bounds of the manifests kept in memory (configuration `cache.manifestMemoryBytes`/`Entries`); 0 bytes keeps none. */
  manifestMemory?: { maxBytes: number; maxEntries: number };
  /** Several replicas: fills are claimed through leases and followed from their owner (fill-leases.ts, peer-fills.ts). */
  cluster?: FillCluster;
  now?: () => number;
}

/** What the pull service lends each request: shared single flights, caches and state. */
export interface PullShared {
  deps: PullDeps;
  health: UpstreamHealth;
  negative: NegativeCache;
  /** Hot manifests by digest, verified against it; bounded in bytes and entries. */
  manifests: BoundedCache<Buffer>;
  blobFills: BlobFills;
  revalidateTimeoutMs: number;
  now(): number;
  /** One fetch per (upstream, path) at a time for manifests. */
  fillManifest(key: string, work: () => Promise<Result<ManifestFilled>>): Promise<Result<ManifestFilled>>;
  /** One revalidation per (upstream, tag) at a time, in the foreground or the background. */
  revalidate<T>(key: string, work: () => Promise<T>): Promise<T>;
  /** Runs work after the response, once per key at a time; shutdown waits for it. */
  background(key: string, work: () => Promise<void>): void;
}

export interface ManifestFilled {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  entryId: number;
  /** Another request's fill had just stored it: this one did not fetch. */
  reused?: boolean;
}

export const BLOB_CONTENT_TYPE = 'application/octet-stream';

/** One request: the registry it resolved to, the time it started, and the helpers both kinds use. */
export class PullRun {
  readonly shared: PullShared;
  readonly deps: PullDeps;
  readonly registry: PullRegistry;
  readonly name: RepositoryName;
  readonly request: PullRequest;
  readonly now: number;
  /** Wall-clock start (entries' updated_at is wall-clock too), before any lookup. */
  readonly startedAt: number;

  constructor(shared: PullShared, registry: PullRegistry, name: RepositoryName, request: PullRequest, now: number, startedAt: number) {
    this.shared = shared;
    this.deps = shared.deps;
    this.registry = registry;
    this.name = name;
    this.request = request;
    this.now = now;
    this.startedAt = startedAt;
  }

  get upstreamIds(): number[] {
    return this.registry.upstreams.map((u) => u.id);
  }

  get isGet(): boolean {
    return this.request.method === 'GET';
  }

  /** The registry's upstreams as the plan sees them for one path. */
  plannedUpstreams(path: string): PlannedUpstream[] {
    return this.registry.upstreams.map((u) => ({
      id: u.id,
      name: u.name,
      condition: this.shared.health.condition(u.id, this.now),
      knownMissing: this.shared.negative.isMissing(u.id, path),
    }));
  }

  /**
   * The upstreams a miss may ask, from the plan's `ask`: an upstream whose circuit's window is over lets
   * one request through (the probe); the others leave it out. null when none is left.
   */
  askable(ask: number[]): PullUpstream[] | null {
    const upstreams = ask.map((index) => this.registry.upstreams[index]).filter((u) => {
      if (this.shared.health.condition(u.id, this.now).circuit !== 'probe_due') return true;
      return this.shared.health.claimProbe(u.id);
    });
    return upstreams.length > 0 ? upstreams : null;
  }

  /** The answer when every upstream a miss could ask is being probed by another request. */
  probeBusy(ask: number[]): Err {
    const names = ask.map((index) => this.registry.upstreams[index]);
    return err('upstream_unavailable', `${names.map((u) => `upstream ${u.name}: ${this.shared.health.condition(u.id).lastFailure ?? 'failing'}; another request is asking it again now`).join('; ')}; no cached copy`);
  }

  /**
   * Serves an entry's stored object; null when the object is missing, of another size than the entry
   * (truncated) or cannot be opened: then it is a miss (self-repair). A read that fails after the first
   * byte breaks the response (the stream errors; the HTTP layer resets the connection).
   */
  async serveStored(entry: CacheEntry, mediaType: string, cache: CacheResult, warning: string | null = null): Promise<Result<PullResponse> | null> {
    const kind = this.request.kind;
    if (kind === 'manifest') {
      const refused = this.refuseUnaccepted(mediaType);
      if (refused) return this.count(refused);
      const bytes = await this.manifestBytes(entry);
      if (!bytes) return null;
      return this.serveManifestBytes(entry.id, entry.digest, mediaType, bytes, cache, warning);
    }
    const info = await this.deps.store.stat(entry.digest);
    const problem = objectProblem(info, Number(entry.size));
    if (problem || !info) return this.repair(entry, problem ?? 'missing', info?.size ?? null);
    if (kind === 'blob' && this.isGet) {
      // The bucket answers the client itself, ranges included (DESIGN §3.3).
      const redirect = await this.deps.store.redirectUrl(entry.digest);
      if (redirect) {
        this.deps.counter.record(entry.id, this.now);
        this.deps.metrics.cacheRequests.inc({ kind, result: cache });
        return ok({ digest: entry.digest, mediaType, size: info.size, range: null, body: null, warning, cache, redirect });
      }
    }
    let range: ByteRange | null = null;
    if (kind === 'blob') {
      const resolved = this.resolveRange(info.size);
      if (resolved && 'unsatisfiable' in resolved) return resolved.unsatisfiable;
      range = resolved;
    }
    let body: Readable | null = null;
    if (this.isGet) {
      try {
        body = await this.deps.store.read(entry.digest, range ?? undefined);
      } catch (error) {
        // Opening failed before any byte was sent (permissions, I/O error): refetch instead.
        this.deps.logger.warn({ digest: entry.digest, err: (error as Error).message }, 'cannot read a stored object');
        return this.repair(entry, 'unreadable', null);
      }
      if (!body) return this.repair(entry, 'missing', null);
      this.deps.counter.record(entry.id, this.now);
      countBytes(body, this.deps.metrics, 'cache', rangeLength(range, info.size));
    }
    this.deps.metrics.cacheRequests.inc({ kind, result: cache });
    return ok({ digest: entry.digest, mediaType, size: info.size, range, body, warning, cache });
  }

  /**
   * The entry's object is missing or damaged: the request becomes a miss whose fill rewrites the
   * object and the entry. A GET records the find (a HEAD's miss asks the upstream without filling),
   * unless the object was destroyed on purpose after the entry was read (an eviction racing this hit):
   * that is told before the fill rewrites the entry.
   */
  async repair(entry: CacheEntry, reason: RepairReason, foundSize: number | null): Promise<null> {
    if (this.isGet) {
      await this.deps.repairs?.pullFound({ digest: entry.digest, upstreamId: entry.upstream_id, relativePath: entry.relative_path, reason, expectedSize: Number(entry.size), foundSize }, entry.id);
    }
    return null;
  }

  /** A manifest answered from its bytes in memory: counted as a download (GET) and as bytes from the cache. */
  serveManifestBytes(entryId: number, digest: string, mediaType: string, bytes: Buffer, cache: CacheResult, warning: string | null): Result<PullResponse> {
    if (this.isGet) {
      this.deps.counter.record(entryId, this.now);
      this.deps.metrics.bytesServed.inc({ source: cache === 'miss' ? 'upstream' : 'cache' }, bytes.length);
    }
    this.deps.metrics.cacheRequests.inc({ kind: 'manifest', result: cache });
    return ok({ digest, mediaType, size: bytes.length, range: null, body: null, bytes: this.isGet ? bytes : undefined, warning, cache });
  }

  /**
   * A stored manifest's bytes: from memory, or read from the store once, checked against the entry's size
   * and digest (memory never holds bytes that are not the manifest) and kept. Null when the object is
   * missing or damaged: then it is a miss (self-repair, as for any object), and the fill stores it again.
   */
  async manifestBytes(entry: CacheEntry): Promise<Buffer | null> {
    const known = this.shared.manifests.get(entry.digest);
    if (known) return known;
    const parsed = parseDigest(entry.digest);
    if (!parsed) return null;
    let bytes: Buffer;
    try {
      const stream = await this.deps.store.read(entry.digest);
      if (!stream) return this.repair(entry, 'missing', null);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      bytes = Buffer.concat(chunks);
    } catch (error) {
      this.deps.logger.warn({ digest: entry.digest, err: (error as Error).message }, 'cannot read a stored manifest');
      return this.repair(entry, 'unreadable', null);
    }
    if (bytes.length !== Number(entry.size)) return this.repair(entry, 'size_mismatch', bytes.length);
    if (createHash(parsed.algorithm).update(bytes).digest('hex') !== parsed.hex) {
      this.deps.logger.error({ digest: entry.digest }, 'a stored manifest does not match its digest; fetching it again');
      return this.repair(entry, 'unreadable', bytes.length);
    }
    this.shared.manifests.set(entry.digest, bytes);
    return bytes;
  }

  refuseUnaccepted(mediaType: string): Err | null {
    if (acceptAllows(this.request.accept, mediaType)) return null;
    // A client that accepts only single-platform manifests asked for an index, or the reverse.
    const what = INDEX_TYPES.has(mediaType) ? 'an image index' : 'a manifest';
    return err('not_found_on_upstreams', `the manifest is ${what} of type ${mediaType}, which the client's Accept header does not allow`);
  }

  /** null: no usable Range (serve everything); a range; or the 416 answer. */
  resolveRange(size: number | null): ByteRange | null | { unsatisfiable: Err } {
    const header = this.request.range;
    if (!header || size === null) return null;
    const ranges = rangeParser(size, header, { combine: true });
    if (ranges === -1) {
      const refused = invalid({ range: [`not satisfiable for ${size} bytes`] }, 'range not satisfiable');
      return { unsatisfiable: { ...refused, cause: { completeLength: size } } };
    }
    if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return null;
    return { start: ranges[0].start, end: ranges[0].end };
  }

  /**
   * Which upstream to fetch from (DESIGN §3.1 rule 6): the only one that may be asked (no probe: its
   * GET says as much as a HEAD), or the winner of a HEAD probe among `candidates` (the plan's `ask`).
   */
  async winner<T>(candidates: PullUpstream[], path: string, operation: string, attempt: (t: UpstreamTarget, signal: AbortSignal) => Promise<UpstreamResult<T>>): Promise<Result<PullUpstream>> {
    if (candidates.length === 1) return ok(candidates[0]);
    const probed = await this.probe(candidates, path, operation, attempt);
    return probed.ok ? ok(probed.value.target as PullUpstream) : probed;
  }

  async probe<T>(candidates: PullUpstream[], path: string, operation: string, attempt: (t: UpstreamTarget, signal: AbortSignal) => Promise<UpstreamResult<T>>): Promise<Result<{ target: UpstreamTarget; value: T }>> {
    const result: ProbeResult<T> = await this.deps.client.probe(candidates, (t, signal) => this.timed(t, operation, () => attempt(t, signal), { path, inProbe: true }));
    // Failures are learnt from the probe's verdict: an attempt it cut short (another upstream won) is none.
    for (const failure of result.failures) this.learn(failure.upstreamId, failure.failure);
    if (result.kind === 'found') return ok({ target: result.target, value: result.value });
    const what = this.request.kind === 'blob' ? 'blob' : 'manifest';
    const skipped = this.registry.upstreams.filter((u) => !candidates.includes(u));
    const causes = [
      ...result.failures.map((f) => `upstream ${this.upstreamName(f.upstreamId)}: ${describeFailure(f.failure)}`),
      ...skipped.map((u) => `upstream ${u.name}: ${this.shared.negative.isMissing(u.id, path) ? 'not found' : `not asked (${this.shared.health.condition(u.id).lastFailure ?? 'failing'})`}`),
    ].join('; ');
    if (result.kind === 'not_found') return err('not_found_on_upstreams', `${what} ${this.request.reference} of ${this.name.image} was not found on any upstream`);
    return result.rateLimited
      ? err('rate_limited', `${causes}; no cached copy`, { retryAfterSeconds: soonestRetry(result.failures.map((f) => f.failure)) })
      : err('upstream_unavailable', `${causes}; no cached copy`);
  }

  /**
   * One upstream request, timed and learnt from: health hears every answer, the negative cache every
   * 404 of `path`. Inside a probe failures are left to the probe's verdict (see probe above).
   */
  async timed<T>(target: UpstreamTarget, operation: string, call: () => Promise<UpstreamResult<T>>, options: { path?: string; inProbe?: boolean } = {}): Promise<UpstreamResult<T>> {
    const stop = this.deps.metrics.upstreamRequests.startTimer({ upstream: String(target.id), operation });
    const result = await call();
    stop({ outcome: result.kind });
    if (result.kind === 'unavailable' || result.kind === 'rate_limited' || result.kind === 'unauthorized') {
      this.deps.metrics.upstreamErrors.inc({ upstream: String(target.id), kind: result.kind });
      this.deps.logger.warn({ upstream: target.id, operation, failure: describeFailure(result) }, 'upstream request failed');
    }
    if (result.kind === 'not_found' && options.path !== undefined) {
      const upstream = this.registry.upstreams.find((u) => u.id === target.id);
      if (upstream) this.shared.negative.remember(target.id, options.path, upstream.freshness.negative_cache * 1000);
    }
    if (result.kind !== 'unavailable' || !options.inProbe) this.learn(target.id, result);
    const reading = this.deps.client.rateLimits().get(target.id);
    if (reading && reading.at >= this.startedAt) this.shared.health.recordRemaining(target.id, reading.remaining, reading.resetSeconds);
    return result;
  }

  /** Tells the upstream's health what one answer came to. */
  learn(upstreamId: number, result: UpstreamResult<unknown>): void {
    if (result.kind === 'unavailable') {
      // Not the upstream's doing: the probe no longer needed it, or the fill was given up.
      if (result.cause === 'not needed' || result.cause.endsWith('request aborted')) return;
      this.shared.health.record(upstreamId, { kind: 'failed', cause: result.cause, timedOut: result.timedOut === true });
    } else if (result.kind === 'rate_limited') {
      this.shared.health.record(upstreamId, { kind: 'rate_limited', retryAfterSeconds: result.retryAfterSeconds });
    } else {
      this.shared.health.record(upstreamId, { kind: 'answered' });
    }
  }

  upstreamName(id: number): string {
    return this.registry.upstreams.find((u) => u.id === id)?.name ?? String(id);
  }

  /** A failure of one upstream as a result naming it. */
  failureResult(upstream: PullUpstream, failure: UpstreamFailure, cached = false): Err {
    const what = this.request.kind;
    const copy = cached ? '' : '; no cached copy';
    switch (failure.kind) {
      case 'not_found':
        return err('not_found_on_upstreams', `${what} not found on upstream ${upstream.name}`);
      case 'rate_limited':
        return err('rate_limited', `upstream ${upstream.name}: ${describeFailure(failure)}${copy}`, { retryAfterSeconds: soonestRetry([failure]) });
      default:
        return err('upstream_unavailable', `upstream ${upstream.name}: ${describeFailure(failure)}${copy}`);
    }
  }

  count<T>(result: Result<T>): Result<T> {
    if (!result.ok) this.deps.metrics.cacheRequests.inc({ kind: this.request.kind, result: 'miss' });
    return result;
  }
}

export function describeFailure(failure: UpstreamFailure): string {
  switch (failure.kind) {
    case 'not_found':
      return `not found (${failure.status})`;
    case 'unauthorized':
      return `credentials refused (${failure.status}): ${failure.message}`;
    case 'rate_limited':
      return `rate limited${failure.retryAfterSeconds !== null ? `, retry after ${failure.retryAfterSeconds} s` : ''}`;
    case 'unavailable':
      return failure.status ? `${failure.cause} (${failure.status})` : failure.cause;
  }
}

export function schema1Refused(): Err {
  return err('not_found_on_upstreams', `the upstream has only a Docker schema 1 manifest, which is not supported; push the image as ${MEDIA_TYPES.dockerManifest} or OCI`);
}

export function countBytes(body: Readable, metrics: Metrics, source: 'cache' | 'upstream', length: number | null): void {
  // No 'data' listener: it would switch the body to flowing before the HTTP layer pipes it. The store's
  // and the fills' streams count what they passed on; any other body counts as its length once ended.
  body.once('close', () => {
    const passed = (body as Readable & { bytesPassed?: unknown }).bytesPassed;
    const bytes = typeof passed === 'number' ? passed : body.readableEnded ? (length ?? 0) : 0;
    if (bytes > 0) metrics.bytesServed.inc({ source }, bytes);
  });
}

/** Bytes a response of this range (or the whole object) carries; null when the size is unknown. */
export function rangeLength(range: ByteRange | null, size: number | null): number | null {
  if (size === null) return null;
  return range ? Math.min(range.end, size - 1) - range.start + 1 : size;
}

/** When a client may try again after upstreams answered 429: the soonest Retry-After they named. */
function soonestRetry(failures: UpstreamFailure[]): number | undefined {
  const named = failures.flatMap((f) => (f.kind === 'rate_limited' && f.retryAfterSeconds !== null ? [f.retryAfterSeconds] : []));
  return named.length > 0 ? Math.max(1, Math.min(...named)) : undefined;
}
