// Manifests on the pull path (DESIGN §3.1 steps 4-6, §3.5): by digest a live entry is a hit; by tag the
// highest-priority upstream's entry is judged by the plan (plan.ts) and this file carries the plan out:
// serve, revalidate with a HEAD bounded by the revalidation timeout, serve the stale copy and refresh
// it in the background (one refresh per tag at a time), refetch a moved tag, or fill a miss.
import { SYSTEM } from '../../auth/policy.ts';
import type { CacheEntry } from '../../db/schema.ts';
import type { CacheResult } from '../../metrics.ts';
import { SCHEMA1_TYPES, baseMediaType } from '../../oci/media-types.ts';
import { manifestPath, parseReference } from '../../oci/reference.ts';
import { err, ok } from '../../result.ts';
import type { Result } from '../../result.ts';
import type { ManifestHead, UpstreamResult, UpstreamTarget } from '../../upstream/client.ts';
import { timedOut } from '../../upstream/types.ts';
import { freshnessFor } from '../freshness.ts';
import type { PullUpstream } from './access.ts';
import { describeFailure, schema1Refused } from './context.ts';
import type { ManifestFilled, PullResponse, PullRun } from './context.ts';
import { duration, planPull } from './plan.ts';
import type { PlanInput, Revalidation } from './plan.ts';

/** Times a manifest fill stores its bytes when the destroyer deleted them before the entry was written. */
const STORE_ATTEMPTS = 3;

export async function pullManifest(run: PullRun): Promise<Result<PullResponse>> {
  const { deps, name, registry } = run;
  const reference = parseReference(run.request.reference)!;
  if (reference.kind === 'digest') {
    const entry = await deps.entries.findLiveByDigest(run.upstreamIds, reference.digest.value);
    if (entry) {
      const served = await run.serveStored(entry, entry.content_type, 'hit');
      if (served) return served;
    }
    return manifestMiss(run);
  }

  const tag = reference.tag;
  const path = manifestPath(name.image, tag);
  const entries = await deps.entries.findLiveForPath(registry.registry.id, path);
  const entry = entries[0];
  const index = entry ? registry.upstreams.findIndex((u) => u.id === entry.upstream_id) : -1;
  if (!entry || index === -1) return manifestMiss(run);
  const upstream = registry.upstreams[index];
  const input: PlanInput = {
    kind: 'manifest',
    by: 'tag',
    upstreams: run.plannedUpstreams(path),
    entry: { upstream: index, checkedAt: entry.upstream_checked_at },
    freshness: freshnessFor(upstream.freshness, name.image, tag),
    now: run.now,
  };
  return carryOut(run, input, entry, upstream, tag);
}

