// The pull path (DESIGN §3): answer a manifest or blob request from the cache, or from the first
// upstream that has it while filling the cache.
import { Readable } from 'node:stream';
import rangeParser from 'range-parser';
import { can, canSee } from '../auth/policy.ts';
import type { Actor } from '../auth/policy.ts';
import type { Logger } from '../log.ts';
import type { CacheResult, Metrics, ObjectKind } from '../metrics.ts';
import { INDEX_TYPES, MEDIA_TYPES, SCHEMA1_TYPES, acceptAllows, baseMediaType } from '../oci/media-types.ts';
import { blobPath, isValidName, manifestPath, parseDigest, parseReference } from '../oci/reference.ts';
import { err, invalid, ok } from '../result.ts';
import type { Err, Result } from '../result.ts';
import type { ByteRange, ObjectStore } from '../storage/object-store.ts';
import type { UpstreamClient, UpstreamFailure, UpstreamResult, UpstreamTarget, ProbeResult } from '../upstream/client.ts';
import { SYSTEM } from '../auth/policy.ts';
import type { CacheEntry } from '../db/schema.ts';
import type { CacheEntryService } from './cache-entries.ts';
import type { DownloadCounter } from './download-counter.ts';
import type { RegistryService } from './registries.ts';
import { BlobFills } from './blob-fills.ts';
import type { JoinedFill } from './blob-fills.ts';
import { SingleFlight } from './single-flight.ts';

export const STALE_WARNING = '299 - "served from cache; upstream unavailable"';
const BLOB_CONTENT_TYPE = 'application/octet-stream';
const HOUR_MS = 3_600_000;

export interface RepositoryName {
  groupPath: string;
  registryName: string;
  /** The image as upstreams know it, e.g. `library/alpine`. */
  image: string;
}

/** `<group>/<registry>/<image>`: three components at least. */
export function parseRepositoryName(name: string): RepositoryName | null {
  if (!isValidName(name)) return null;
  const [groupPath, registryName, ...image] = name.split('/');
  if (image.length === 0) return null;
  return { groupPath, registryName, image: image.join('/') };
}

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
  /** Null for HEAD. */
  body: Readable | null;
  /** Set when a stale entry is served because its upstream could not be asked. */
  warning: string | null;
  cache: CacheResult;
  /** A blob hit the client should fetch from this pre-signed URL instead (storage.s3.redirect); body is null then. */
  redirect?: string;
}

type Registry = NonNullable<Awaited<ReturnType<RegistryService['findForPull']>>>;
type Upstream = Registry['upstreams'][number];

interface ManifestFilled {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  entryId: number;
  /** Another request's fill had just stored it: this one did not fetch. */
  reused?: boolean;
}

/** The complete length a 416 answer names (`Content-Range: bytes *\/<length>`), when known. */
export function unsatisfiedLength(failure: Err): number | null {
  const cause = failure.cause as { completeLength?: unknown } | undefined;
  return typeof cause?.completeLength === 'number' ? cause.completeLength : null;
}

/** A registry token (JWT) must list the pull of this repository; other credentials carry no such list. */
function tokenGrantsPull(actor: Actor, repository: string): boolean {
  if (!('registryAccess' in actor) || actor.registryAccess === undefined) return true;
  return actor.registryAccess.some((entry) => entry.type === 'repository' && entry.name === repository && entry.actions.includes('pull'));
}

export interface PullDeps {
  registries: Pick<RegistryService, 'findForPull'>;
  entries: CacheEntryService;
  store: ObjectStore;
  client: UpstreamClient;
  counter: DownloadCounter;
  metrics: Metrics;
  logger: Logger;
  fillGraceMs: number;
  now?: () => number;
}

export class PullService {
  readonly blobFills: BlobFills;
  #deps: PullDeps;
  #manifestFills = new SingleFlight<Result<ManifestFilled>>();
  #now: () => number;

  constructor(deps: PullDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.blobFills = new BlobFills({ store: deps.store, metrics: deps.metrics, logger: deps.logger, graceMs: deps.fillGraceMs });
  }

