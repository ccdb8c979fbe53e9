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