/** Carries out the plan for a cached tag; after asking the upstream, plans again with what it said. */
async function carryOut(run: PullRun, input: PlanInput, entry: CacheEntry, upstream: PullUpstream, tag: string): Promise<Result<PullResponse>> {
  const { deps, shared } = run;
  for (;;) {
    const plan = planPull(input);
    switch (plan.kind) {
      case 'serve': {
        if (plan.why === 'revalidated') {
          const served = await run.serveStored(entry, entry.content_type, 'revalidated');
          return served ?? manifestMiss(run);
        }
        return (await run.serveStored(entry, entry.content_type, 'hit')) ?? manifestMiss(run);
      }
      case 'serve_stale': {
        if (plan.refresh === 'background' || (plan.refresh === 'probe' && shared.health.claimProbe(upstream.id))) {
          refreshInBackground(run, upstream, tag, entry);
        }
        if (plan.why === 'circuit_open' || plan.why === 'rate_limited') {
          shared.health.countSkipped(upstream.id);
          deps.metrics.revalidationsSkipped.inc({ upstream: String(upstream.id), state: plan.why });
        }
        const served = await run.serveStored(entry, entry.content_type, 'stale', plan.warning);
        return served ?? manifestMiss(run);
      }
      case 'revalidate': {
        const head = await revalidate(run, upstream, tag, entry, true);
        if (head.kind === 'found' && head.value.digest && head.value.digest !== entry.digest && !run.isGet) {
          // The tag moved: a HEAD answers with the new digest without filling (DESIGN §3.3).
          if (SCHEMA1_TYPES.has(baseMediaType(head.value.mediaType))) return run.count(schema1Refused());
          return run.count(ok({ digest: head.value.digest, mediaType: baseMediaType(head.value.mediaType), size: head.value.size, range: null, body: null, warning: null, cache: 'upstream_head' }));
        }
        input = { ...input, revalidation: revalidationOf(head, entry.digest) };
        continue;
      }
      case 'fill': {
        if (plan.why !== 'tag_moved') return manifestMiss(run, plan.ask);
        // The tag moved (or the upstream sent no digest): fetch it again from the same upstream.
        const filled = await fillManifest(run, upstream, tag);
        if (filled.ok) return serveFilled(run, filled.value, 'miss');
        if (filled.reason !== 'upstream_unavailable' && filled.reason !== 'rate_limited') return run.count(filled);
        input = { ...input, revalidation: { kind: 'failed', failure: filled.reason === 'rate_limited' ? 'rate_limited' : 'unavailable', cause: filled.message } };
        continue;
      }
      case 'fail':
        return run.count(err(plan.reason, plan.message));
    }
  }
}

function revalidationOf(head: UpstreamResult<ManifestHead>, digest: string): Revalidation {
  switch (head.kind) {
    case 'found':
      return head.value.digest === digest ? { kind: 'same' } : { kind: 'moved' };
    case 'not_found':
      return { kind: 'not_found' };
    default:
      return { kind: 'failed', failure: head.kind, cause: describeFailure(head) };
  }
}

/**
 * HEAD of a stale tag (which Docker Hub does not count as a pull), shared by every request for this
 * tag meanwhile; the same digest renews the entry's check time. A request waiting for it (foreground)
 * waits at most the revalidation timeout, also when it joined a background refresh; past it the
 * upstream counts as timed out (its circuit opens), so the next requests do not wait again. A
 * background refresh keeps only the fill timeouts: nobody waits for it.
 */
function revalidate(run: PullRun, upstream: PullUpstream, tag: string, entry: CacheEntry, foreground: boolean): Promise<UpstreamResult<ManifestHead>> {
  const { deps, shared } = run;
  const path = manifestPath(run.name.image, tag);
  const limit = shared.revalidateTimeoutMs;
  const flight = shared.revalidate(`${upstream.id}:${path}`, async () => {
    const signal = foreground ? AbortSignal.timeout(limit) : undefined;
    const head = await run.timed(upstream, 'head_manifest', async () => {
      const answered = await deps.client.headManifest(upstream, run.name.image, tag, signal);
      return answered.kind === 'unavailable' && signal?.aborted ? timedOut(`no answer within ${duration(limit)}`) : answered;
    }, { path });
    if (head.kind === 'found' && head.value.digest === entry.digest) await deps.entries.touchChecked(entry.id, shared.now());
    return head;
  });
  if (!foreground) return flight;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      const late = timedOut(`no answer within ${duration(limit)}`);
      run.learn(upstream.id, late);
      resolve(late);
    }, limit + 50);
    void flight.then((head) => {
      clearTimeout(timer);
      resolve(head);
    });
  });
}

/** stale_while_revalidate and the circuit's probe: the same revalidation, after the response. */
function refreshInBackground(run: PullRun, upstream: PullUpstream, tag: string, entry: CacheEntry): void {
  const path = manifestPath(run.name.image, tag);
  run.shared.background(`${upstream.id}:${path}`, async () => {
    const head = await revalidate(run, upstream, tag, entry, false);
    if (head.kind === 'found' && head.value.digest !== entry.digest) {
      const filled = await fillManifest(run, upstream, tag);
      if (!filled.ok) run.deps.logger.warn({ upstream: upstream.id, path, reason: filled.reason, message: filled.message }, 'background refresh of a tag failed');
    }
  });
}

