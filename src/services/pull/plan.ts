// The pull decision (DESIGN §3.1 steps 3-6, §3.5) as one pure function: from the request, the cached
// entry, the freshness that applies to it, the condition of the registry's upstreams and the time, it
// returns what to do. The pull service carries the plan out; after a revalidation (or a refetch) it
// asks again with the outcome, so that every "what now" is answered here and tested by one table.
import type { Reason } from '../../result.ts';
import type { TagFreshness } from '../freshness.ts';
import type { UpstreamCondition } from '../upstream-health.ts';

export const STALE_WARNING = '299 - "served from cache; upstream unavailable"';

export interface PlannedUpstream {
  id: number;
  name: string;
  condition: UpstreamCondition;
  /** This upstream answered 404 for this path within its negative-cache window. */
  knownMissing: boolean;
}

export interface PlanEntry {
  /** Index into `upstreams` of the upstream the entry came from. */
  upstream: number;
  /** When that upstream last confirmed the entry (epoch ms). */
  checkedAt: number;
}

/** What asking the entry's upstream (HEAD, or the GET of a moved tag) came to. */
export type Revalidation =
  | { kind: 'same' }
  | { kind: 'moved' }
  | { kind: 'not_found' }
  | { kind: 'failed'; failure: 'unavailable' | 'rate_limited' | 'unauthorized'; cause: string };

export interface PlanInput {
  kind: 'manifest' | 'blob';
  /** A digest is content-addressed: never stale. */
  by: 'digest' | 'tag';
  /** The registry's upstreams by position. */
  upstreams: PlannedUpstream[];
  /** The live entry: any for a digest, the highest-priority upstream's for a tag; null when none. */
  entry: PlanEntry | null;
  /** The entry's upstream's freshness for this tag (ignored for digests). */
  freshness: TagFreshness | null;
  now: number;
  /** Set when the plan was `revalidate` and the upstream was asked. */
  revalidation?: Revalidation;
}

export type ServeWhy = 'by_digest' | 'fresh' | 'pinned' | 'revalidated';
export type StaleWhy = 'stale_while_revalidate' | 'circuit_open' | 'rate_limited' | 'upstream_failed';
export type FailWhy = 'no_upstreams' | 'known_missing' | 'circuit_open' | 'too_stale';

export type PullPlan =
  /** Serve the entry from the cache; `revalidated`: touch its check time first. */
  | { kind: 'serve'; why: ServeWhy }
  /** Ask the entry's upstream (HEAD, bounded by the revalidation timeout), then plan again. */
  | { kind: 'revalidate' }
  /**
   * Serve the entry as it is. `refresh`: background = one refresh per tag in the background; probe =
   * the upstream's circuit lets one request through (take the probe, refresh in the background);
   * none = do not ask. `warning`: the Warning header.
   */
  | { kind: 'serve_stale'; why: StaleWhy; refresh: 'background' | 'probe' | 'none'; warning: string | null }
  /**
   * Fetch: `ask` = the upstream indexes that may be asked, in order (a miss); `from` = the entry's
   * upstream only (the tag moved there).
   */
  | { kind: 'fill'; why: 'not_cached' | 'gone_upstream'; ask: number[] }
  | { kind: 'fill'; why: 'tag_moved'; from: number }
  | { kind: 'fail'; why: FailWhy; reason: Reason; message: string };

/** `2 s`, `1.5 s`, `3 min`: for messages a person reads in `docker pull`. */
export function duration(ms: number): string {
  const seconds = Math.max(0, ms) / 1000;
  if (seconds < 120) return `${Number(seconds.toFixed(1))} s`;
  return `${Math.round(seconds / 60)} min`;
}

function askable(upstream: PlannedUpstream): boolean {
  return !upstream.knownMissing && upstream.condition.circuit !== 'open';
}

