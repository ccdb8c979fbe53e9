// Prometheus metrics (DESIGN §7). One registry per Manifold instance, passed to whoever records.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import version from 'prom-client/lib/metrics/version.js';
import type { ChangeFeedStats } from './db/change-feed.ts';

/**
 * prom-client's default metrics (`collectDefaultMetrics`) without its GC duration histogram: to report
 * collections Node builds a performance entry on the JS heap for each one, and under 10,000 manifest GETs a
 * second (about 125 scavenges a second) those entries were 40 % of all the memory promoted to V8's old
 * generation (bench/memory-profile.ts with MEMPROF_PROMOTED=1), which is what the old generation grows by.
 */
const defaultMetrics = [processCpuTotal, processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, eventLoopLag, processResources, processHandles, processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version];

export type CacheResult = 'hit' | 'miss' | 'revalidated' | 'stale' | 'upstream_head';
export type ObjectKind = 'manifest' | 'blob';

export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) for (const metric of defaultMetrics) metric(registry, { prefix: 'manifold_', eventLoopMonitoringPrecision: 10 });
  const registers = [registry];
  /** Filled in by the composition root once the upstream client exists. */
  const sources: {
    rateLimits?: () => ReadonlyMap<number, { remaining: number | null }>;
    /** Upstream health (services/upstream-health.ts): state per upstream id. */
    health?: () => { id: number; state: 'healthy' | 'circuit_open' | 'rate_limited'; consecutiveFailures: number }[];
    /** The bounded in-memory caches (src/lib/bounded-cache.ts) by name. */
    memoryCaches?: () => Record<string, { entries: number; bytes: number; evictions: number }>;
    /** The change feed (db/change-feed.ts): its counters since the start. */
    changeFeed?: () => ChangeFeedStats;
  } = {};
  /** A counter kept by someone else: reported as it is at each scrape. */
  const counted = (read: (stats: ChangeFeedStats) => number) => function collect(this: Counter) {
    const stats = sources.changeFeed?.();
    if (!stats) return;
    this.reset();
    this.inc(read(stats));
  };
  return {
    sources,
    registry,
    httpRequests: new Counter({ name: 'manifold_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers }),
    httpDuration: new Histogram({ name: 'manifold_http_request_duration_seconds', help: 'Time to the end of the response', labelNames: ['route', 'method'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120], registers }),
    cacheRequests: new Counter({ name: 'manifold_cache_requests_total', help: 'Pulls by object kind and cache result', labelNames: ['kind', 'result'], registers }),
    bytesServed: new Counter({ name: 'manifold_bytes_served_total', help: 'Bytes sent to clients, from the cache or while filling from an upstream', labelNames: ['source'], registers }),
    anonymousPulls: new Counter({ name: 'manifold_anonymous_pulls_total', help: 'Requests without credentials served on registries with anonymous_pull, by registry and endpoint', labelNames: ['registry', 'kind'], registers }),
    fillsInFlight: new Gauge({ name: 'manifold_fills_in_flight', help: 'Cache fills streaming from upstreams now', registers }),
    fillFollowers: new Gauge({ name: 'manifold_fill_followers', help: 'Responses attached to a fill in flight', registers }),
    clusterFillsOwned: new Counter({ name: 'manifold_cluster_fills_owned_total', help: 'Fill leases this replica claimed (it fetched the object from the upstream for the whole cluster)', registers }),
    clusterFillsFollowed: new Counter({ name: 'manifold_cluster_fills_followed_total', help: 'Requests served from a fill another replica owned: blobs streamed from its peer listener, manifests read after its commit', labelNames: ['kind'], registers }),
    clusterLeaseTakeovers: new Counter({ name: 'manifold_cluster_lease_takeovers_total', help: 'Fill leases this replica took over from a replica that stopped renewing them', registers }),
    storageRepairs: new Counter({ name: 'manifold_storage_repairs_total', help: 'Cache entries found with their object missing, of another size or unreadable: refetched by a pull (source pull) or marked for refetch by storage check (source check)', labelNames: ['reason', 'source'], registers }),
    passThroughs: new Counter({ name: 'manifold_cache_pass_through_total', help: 'Blobs served from the upstream without being stored, because storage could not hold them even after eviction', labelNames: ['reason'], registers }),
    passThroughBytes: new Counter({ name: 'manifold_cache_pass_through_bytes_total', help: 'Sizes of the blobs served as pass-through streams', registers }),
    evictions: new Counter({ name: 'manifold_cache_evictions_total', help: 'Cache entries marked for destruction by cleanup policies and storage quotas', labelNames: ['reason'], registers }),
    evictedBytes: new Counter({ name: 'manifold_cache_evicted_bytes_total', help: 'Sizes of the cache entries evicted, by reason', labelNames: ['reason'], registers }),
    storageBytes: new Gauge({ name: 'manifold_storage_bytes', help: 'Bytes of the unique objects live cache entries refer to, as of the last quota check', registers }),
    storageLimitBytes: new Gauge({ name: 'manifold_storage_limit_bytes', help: 'storage.maxBytes (0: no limit)', registers }),
    fills: new Counter({ name: 'manifold_fills_total', help: 'Finished cache fills by outcome', labelNames: ['kind', 'outcome'], registers }),
    upstreamRequests: new Histogram({ name: 'manifold_upstream_request_duration_seconds', help: 'Upstream request time to headers, by operation and outcome', labelNames: ['upstream', 'operation', 'outcome'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers }),
    upstreamErrors: new Counter({ name: 'manifold_upstream_errors_total', help: 'Upstream requests that failed, by kind', labelNames: ['upstream', 'kind'], registers }),
    upstreamRateLimitRemaining: new Gauge({
      name: 'manifold_upstream_ratelimit_remaining',
      help: 'Last ratelimit-remaining an upstream sent (Docker Hub pull quota)',
      labelNames: ['upstream'],
      registers,
      collect() {
        for (const [upstream, reading] of sources.rateLimits?.() ?? []) {
          if (reading.remaining !== null) this.set({ upstream: String(upstream) }, reading.remaining);
        }
      },
    }),
    revalidationsSkipped: new Counter({
      name: 'manifold_upstream_revalidations_skipped_total',
      help: 'Revalidations of stale tags not sent (served from the cache at once) because the upstream\'s circuit was open or it was rate limited: the requests saved',
      labelNames: ['upstream', 'state'],
      registers,
    }),
    upstreamState: new Gauge({
      name: 'manifold_upstream_state',
      help: 'Upstream health as this process sees it: 1 for the current state (healthy, circuit_open, rate_limited)',
      labelNames: ['upstream', 'state'],
      registers,
      collect() {
        this.reset();
        for (const upstream of sources.health?.() ?? []) {
          for (const state of ['healthy', 'circuit_open', 'rate_limited'] as const) this.set({ upstream: String(upstream.id), state }, upstream.state === state ? 1 : 0);
        }
      },
    }),
    memoryCacheEntries: new Gauge({
      name: 'manifold_memory_cache_entries',
      help: 'Entries held by each bounded in-memory cache (hot manifests, entry lookups, token actors, verified tokens, registries)',
      labelNames: ['cache'],
      registers,
      collect() {
        for (const [cache, stats] of Object.entries(sources.memoryCaches?.() ?? {})) this.set({ cache }, stats.entries);
      },
    }),
    memoryCacheBytes: new Gauge({
      name: 'manifold_memory_cache_bytes',
      help: 'Bytes held by each byte-bounded in-memory cache',
      labelNames: ['cache'],
      registers,
      collect() {
        for (const [cache, stats] of Object.entries(sources.memoryCaches?.() ?? {})) this.set({ cache }, stats.bytes);
      },
    }),
    memoryCacheEvictions: new Gauge({
      name: 'manifold_memory_cache_evictions',
      help: 'Entries each bounded in-memory cache evicted to stay within its bounds, since the start',
      labelNames: ['cache'],
      registers,
      collect() {
        for (const [cache, stats] of Object.entries(sources.memoryCaches?.() ?? {})) this.set({ cache }, stats.evictions);
      },
    }),
    changeNotificationsSent: new Counter({
      name: 'manifold_change_notifications_sent_total',
      help: 'Changes told to the other replicas (one PostgreSQL NOTIFY per committed write)',
      registers,
      collect: counted((stats) => stats.sent),
    }),
    changeNotificationsFailed: new Counter({
      name: 'manifold_change_notifications_failed_total',
      help: 'Changes that could not be told to the other replicas (the database went away after the commit; their caches catch up within their TTL)',
      registers,
      collect: counted((stats) => stats.sendFailures),
    }),
    changeNotificationsReceived: new Counter({
      name: 'manifold_change_notifications_received_total',
      help: 'Changes heard from other replicas (or the CLI), each dropping what the caches of this process remember of it',
      registers,
      collect: counted((stats) => stats.received),
    }),
    changeFeedListens: new Counter({
      name: 'manifold_change_feed_listens_total',
      help: 'Times the connection listening for other replicas\' changes started (1 + reconnections); each drops every cache of this process',
      registers,
      collect: counted((stats) => stats.listens),
    }),
    changeFeedListening: new Gauge({
      name: 'manifold_change_feed_listening',
      help: '1 while this process listens for other replicas\' changes (PostgreSQL LISTEN), 0 while that connection is down or on SQLite',
      registers,
      collect() {
        this.set(sources.changeFeed?.().listening ? 1 : 0);
      },
    }),
    upstreamConsecutiveFailures: new Gauge({
      name: 'manifold_upstream_consecutive_failures',
      help: 'Failed upstream requests in a row (timeouts, refused connections, 5xx)',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const upstream of sources.health?.() ?? []) this.set({ upstream: String(upstream.id) }, upstream.consecutiveFailures);
      },
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