async function manifestMiss(run: PullRun, ask?: number[]): Promise<Result<PullResponse>> {
  const { deps, name } = run;
  const reference = run.request.reference;
  const path = manifestPath(name.image, reference);
  if (ask === undefined) {
    const plan = planPull({ kind: 'manifest', by: reference.includes(':') ? 'digest' : 'tag', upstreams: run.plannedUpstreams(path), entry: null, freshness: null, now: run.now });
    if (plan.kind === 'fail') return run.count(err(plan.reason, plan.message));
    if (plan.kind !== 'fill' || plan.why === 'tag_moved') return run.count(err('upstream_unavailable', `unexpected plan ${plan.kind} for a miss`));
    ask = plan.ask;
  }
  const candidates = run.askable(ask);
  if (!candidates) return run.count(run.probeBusy(ask));
  const headManifest = (t: UpstreamTarget, signal: AbortSignal) => deps.client.headManifest(t, name.image, reference, signal);
  if (!run.isGet) {
    const head = await run.probe(candidates, path, 'head_manifest', headManifest);
    if (!head.ok) return run.count(head);
    const found = head.value.value;
    if (found.digest) {
      if (SCHEMA1_TYPES.has(baseMediaType(found.mediaType))) return run.count(schema1Refused());
      return run.count(ok({ digest: found.digest, mediaType: baseMediaType(found.mediaType), size: found.size, range: null, body: null, warning: null, cache: 'upstream_head' }));
    }
    // An upstream that sends no digest on HEAD: fetch the manifest to know it.
    const filled = await fillManifest(run, head.value.target as PullUpstream, reference);
    return filled.ok ? serveFilled(run, filled.value, 'miss') : run.count(filled);
  }
  const winner = await run.winner(candidates, path, 'head_manifest', headManifest);
  if (!winner.ok) return run.count(winner);
  const filled = await fillManifest(run, winner.value, reference);
  return filled.ok ? serveFilled(run, filled.value, 'miss') : run.count(filled);
}

/** GET from one upstream, verify, store the object and record the entries (tag and digest). */
function fillManifest(run: PullRun, upstream: PullUpstream, reference: string): Promise<Result<ManifestFilled>> {
  const { deps } = run;
  const image = run.name.image;
  const path = manifestPath(image, reference);
  const key = `${upstream.id}:${path}`;
  return run.shared.fillManifest(key, () => underLease(run, key, () => storedSinceStart(run, upstream, path, reference), async () => {
    const reused = await storedSinceStart(run, upstream, path, reference);
    if (reused) return ok(reused);
    const got = await run.timed(upstream, 'get_manifest', () => deps.client.getManifest(upstream, image, reference), { path });
    if (got.kind !== 'found') return run.failureResult(upstream, got);
    const manifest = got.value;
    const mediaType = baseMediaType(manifest.mediaType);
    const expected = reference.includes(':') ? reference : manifest.headerDigest;
    if (expected && expected !== manifest.computedDigest) {
      deps.metrics.fills.inc({ kind: 'manifest', outcome: 'verification_failed' });
      return err('upstream_unavailable', `upstream ${upstream.name}: the manifest does not match its digest ${expected}; not stored`);
    }
    if (SCHEMA1_TYPES.has(mediaType)) return schema1Refused();
    const digest = manifest.computedDigest;
    const values = { upstreamId: upstream.id, digest, size: manifest.bytes.length, contentType: mediaType, upstreamEtag: manifest.etag, checkedAt: run.shared.now() };
    let byReference: Result<CacheEntry> = err('object_not_present', `the object ${digest} is not stored`);
    // The destroyer may delete the object between its commit and the entry (an eviction of the digest's
    // last entry racing this fill: object_not_present): the bytes are in memory, so store them again.
    for (let attempt = 0; attempt < STORE_ATTEMPTS && !byReference.ok && byReference.reason === 'object_not_present'; attempt++) {
      const stored = await storeManifest(run, digest, manifest.bytes);
      if (!stored.ok) return stored;
      byReference = await deps.entries.createOrUpdate(SYSTEM, { ...values, relativePath: manifestPath(image, reference) });
      if (byReference.ok && !reference.includes(':')) {
        // The client's next request is the same manifest by digest: make it a hit.
        const byDigest = await deps.entries.createOrUpdate(SYSTEM, { ...values, relativePath: manifestPath(image, digest) });
        if (!byDigest.ok) byReference = byDigest;
      }
    }
    if (!byReference.ok) return byReference;
    deps.metrics.fills.inc({ kind: 'manifest', outcome: 'committed' });
    // Stored bytes as a blob fill's are (a check starts when they cross the high watermark).
    deps.quota?.committed(manifest.bytes.length, run.registry.group.id);
    // Verified against its digest above: the next requests are answered from memory.
    run.shared.manifests.set(digest, manifest.bytes);
    return ok({ bytes: manifest.bytes, digest, mediaType, entryId: byReference.value.id });
  }));
}