  async pull(request: PullRequest): Promise<Result<PullResponse>> {
    const startedAt = Date.now();
    const access = await this.#access(request.actor, request.name);
    if (!access.ok) return access;
    const { name, registry } = access.value;
    if (request.kind === 'blob') {
      const digest = parseDigest(request.reference);
      if (!digest) return invalid({ digest: ['must be sha256:<64 hex> or sha512:<128 hex>'] }, 'invalid digest');
    } else if (!parseReference(request.reference)) {
      return request.reference.includes(':')
        ? invalid({ digest: ['must be sha256:<64 hex> or sha512:<128 hex>'] }, 'invalid digest')
        : invalid({ reference: ['a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -'] }, 'invalid tag');
    }
    if (registry.upstreams.length === 0) return err('no_upstreams', `registry ${name.groupPath}/${name.registryName} has no upstreams`);

    const pull = new Pull(this, this.#deps, registry, name, request, this.#now(), startedAt);
    return request.kind === 'blob' ? pull.blob() : pull.manifest();
  }

  /**
   * DESIGN §3.1 step 1: who may pull from this repository. Those who may not know the group get
   * not_found, as if it did not exist; those who may see it but not pull (a token without the
   * read_virtual_registry scope) get forbidden; a registry token for other repositories is
   * unauthorized (the client should ask for a token with this scope).
   */
  async #access(actor: Actor, repository: string): Promise<Result<{ name: RepositoryName; registry: Registry }>> {
    if (actor.kind === 'anonymous' && !actor.anonymousPull) return err('unauthorized', 'authentication required');
    const name = parseRepositoryName(repository);
    if (!name) return invalid({ name: ['must be <group>/<registry>/<image> with lower-case components'] }, 'invalid repository name');
    const registry = await this.#deps.registries.findForPull(name.groupPath, name.registryName);
    const subject = registry ? { groupId: registry.group.id } : null;
    if (!registry || !subject || !can(actor, 'read_virtual_registry', subject)) {
      if (subject && canSee(actor, subject)) return err('forbidden', `these credentials may not pull from ${name.groupPath}/${name.registryName}: a token needs the read_virtual_registry scope`);
      return err('not_found', `repository ${repository} is not known to this registry`);
    }
    if (!tokenGrantsPull(actor, repository)) return err('unauthorized', `the registry token does not grant pull on ${repository}`);
    return ok({ name, registry });
  }

  /** One fetch per (upstream, path) at a time for manifests; they are small and shared in memory. */
  fillManifest(key: string, work: () => Promise<Result<ManifestFilled>>): Promise<Result<ManifestFilled>> {
    return this.#manifestFills.run(key, work);
  }

  /** Waits for fills in flight (shutdown). */
  settle(): Promise<void> {
    return this.blobFills.settle();
  }
}

/** One request's way through the decision of DESIGN §3.1. */
class Pull {
  #service: PullService;
  #deps: PullDeps;
  #registry: Registry;
  #name: RepositoryName;
  #request: PullRequest;
  #now: number;
  /** Wall-clock start (entries' updated_at is wall-clock too), before any lookup. */
  #startedAt: number;

  constructor(service: PullService, deps: PullDeps, registry: Registry, name: RepositoryName, request: PullRequest, now: number, startedAt: number) {
    this.#service = service;
    this.#deps = deps;
    this.#registry = registry;
    this.#name = name;
    this.#request = request;
    this.#now = now;
    this.#startedAt = startedAt;
  }

