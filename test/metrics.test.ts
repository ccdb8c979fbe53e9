import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../src/metrics.ts';

test('the rate-limit quota an upstream reported shows on /metrics', async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  assert.doesNotMatch(await metrics.registry.metrics(), /manifold_upstream_ratelimit_remaining\{/);
  metrics.sources.rateLimits = () => new Map([[7, { remaining: 42 }], [8, { remaining: null }]]);
  const text = await metrics.registry.metrics();
  assert.match(text, /manifold_upstream_ratelimit_remaining\{upstream="7"\} 42/);
  assert.doesNotMatch(text, /upstream="8"/);
});

test("the process metrics are prom-client's defaults without the GC histogram, which costs every collection a heap object", async () => {
  const text = await createMetrics().registry.metrics();
  for (const name of ['manifold_process_cpu_seconds_total', 'manifold_process_resident_memory_bytes', 'manifold_process_open_fds', 'manifold_nodejs_eventloop_lag_seconds', 'manifold_nodejs_heap_size_used_bytes', 'manifold_nodejs_heap_space_size_used_bytes', 'manifold_nodejs_active_handles', 'manifold_nodejs_version_info']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.doesNotMatch(text, /nodejs_gc_duration_seconds/);
});