/** How often a replica waiting for another's manifest fill looks whether it ended. */
const MANIFEST_WAIT_POLL_MS = 100;

/**
 * With several replicas, the fill runs on the replica that claims its lease; the others wait for the
 * owner's commit (a manifest is small: streaming it from the owner would gain nothing) and read what it
 * stored. When the owner failed or died (its lease expired), the next claim fills again.
 */
async function underLease(run: PullRun, key: string, stored: () => Promise<ManifestFilled | null>, fill: () => Promise<Result<ManifestFilled>>): Promise<Result<ManifestFilled>> {
  const leases = run.deps.cluster?.leases;
  if (!leases) return fill();
  for (;;) {
    const claim = await leases.claim(key);
    if (claim.kind === 'owned') {
      try {
        return await fill();
      } finally {
        await claim.release();
      }
    }
    while (await leases.heldBy(key, claim.owner)) await new Promise((resolve) => setTimeout(resolve, MANIFEST_WAIT_POLL_MS));
    const reused = await stored();
    if (reused) {
      run.deps.metrics.clusterFillsFollowed.inc({ kind: 'manifest' });
      return ok(reused);
    }
  }
}

/** Writes and commits a manifest's bytes. */
async function storeManifest(run: PullRun, digest: string, bytes: Buffer): Promise<Result<unknown>> {
  const writer = await run.deps.store.createWriter(digest);
  try {
    await writer.write(bytes);
  } catch (error) {
    await writer.abort(error as Error);
    return err('persistence_error', 'cannot write the manifest to storage', { cause: error });
  }
  return writer.commit(bytes.length);
}

/**
 * The entry another request's fill recorded after this request looked at the cache (its lookup
 * missed it, but the single flight had already finished): served instead of fetching again. A tag's
 * entry counts only when written since this request started (an older one is what made it refetch).
 */
async function storedSinceStart(run: PullRun, upstream: PullUpstream, path: string, reference: string): Promise<ManifestFilled | null> {
  const entry = await run.deps.entries.findLive(upstream.id, path);
  if (!entry || (!reference.includes(':') && entry.updated_at < run.startedAt)) return null;
  // Checked against the entry's size and digest; a damaged object is fetched again (self-repair).
  const bytes = await run.manifestBytes(entry);
  return bytes ? { bytes, digest: entry.digest, mediaType: entry.content_type, entryId: entry.id, reused: true } : null;
}

function serveFilled(run: PullRun, filled: ManifestFilled, cache: CacheResult): Result<PullResponse> {
  if (filled.reused) cache = 'hit';
  const refused = run.refuseUnaccepted(filled.mediaType);
  if (refused) return run.count(refused);
  return run.serveManifestBytes(filled.entryId, filled.digest, filled.mediaType, filled.bytes, cache, null);
}