  get #upstreamIds(): number[] {
    return this.#registry.upstreams.map((u) => u.id);
  }

  get #isGet(): boolean {
    return this.#request.method === 'GET';
  }

  // ---- blobs ----------------------------------------------------------------------------------

  async blob(): Promise<Result<PullResponse>> {
    const digest = this.#request.reference;
    const entry = await this.#deps.entries.findLiveByDigest(this.#upstreamIds, digest);
    if (entry) {
      const served = await this.#serveStored(entry, BLOB_CONTENT_TYPE, 'hit');
      if (served) return served;
    }
    const path = blobPath(this.#name.image, digest);
    if (!this.#isGet) {
      const head = await this.#probe('head_blob', (t, signal) => this.#deps.client.headBlob(t, this.#name.image, digest, signal));
      if (!head.ok) return this.#count(head);
      return this.#count(ok({ digest, mediaType: BLOB_CONTENT_TYPE, size: head.value.value.size, range: null, body: null, warning: null, cache: 'upstream_head' }));
    }
    const winner = await this.#winner('head_blob', (t, signal) => this.#deps.client.headBlob(t, this.#name.image, digest, signal));
    if (!winner.ok) return this.#count(winner);
    const upstream = winner.value;
    const fill = await this.#joinBlobFill(upstream, path, digest);
    if (!fill.ok) return this.#count(fill);
    const range = this.#resolveRange(fill.value.size);
    if (range && 'unsatisfiable' in range) return range.unsatisfiable;
    const body = await fill.value.attach(range ?? undefined);
    if (!body.ok) return this.#count(body);
    const cache: CacheResult = fill.value.stored ? 'hit' : 'miss';
    this.#deps.metrics.cacheRequests.inc({ kind: 'blob', result: cache });
    countBytes(body.value, this.#deps.metrics, fill.value.stored ? 'cache' : 'upstream', rangeLength(range, fill.value.size));
    return ok({ digest, mediaType: BLOB_CONTENT_TYPE, size: fill.value.size, range, body: body.value, warning: null, cache });
  }

  /** Joins the fill of this blob from this upstream, or starts it. */
  #joinBlobFill(upstream: Upstream, path: string, digest: string): Promise<Result<JoinedFill>> {
    const image = this.#name.image;
    return this.#service.blobFills.join({
      key: `${upstream.id}:${path}`,
      digest,
      stored: async () => {
        // A fill of this key that committed after this request looked at the cache has left its entry.
        const entry = await this.#deps.entries.findLive(upstream.id, path);
        const info = entry ? await this.#deps.store.stat(digest) : null;
        if (entry && info) this.#deps.counter.record(entry.id, this.#now);
        return info;
      },
      open: async (signal) => {
        const got = await this.#timed(upstream, 'get_blob', () => this.#deps.client.getBlob(upstream, image, digest, { signal }));
        if (got.kind !== 'found') return failureResult(got, 'blob');
        return ok({ body: got.value.body, size: got.value.size });
      },
      onCommit: async (info) => {
        const entry = await this.#deps.entries.createOrUpdate(SYSTEM, { upstreamId: upstream.id, relativePath: path, digest, size: info.size, contentType: BLOB_CONTENT_TYPE, upstreamEtag: null, checkedAt: Date.now() });
        // The object is stored either way; without its entry the next pull fills again.
        if (entry.ok) this.#deps.counter.record(entry.value.id);
        else this.#deps.logger.error({ digest, reason: entry.message }, 'blob stored but its cache entry was not recorded');
      },
    });
  }

  // ---- manifests ------------------------------------------------------------------------------

  async manifest(): Promise<Result<PullResponse>> {
    const reference = parseReference(this.#request.reference)!;
    if (reference.kind === 'digest') {
      const entry = await this.#deps.entries.findLiveByDigest(this.#upstreamIds, reference.digest.value);
      if (entry) {
        const served = await this.#serveStored(entry, entry.content_type, 'hit');
        if (served) return served;
      }
      return this.#manifestMiss();
    }

    const path = manifestPath(this.#name.image, reference.tag);
    const entries = await this.#deps.entries.findLiveForPath(this.#registry.registry.id, path);
    const entry = entries[0];
    if (!entry) return this.#manifestMiss();
    const upstream = this.#registry.upstreams.find((u) => u.id === entry.upstream_id);
    if (!upstream) return this.#manifestMiss();

    const fresh = entry.cache_validity_hours === 0 || entry.upstream_checked_at + entry.cache_validity_hours * HOUR_MS > this.#now;
    if (fresh) return (await this.#serveStored(entry, entry.content_type, 'hit')) ?? this.#manifestMiss();

    // Stale: ask its upstream with HEAD (which Docker Hub does not count as a pull).
    const head = await this.#timed(upstream, 'head_manifest', () => this.#deps.client.headManifest(upstream, this.#name.image, reference.tag));
    if (head.kind === 'found' && head.value.digest === entry.digest) {
      await this.#deps.entries.touchChecked(entry.id, this.#now);
      return (await this.#serveStored(entry, entry.content_type, 'revalidated')) ?? this.#manifestMiss();
    }
    if (head.kind === 'found' && head.value.digest && !this.#isGet) {
      // The tag moved: a HEAD answers with the new digest without filling (DESIGN §3.3).
      if (SCHEMA1_TYPES.has(baseMediaType(head.value.mediaType))) return this.#count(schema1Refused());
      return this.#count(ok({ digest: head.value.digest, mediaType: baseMediaType(head.value.mediaType), size: head.value.size, range: null, body: null, warning: null, cache: 'upstream_head' }));
    }
    if (head.kind === 'found') {
      // The tag moved (or the upstream sent no digest): fetch it again from the same upstream.
      const filled = await this.#fillManifest(upstream, reference.tag);
      if (filled.ok) return this.#serveFilled(filled.value, 'miss');
      if (filled.reason !== 'upstream_unavailable' && filled.reason !== 'rate_limited') return this.#count(filled);
      return (await this.#serveStored(entry, entry.content_type, 'stale', STALE_WARNING)) ?? this.#count(filled);
    }
    if (head.kind === 'not_found') return this.#manifestMiss();
    // Unreachable, 5xx, 429 or refused credentials: serve what we have, and say so.
    return (await this.#serveStored(entry, entry.content_type, 'stale', STALE_WARNING)) ?? this.#count(failureResult(head, 'manifest'));
  }

  async #manifestMiss(): Promise<Result<PullResponse>> {
    const reference = this.#request.reference;
    const headManifest = (t: UpstreamTarget, signal: AbortSignal) => this.#deps.client.headManifest(t, this.#name.image, reference, signal);
    if (!this.#isGet) {
      const head = await this.#probe('head_manifest', headManifest);
      if (!head.ok) return this.#count(head);
      const found = head.value.value;
      if (found.digest) {
        if (SCHEMA1_TYPES.has(baseMediaType(found.mediaType))) return this.#count(schema1Refused());
        return this.#count(ok({ digest: found.digest, mediaType: baseMediaType(found.mediaType), size: found.size, range: null, body: null, warning: null, cache: 'upstream_head' }));
      }
      // An upstream that sends no digest on HEAD: fetch the manifest to know it.
      const filled = await this.#fillManifest(head.value.target as Upstream, reference);
      return filled.ok ? this.#serveFilled(filled.value, 'miss') : this.#count(filled);
    }
    const winner = await this.#winner('head_manifest', headManifest);
    if (!winner.ok) return this.#count(winner);
    const filled = await this.#fillManifest(winner.value, reference);
    return filled.ok ? this.#serveFilled(filled.value, 'miss') : this.#count(filled);
  }

  /** GET from one upstream, verify, store the object and record the entries (tag and digest). */
  #fillManifest(upstream: Upstream, reference: string): Promise<Result<ManifestFilled>> {
    const image = this.#name.image;
    const path = manifestPath(image, reference);
    const key = `${upstream.id}:${path}`;
    return this.#service.fillManifest(key, async () => {
      const reused = await this.#storedSinceStart(upstream, path, reference);
      if (reused) return ok(reused);
      const got = await this.#timed(upstream, 'get_manifest', () => this.#deps.client.getManifest(upstream, image, reference));
      if (got.kind !== 'found') return failureResult(got, 'manifest');
      const manifest = got.value;
      const mediaType = baseMediaType(manifest.mediaType);
      const expected = reference.includes(':') ? reference : manifest.headerDigest;
      if (expected && expected !== manifest.computedDigest) {
        this.#deps.metrics.fills.inc({ kind: 'manifest', outcome: 'verification_failed' });
        return err('upstream_unavailable', `upstream manifest does not match its digest ${expected}; not stored`);
      }
      if (SCHEMA1_TYPES.has(mediaType)) return schema1Refused();
      const digest = manifest.computedDigest;
      const writer = await this.#deps.store.createWriter(digest);
      try {
        await writer.write(manifest.bytes);
      } catch (error) {
        await writer.abort(error as Error);
        return err('persistence_error', 'cannot write the manifest to storage', { cause: error });
      }
      const committed = await writer.commit(manifest.bytes.length);
      if (!committed.ok) return committed;
      const values = { upstreamId: upstream.id, digest, size: manifest.bytes.length, contentType: mediaType, upstreamEtag: manifest.etag, checkedAt: this.#now };
      const byReference = await this.#deps.entries.createOrUpdate(SYSTEM, { ...values, relativePath: manifestPath(image, reference) });
      if (!byReference.ok) return byReference;
      if (!reference.includes(':')) {
        // The client's next request is the same manifest by digest: make it a hit.
        const byDigest = await this.#deps.entries.createOrUpdate(SYSTEM, { ...values, relativePath: manifestPath(image, digest) });
        if (!byDigest.ok) return byDigest;
      }
      this.#deps.metrics.fills.inc({ kind: 'manifest', outcome: 'committed' });
      return ok({ bytes: manifest.bytes, digest, mediaType, entryId: byReference.value.id });
    });
  }

  /**
   * The entry another request's fill recorded after this request looked at the cache (its lookup
   * missed it, but the single flight had already finished): served instead of fetching again. A tag's
   * entry counts only when written since this request started (an older one is what made it refetch).
   */
  async #storedSinceStart(upstream: Upstream, path: string, reference: string): Promise<ManifestFilled | null> {
    const entry = await this.#deps.entries.findLive(upstream.id, path);
    if (!entry || (!reference.includes(':') && entry.updated_at < this.#startedAt)) return null;
    const stream = await this.#deps.store.read(entry.digest);
    if (!stream) return null;
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks), digest: entry.digest, mediaType: entry.content_type, entryId: entry.id, reused: true };
  }

  #serveFilled(filled: ManifestFilled, cache: CacheResult): Result<PullResponse> {
    if (filled.reused) cache = 'hit';
    const refused = this.#refuseUnaccepted(filled.mediaType);
    if (refused) return this.#count(refused);
    if (this.#isGet) {
      this.#deps.counter.record(filled.entryId, this.#now);
      this.#deps.metrics.bytesServed.inc({ source: filled.reused ? 'cache' : 'upstream' }, filled.bytes.length);
    }
    this.#deps.metrics.cacheRequests.inc({ kind: 'manifest', result: cache });
    return ok({ digest: filled.digest, mediaType: filled.mediaType, size: filled.bytes.length, range: null, body: this.#isGet ? Readable.from([filled.bytes]) : null, warning: null, cache });
  }

  // ---- shared ---------------------------------------------------------------------------------

  /** Serves an entry's stored object; null when the object has gone missing (then it is a miss). */
  async #serveStored(entry: CacheEntry, mediaType: string, cache: CacheResult, warning: string | null = null): Promise<Result<PullResponse> | null> {
    const kind = this.#request.kind;
    if (kind === 'manifest') {
      const refused = this.#refuseUnaccepted(mediaType);
      if (refused) return this.#count(refused);
    }
    const info = await this.#deps.store.stat(entry.digest);
    if (!info) return null;
    if (kind === 'blob' && this.#isGet) {
      // The bucket answers the client itself, ranges included (DESIGN §3.3).
      const redirect = await this.#deps.store.redirectUrl(entry.digest);
      if (redirect) {
        this.#deps.counter.record(entry.id, this.#now);
        this.#deps.metrics.cacheRequests.inc({ kind, result: cache });
        return ok({ digest: entry.digest, mediaType, size: info.size, range: null, body: null, warning, cache, redirect });
      }
    }
    let range: ByteRange | null = null;
    if (kind === 'blob') {
      const resolved = this.#resolveRange(info.size);
      if (resolved && 'unsatisfiable' in resolved) return resolved.unsatisfiable;
      range = resolved;
    }
    let body: Readable | null = null;
    if (this.#isGet) {
      body = await this.#deps.store.read(entry.digest, range ?? undefined);
      if (!body) return null;
      this.#deps.counter.record(entry.id, this.#now);
      countBytes(body, this.#deps.metrics, 'cache', rangeLength(range, info.size));
    }
    this.#deps.metrics.cacheRequests.inc({ kind, result: cache });
    return ok({ digest: entry.digest, mediaType, size: info.size, range, body, warning, cache });
  }

  #refuseUnaccepted(mediaType: string): Err | null {
    if (acceptAllows(this.#request.accept, mediaType)) return null;
    // A client that accepts only single-platform manifests asked for an index, or the reverse.
    const what = INDEX_TYPES.has(mediaType) ? 'an image index' : 'a manifest';
    return err('not_found_on_upstreams', `the manifest is ${what} of type ${mediaType}, which the client's Accept header does not allow`);
  }

  /** null: no usable Range (serve everything); a range; or the 416 answer. */
  #resolveRange(size: number | null): ByteRange | null | { unsatisfiable: Err } {
    const header = this.#request.range;
    if (!header || size === null) return null;
    const ranges = rangeParser(size, header, { combine: true });
    if (ranges === -1) {
      const refused = invalid({ range: [`not satisfiable for ${size} bytes`] }, 'range not satisfiable');
      return { unsatisfiable: { ...refused, cause: { completeLength: size } } };
    }
    if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return null;
    return { start: ranges[0].start, end: ranges[0].end };
  }

  /** Which upstream to fetch from: the only one, or the winner of a HEAD probe (DESIGN §3.1 rule 6). */
  async #winner<T>(operation: string, attempt: (t: UpstreamTarget, signal: AbortSignal) => Promise<UpstreamResult<T>>): Promise<Result<Upstream>> {
    const upstreams = this.#registry.upstreams;
    if (upstreams.length === 1) return ok(upstreams[0]);
    const probed = await this.#probe(operation, attempt);
    return probed.ok ? ok(probed.value.target as Upstream) : probed;
  }

  async #probe<T>(operation: string, attempt: (t: UpstreamTarget, signal: AbortSignal) => Promise<UpstreamResult<T>>): Promise<Result<{ target: UpstreamTarget; value: T }>> {
    const upstreams = this.#registry.upstreams;
    const result: ProbeResult<T> = await this.#deps.client.probe(upstreams, (t, signal) => this.#timed(t, operation, () => attempt(t, signal)));
    if (result.kind === 'found') return ok({ target: result.target, value: result.value });
    const what = this.#request.kind === 'blob' ? 'blob' : 'manifest';
    if (result.kind === 'not_found') return err('not_found_on_upstreams', `${what} ${this.#request.reference} of ${this.#name.image} was not found on any upstream`);
    const causes = result.failures.map((f) => describeFailure(f.failure)).join('; ');
    return result.rateLimited
      ? err('rate_limited', `upstreams are rate limiting: ${causes}`)
      : err('upstream_unavailable', `no upstream could be reached: ${causes}`);
  }

  async #timed<T>(target: UpstreamTarget, operation: string, call: () => Promise<UpstreamResult<T>>): Promise<UpstreamResult<T>> {
    const stop = this.#deps.metrics.upstreamRequests.startTimer({ upstream: String(target.id), operation });
    const result = await call();
    stop({ outcome: result.kind });
    if (result.kind === 'unavailable' || result.kind === 'rate_limited' || result.kind === 'unauthorized') {
      this.#deps.metrics.upstreamErrors.inc({ upstream: String(target.id), kind: result.kind });
      this.#deps.logger.warn({ upstream: target.id, operation, failure: describeFailure(result) }, 'upstream request failed');
    }
    return result;
  }

  #count<T>(result: Result<T>): Result<T> {
    if (!result.ok) this.#deps.metrics.cacheRequests.inc({ kind: this.#request.kind, result: 'miss' });
    return result;
  }
}

