// Upstream health (DESIGN §3.5): when a circuit opens, how long it stays open, the one probe per window,
// and the rate-limited state, on a clock the test moves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamHealth } from '../../src/services/upstream-health.ts';

function health() {
  const clock = { now: 1_000_000 };
  const tracked = new UpstreamHealth({ failureThreshold: 3, openMs: 10_000, maxOpenMs: 40_000, defaultRateLimitMs: 60_000, now: () => clock.now });
  return { tracked, clock };
}

const refused = { kind: 'failed', cause: 'connection refused', timedOut: false } as const;
const frozen = { kind: 'failed', cause: 'no answer within 2 s', timedOut: true } as const;

test('a timeout opens the circuit at once; other failures after three in a row; an answer in between resets the count', () => {
  const { tracked } = health();
  tracked.record(1, frozen);
  assert.equal(tracked.condition(1).circuit, 'open');
  assert.equal(tracked.condition(1).lastFailure, 'no answer within 2 s');

  tracked.record(2, refused);
  tracked.record(2, refused);
  assert.equal(tracked.condition(2).circuit, 'closed');
  tracked.record(2, { kind: 'answered' });
  tracked.record(2, refused);
  tracked.record(2, refused);
  assert.equal(tracked.condition(2).circuit, 'closed', 'the answer reset the count');
  tracked.record(2, refused);
  assert.equal(tracked.condition(2).circuit, 'open');
  assert.equal(tracked.view(2).consecutive_failures, 3);
});

test('one probe per window; a failed probe doubles the window up to the maximum; an answer closes the circuit', () => {
  const { tracked, clock } = health();
  tracked.record(1, frozen);
  assert.equal(tracked.claimProbe(1), false, 'not within the window');
  clock.now += 10_000;
  assert.equal(tracked.condition(1).circuit, 'probe_due');
  assert.equal(tracked.claimProbe(1), true);
  assert.equal(tracked.claimProbe(1), false, 'one probe at a time');
  assert.equal(tracked.condition(1).circuit, 'open', 'while the probe runs, nobody else asks');
  tracked.record(1, frozen);
  assert.equal(tracked.view(1).circuit_open_until, clock.now + 20_000, 'the window doubled');
  for (const step of [20_000, 40_000]) {
    clock.now += step;
    assert.ok(tracked.claimProbe(1));
    tracked.record(1, refused);
  }
  assert.equal(tracked.view(1).circuit_open_until, clock.now + 40_000, 'never more than the maximum');
  clock.now += 40_000;
  assert.ok(tracked.claimProbe(1));
  tracked.record(1, { kind: 'answered' });
  assert.equal(tracked.condition(1).circuit, 'closed');
  assert.equal(tracked.view(1).state, 'healthy');
  tracked.record(1, frozen);
  assert.equal(tracked.view(1).circuit_open_until, clock.now + 10_000, 'a new failure starts from the first window again');
});

test('a probe that never reports is given up after a window', () => {
  const { tracked, clock } = health();
  tracked.record(1, frozen);
  clock.now += 10_000;
  assert.ok(tracked.claimProbe(1));
  clock.now += 10_000;
  assert.equal(tracked.condition(1).circuit, 'probe_due');
  assert.ok(tracked.claimProbe(1));
});

test('429 limits until Retry-After (else the default); ratelimit-remaining 0 until its reset; neither opens the circuit', () => {
  const { tracked, clock } = health();
  tracked.record(1, { kind: 'rate_limited', retryAfterSeconds: 15 });
  assert.equal(tracked.condition(1).limitedUntil, clock.now + 15_000);
  assert.equal(tracked.condition(1).circuit, 'closed');
  assert.equal(tracked.view(1).state, 'rate_limited');
  clock.now += 15_001;
  assert.equal(tracked.condition(1).limitedUntil, null);
  assert.equal(tracked.view(1).state, 'healthy');

  tracked.record(2, { kind: 'rate_limited', retryAfterSeconds: null });
  assert.equal(tracked.condition(2).limitedUntil, clock.now + 60_000);

  tracked.recordRemaining(3, 5, 100);
  assert.equal(tracked.condition(3).limitedUntil, null, 'quota left: not limited');
  tracked.recordRemaining(3, 0, 120);
  assert.equal(tracked.condition(3).limitedUntil, clock.now + 120_000);

  tracked.countSkipped(3);
  tracked.countSkipped(3);
  assert.equal(tracked.view(3).revalidations_skipped, 2);
  tracked.forget(3);
  assert.equal(tracked.view(3).state, 'healthy');
});
