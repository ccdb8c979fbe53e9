// Blobs on the pull path (DESIGN §3.1 step 4, §3.2): a live entry with the digest is a hit; otherwise
// the plan names the upstreams to ask and the fill streams the blob to the client while it is stored
// (BlobFills: one fetch per object, followers stream from the growing file).
import { SYSTEM } from '../../auth/policy.ts';
import type { CacheResult } from '../../metrics.ts';
import { blobPath } from '../../oci/reference.ts';
import { err, ok } from '../../result.ts';
import type { Result } from '../../result.ts';
import type { JoinedFill } from '../blob-fills.ts';
import type { PullUpstream } from './access.ts';
import { BLOB_CONTENT_TYPE, countBytes, rangeLength } from './context.ts';
import type { PullResponse, PullRun } from './context.ts';
import { planPull } from './plan.ts';
import { objectProblem } from '../storage-repairs.ts';

export async function pullBlob(run: PullRun): Promise<Result<PullResponse>> {
  const { deps, name } = run;
  const digest = run.request.reference;
  const entry = await deps.entries.findLiveByDigest(run.upstreamIds, digest);
  if (entry) {
    const served = await run.serveStored(entry, BLOB_CONTENT_TYPE, 'hit');
    if (served) return served;
  }
  const path = blobPath(name.image, digest);
  const plan = planPull({ kind: 'blob', by: 'digest', upstreams: run.plannedUpstreams(path), entry: null, freshness: null, now: run.now });
  if (plan.kind === 'fail') return run.count(err(plan.reason, plan.message));
  if (plan.kind !== 'fill' || plan.why === 'tag_moved') return run.count(err('upstream_unavailable', `unexpected plan ${plan.kind} for a blob`));
  const candidates = run.askable(plan.ask);
  if (!candidates) return run.count(run.probeBusy(plan.ask));

  const headBlob = (t: Parameters<typeof deps.client.headBlob>[0], signal: AbortSignal) => deps.client.headBlob(t, name.image, digest, signal);
  if (!run.isGet) {
    const head = await run.probe(candidates, path, 'head_blob', headBlob);
    if (!head.ok) return run.count(head);
    return run.count(ok({ digest, mediaType: BLOB_CONTENT_TYPE, size: head.value.value.size, range: null, body: null, warning: null, cache: 'upstream_head' }));
  }
  const winner = await run.winner(candidates, path, 'head_blob', headBlob);
  if (!winner.ok) return run.count(winner);
  let fill = await joinBlobFill(run, winner.value, path, digest);
  if (!fill.ok) return run.count(fill);
  let range = run.resolveRange(fill.value.size);
  if (range && 'unsatisfiable' in range) return range.unsatisfiable;
  let body = await fill.value.attach(range ?? undefined);
  if (!body.ok && body.reason === 'object_not_present') {
    // Evicted between the fill's look at the cache and the read: its entry is gone, so this fills anew.
    fill = await joinBlobFill(run, winner.value, path, digest);
    if (!fill.ok) return run.count(fill);
    range = run.resolveRange(fill.value.size);
    if (range && 'unsatisfiable' in range) return range.unsatisfiable;
    body = await fill.value.attach(range ?? undefined);
  }
  if (!body.ok) return run.count(body);
  const cache: CacheResult = fill.value.stored ? 'hit' : 'miss';
  deps.metrics.cacheRequests.inc({ kind: 'blob', result: cache });
  countBytes(body.value, deps.metrics, fill.value.stored ? 'cache' : 'upstream', rangeLength(range, fill.value.size));
  return ok({ digest, mediaType: BLOB_CONTENT_TYPE, size: fill.value.size, range, body: body.value, warning: null, cache });
}

/** Joins the fill of this blob from this upstream, or starts it. */
function joinBlobFill(run: PullRun, upstream: PullUpstream, path: string, digest: string): Promise<Result<JoinedFill>> {
  const { deps } = run;
  const image = run.name.image;
  return run.shared.blobFills.join({
    key: `${upstream.id}:${path}`,
    digest,
    stored: async () => {
      // A fill of this key that committed after this request looked at the cache has left its entry.
      const entry = await deps.entries.findLive(upstream.id, path);
      const info = entry ? await deps.store.stat(digest) : null;
      // A damaged object (one the lookup before found and recorded) is filled again.
      if (!entry || objectProblem(info, Number(entry.size))) return null;
      deps.counter.record(entry.id, run.now);
      return info;
    },
    open: async (signal) => {
      const got = await run.timed(upstream, 'get_blob', () => deps.client.getBlob(upstream, image, digest, { signal }), { path });
      if (got.kind !== 'found') return run.failureResult(upstream, got);
      return ok({ body: got.value.body, size: got.value.size });
    },
    admit: (size) => deps.quota?.admits(size, run.registry.group.id) ?? true,
    onCommit: async (info) => {
      const entry = await deps.entries.createOrUpdate(SYSTEM, { upstreamId: upstream.id, relativePath: path, digest, size: info.size, contentType: BLOB_CONTENT_TYPE, upstreamEtag: null, checkedAt: Date.now() });
      deps.quota?.committed(info.size, run.registry.group.id);
      // The object is stored either way; without its entry the next pull fills again.
      if (entry.ok) deps.counter.record(entry.value.id);
      else deps.logger.error({ digest, reason: entry.message }, 'blob stored but its cache entry was not recorded');
    },
  });
}