function describeFailure(failure: UpstreamFailure): string {
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

function failureResult(failure: UpstreamFailure, what: ObjectKind): Err {
  switch (failure.kind) {
    case 'not_found':
      return err('not_found_on_upstreams', `${what} not found on the upstream`);
    case 'rate_limited':
      return err('rate_limited', `the upstream is rate limiting: ${describeFailure(failure)}`);
    default:
      return err('upstream_unavailable', `the upstream could not serve the ${what}: ${describeFailure(failure)}`);
  }
}

function schema1Refused(): Err {
  return err('not_found_on_upstreams', `the upstream has only a Docker schema 1 manifest, which is not supported; push the image as ${MEDIA_TYPES.dockerManifest} or OCI`);
}

function countBytes(body: Readable, metrics: Metrics, source: 'cache' | 'upstream', length: number | null): void {
  // No 'data' listener: it would switch the body to flowing before the HTTP layer pipes it. The store's
  // and the fills' streams count what they passed on; any other body counts as its length once ended.
  body.once('close', () => {
    const passed = (body as Readable & { bytesPassed?: unknown }).bytesPassed;
    const bytes = typeof passed === 'number' ? passed : body.readableEnded ? (length ?? 0) : 0;
    if (bytes > 0) metrics.bytesServed.inc({ source }, bytes);
  });
}

/** Bytes a response of this range (or the whole object) carries; null when the size is unknown. */
function rangeLength(range: ByteRange | null, size: number | null): number | null {
  if (size === null) return null;
  return range ? Math.min(range.end, size - 1) - range.start + 1 : size;
}
