// The referrers of a manifest (OCI 1.1, DESIGN §3.3): asked of the registry's upstreams in order, the
// first non-empty answer wins. An upstream's `Link` pages are passed through, the `artifactType` filter
// is applied here when the upstream did not apply it, and a registry none of whose upstreams offers the
// API answers 404, so that clients fall back to the `sha256-<hex>` tag schema. Answers are kept for a
// short time only: the list grows as artifacts are attached upstream.
import { BoundedCache } from '../lib/bounded-cache.ts';
import type { Actor } from '../auth/policy.ts';
import type { Change } from '../db/change-feed.ts';
import type { Logger } from '../log.ts';
import { MEDIA_TYPES } from '../oci/media-types.ts';
import { parseDigest } from '../oci/reference.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import type { UpstreamClient, UpstreamFailure } from '../upstream/client.ts';
import { authorizeRepository } from './pull-access.ts';
import type { RegistryService } from './registries.ts';

export interface ReferrersRequest {
  actor: Actor;
  /** `<group>/<registry>/<image>`. */
  name: string;
  digest: string;
  artifactType?: string;
  /** A later page: the upstream that gave the first one and its own query for this page (from our Link). */
  page?: { upstreamId: number; query: URLSearchParams } | null;
}

export interface ReferrersAnswer {
  bytes: Buffer;
  mediaType: string;
  /** True when the answer was filtered by artifactType (by the upstream or here): send OCI-Filters-Applied. */
  filteredByArtifactType: boolean;
  /** The next page, when the upstream links one: its id and its query. */
  next: { upstreamId: number; query: URLSearchParams } | null;
}

export interface ReferrersDeps {
  registries: Pick<RegistryService, 'findForPull'>;
  client: Pick<UpstreamClient, 'getReferrers'>;
  logger: Logger;
  /** How long an answer is kept; 0 keeps none. */
  ttlMs: number;
  /** Answers kept at most. */
  maxEntries?: number;
}

interface Descriptor {
  artifactType?: unknown;
}

const EMPTY_INDEX = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] }));

export class ReferrersService {
  readonly #deps: ReferrersDeps;
  readonly #cache: BoundedCache<ReferrersAnswer>;

  constructor(deps: ReferrersDeps) {
    this.#deps = deps;
    this.#cache = new BoundedCache({ maxEntries: deps.maxEntries ?? 10_000, ttlMs: deps.ttlMs });
  }

  /** Answers are kept per registry: a change of its upstreams (or of one of them) drops them. */
  onChange(change: Change): void {
    if (change.kind === 'registry' || change.kind === 'registry_upstreams' || change.kind === 'upstream' || change.kind === 'all') this.#cache?.clear();
  }

  async list(request: ReferrersRequest): Promise<Result<ReferrersAnswer>> {
    const access = await authorizeRepository(this.#deps.registries, request.actor, request.name);
    if (!access.ok) return access;
    const { name, registry } = access.value;
    if (!parseDigest(request.digest)) return invalid({ digest: ['must be sha256:<64 hex> or sha512:<128 hex>'] }, 'invalid digest');
    if (registry.upstreams.length === 0) return err('no_upstreams', `registry ${name.groupPath}/${name.registryName} has no upstreams`);
    const page = request.page ?? null;
    const upstreams = page ? registry.upstreams.filter((u) => u.id === page.upstreamId) : registry.upstreams;
    if (upstreams.length === 0) return invalid({ page: ['names an upstream this registry no longer has; start from the first page'] }, 'invalid page');

    const key = JSON.stringify([registry.registry.id, name.image, request.digest, request.artifactType ?? '', page?.upstreamId ?? 0, page?.query.toString() ?? '']);
    const cached = this.#cache.get(key);
    if (cached) return ok(cached);

    let offered = false;
    const failures: UpstreamFailure[] = [];
    for (const upstream of upstreams) {
      const got = await this.#deps.client.getReferrers(upstream, name.image, request.digest, { artifactType: request.artifactType, query: page?.query });
      if (got.kind === 'not_found') continue;
      if (got.kind !== 'found') {
        failures.push(got);
        this.#deps.logger.warn({ upstream: upstream.id, failure: got }, 'upstream referrers request failed');
        continue;
      }
      const index = readIndex(got.value.bytes);
      if (!index) {
        failures.push({ kind: 'unavailable', cause: `upstream ${upstream.id} answered referrers with a body that is not an image index` });
        continue;
      }
      offered = true;
      const filterHere = request.artifactType !== undefined && !got.value.filtersApplied.includes('artifactType');
      const manifests = filterHere ? index.manifests.filter((d) => d.artifactType === request.artifactType) : index.manifests;
      // An empty list (or page) of one upstream lets the next one answer; a later page is always this upstream's.
      if (manifests.length === 0 && got.value.next === null && !page) continue;
      const answer: ReferrersAnswer = {
        bytes: filterHere ? Buffer.from(JSON.stringify({ ...index.document, manifests })) : got.value.bytes,
        mediaType: MEDIA_TYPES.ociIndex,
        filteredByArtifactType: request.artifactType !== undefined,
        next: got.value.next ? { upstreamId: upstream.id, query: got.value.next } : null,
      };
      this.#cache.set(key, answer);
      return ok(answer);
    }
    if (offered) {
      const empty: ReferrersAnswer = { bytes: EMPTY_INDEX, mediaType: MEDIA_TYPES.ociIndex, filteredByArtifactType: request.artifactType !== undefined, next: null };
      // An upstream that failed might have had some: not kept, so the next request asks again.
      if (failures.length === 0) this.#cache.set(key, empty);
      return ok(empty);
    }
    if (failures.length > 0) {
      const rateLimited = failures.every((f) => f.kind === 'rate_limited');
      return err(rateLimited ? 'rate_limited' : 'upstream_unavailable', `no upstream could answer the referrers of ${request.digest}`);
    }
    return err('not_found_on_upstreams', 'no upstream of this registry offers the referrers API; use the sha256-<hex> tag schema');
  }
}

/** The upstream's index, when it is one: a JSON object with a `manifests` array of objects. */
function readIndex(bytes: Buffer): { document: Record<string, unknown>; manifests: Descriptor[] } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const manifests = (parsed as { manifests?: unknown }).manifests;
  if (!Array.isArray(manifests) || !manifests.every((d) => typeof d === 'object' && d !== null)) return null;
  return { document: parsed as Record<string, unknown>, manifests: manifests as Descriptor[] };
}