/** A miss: ask the upstreams that are not known to lack it and whose circuit lets a request through. */
function planMiss(input: PlanInput, why: 'not_cached' | 'gone_upstream'): PullPlan {
  const ask = input.upstreams.flatMap((upstream, index) => (askable(upstream) ? [index] : []));
  if (ask.length > 0) return { kind: 'fill', why, ask };
  const what = input.kind === 'blob' ? 'blob' : 'manifest';
  if (input.upstreams.every((u) => u.knownMissing)) {
    return { kind: 'fail', why: 'known_missing', reason: 'not_found_on_upstreams', message: `${what} not found on any upstream (${input.upstreams.map((u) => `upstream ${u.name} answered 404 moments ago`).join('; ')})` };
  }
  const causes = input.upstreams.map((u) => (u.knownMissing
    ? `upstream ${u.name}: not found`
    : `upstream ${u.name}: ${u.condition.lastFailure ?? 'failing'}; not asked again for ${duration((u.condition.openUntil ?? input.now) - input.now)}`));
  return { kind: 'fail', why: 'circuit_open', reason: 'upstream_unavailable', message: `${causes.join('; ')}; no cached copy` };
}

/** How the stale entry may still be served when its upstream could not confirm it. */
function planFailedRevalidation(input: PlanInput, entry: PlanEntry, freshness: TagFreshness, failure: Extract<Revalidation, { kind: 'failed' }>): PullPlan {
  const upstream = input.upstreams[entry.upstream];
  const overdue = input.now - (entry.checkedAt + freshness.maxAgeMs);
  if (freshness.staleIfErrorMs === null || overdue <= freshness.staleIfErrorMs) {
    return { kind: 'serve_stale', why: 'upstream_failed', refresh: 'none', warning: STALE_WARNING };
  }
  return {
    kind: 'fail',
    why: 'too_stale',
    reason: failure.failure === 'rate_limited' ? 'rate_limited' : 'upstream_unavailable',
    message: `upstream ${upstream.name}: ${failure.cause}; the cached copy is ${duration(overdue)} past its max_age, more than stale_if_error allows (${duration(freshness.staleIfErrorMs)})`,
  };
}

export function planPull(input: PlanInput): PullPlan {
  if (input.upstreams.length === 0) return { kind: 'fail', why: 'no_upstreams', reason: 'no_upstreams', message: 'the registry has no upstreams' };
  const entry = input.entry;
  if (!entry) return planMiss(input, 'not_cached');
  if (input.by === 'digest' || !input.freshness) return { kind: 'serve', why: 'by_digest' };

  const freshness = input.freshness;
  const upstream = input.upstreams[entry.upstream];
  const revalidation = input.revalidation;
  if (revalidation) {
    switch (revalidation.kind) {
      case 'same':
        return { kind: 'serve', why: 'revalidated' };
      case 'moved':
        return { kind: 'fill', why: 'tag_moved', from: entry.upstream };
      case 'not_found':
        // Gone from its upstream: what the others have (or a 404), like any miss.
        return planMiss({ ...input, upstreams: input.upstreams.map((u, i) => (i === entry.upstream ? { ...u, knownMissing: true } : u)) }, 'gone_upstream');
      case 'failed':
        return planFailedRevalidation(input, entry, freshness, revalidation);
    }
  }

  if (freshness.pin) return { kind: 'serve', why: 'pinned' };
  const age = input.now - entry.checkedAt;
  if (age < freshness.maxAgeMs) return { kind: 'serve', why: 'fresh' };

  // Stale. A sick or rate-limited upstream is not asked: the copy is served at once, and says so.
  const condition = upstream.condition;
  if (condition.circuit !== 'closed') {
    const failed = planFailedRevalidation(input, entry, freshness, { kind: 'failed', failure: 'unavailable', cause: condition.lastFailure ?? 'failing' });
    if (failed.kind !== 'serve_stale') return failed;
    return { kind: 'serve_stale', why: 'circuit_open', refresh: condition.circuit === 'probe_due' ? 'probe' : 'none', warning: STALE_WARNING };
  }
  if (condition.limitedUntil !== null && condition.limitedUntil > input.now) {
    const failed = planFailedRevalidation(input, entry, freshness, { kind: 'failed', failure: 'rate_limited', cause: `rate limited for ${duration(condition.limitedUntil - input.now)} more` });
    if (failed.kind !== 'serve_stale') return failed;
    return { kind: 'serve_stale', why: 'rate_limited', refresh: 'none', warning: STALE_WARNING };
  }
  if (age < freshness.maxAgeMs + freshness.staleWhileRevalidateMs) {
    return { kind: 'serve_stale', why: 'stale_while_revalidate', refresh: 'background', warning: null };
  }
  return { kind: 'revalidate' };
}
