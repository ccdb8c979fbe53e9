// The pull decision table (DESIGN §3.1 steps 3-6, §3.5): every plan and every reason planPull can
// return, each row a situation a user would meet. A last test checks that the table covers them all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshnessFor, policyFromHours } from '../../src/services/freshness.ts';
import type { FreshnessPolicy, TagFreshness } from '../../src/services/freshness.ts';
import { planPull, STALE_WARNING } from '../../src/services/pull/plan.ts';
import type { PlanInput, PlannedUpstream, PullPlan } from '../../src/services/pull/plan.ts';
import type { UpstreamCondition } from '../../src/services/upstream-health.ts';

const NOW = 1_800_000_000_000;
const MIN = 60_000;
const HOUR = 60 * MIN;

const healthy: UpstreamCondition = { circuit: 'closed', limitedUntil: null, lastFailure: null, openUntil: null };
const open: UpstreamCondition = { circuit: 'open', limitedUntil: null, lastFailure: 'no answer within 2 s', openUntil: NOW + 8_000 };
const probeDue: UpstreamCondition = { circuit: 'probe_due', limitedUntil: null, lastFailure: 'no answer within 2 s', openUntil: NOW - 1 };
const limited: UpstreamCondition = { circuit: 'closed', limitedUntil: NOW + 30_000, lastFailure: null, openUntil: null };

function upstream(name: string, condition = healthy, knownMissing = false): PlannedUpstream {
  return { id: name.length, name, condition, knownMissing };
}

const policy = (changes: Partial<FreshnessPolicy> = {}): FreshnessPolicy => ({ ...policyFromHours(1), ...changes });
const tagFreshness = (changes: Partial<FreshnessPolicy> = {}, image = 'library/app', tag = 'latest'): TagFreshness => freshnessFor(policy(changes), image, tag);

/** A tag cached from the first upstream, checked `ageMs` ago. */
function cachedTag(ageMs: number, changes: Partial<PlanInput> = {}, freshness: Partial<FreshnessPolicy> = {}): PlanInput {
  return { kind: 'manifest', by: 'tag', upstreams: [upstream('hub')], entry: { upstream: 0, checkedAt: NOW - ageMs }, freshness: tagFreshness(freshness), now: NOW, ...changes };
}

function miss(upstreams: PlannedUpstream[], kind: 'manifest' | 'blob' = 'manifest'): PlanInput {
  return { kind, by: kind === 'blob' ? 'digest' : 'tag', upstreams, entry: null, freshness: null, now: NOW };
}

interface Row {
  situation: string;
  input: PlanInput;
  expect: Partial<PullPlan> & { kind: PullPlan['kind'] };
  /** Words the message must contain (fail plans). */
  message?: RegExp;
}

const rows: Row[] = [
  // §3.1 step 3
  { situation: 'a registry without upstreams', input: miss([]), expect: { kind: 'fail', why: 'no_upstreams', reason: 'no_upstreams' } },
  // §3.1 step 4: by digest
  { situation: 'a manifest by digest that is cached, however old', input: { ...cachedTag(10 * 365 * 24 * HOUR), by: 'digest', freshness: null }, expect: { kind: 'serve', why: 'by_digest' } },
  { situation: 'a blob that is cached, its upstream down', input: { kind: 'blob', by: 'digest', upstreams: [upstream('hub', open)], entry: { upstream: 0, checkedAt: 0 }, freshness: null, now: NOW }, expect: { kind: 'serve', why: 'by_digest' } },
  // §3.1 step 5: by tag
  { situation: 'a tag inside max_age', input: cachedTag(30 * MIN), expect: { kind: 'serve', why: 'fresh' } },
  { situation: 'a pinned tag (cache_validity_hours 0), ten years old', input: cachedTag(10 * 365 * 24 * HOUR, {}, { pin: true }), expect: { kind: 'serve', why: 'pinned' } },
  { situation: 'a pinned tag whose upstream is down', input: cachedTag(2 * HOUR, { upstreams: [upstream('hub', open)] }, { pin: true }), expect: { kind: 'serve', why: 'pinned' } },
  { situation: 'a stale tag, upstream healthy', input: cachedTag(2 * HOUR), expect: { kind: 'revalidate' } },
  { situation: 'a stale tag within stale_while_revalidate', input: cachedTag(HOUR + 5 * MIN, {}, { stale_while_revalidate: 600 }), expect: { kind: 'serve_stale', why: 'stale_while_revalidate', refresh: 'background', warning: null } },
  { situation: 'a tag past max_age + stale_while_revalidate', input: cachedTag(HOUR + 11 * MIN, {}, { stale_while_revalidate: 600 }), expect: { kind: 'revalidate' } },
  { situation: 'a stale tag, circuit open', input: cachedTag(2 * HOUR, { upstreams: [upstream('hub', open)] }), expect: { kind: 'serve_stale', why: 'circuit_open', refresh: 'none', warning: STALE_WARNING } },
  { situation: 'a stale tag, the open circuit\'s window is over', input: cachedTag(2 * HOUR, { upstreams: [upstream('hub', probeDue)] }), expect: { kind: 'serve_stale', why: 'circuit_open', refresh: 'probe', warning: STALE_WARNING } },
  { situation: 'a stale tag, upstream rate limited', input: cachedTag(2 * HOUR, { upstreams: [upstream('hub', limited)] }), expect: { kind: 'serve_stale', why: 'rate_limited', refresh: 'none', warning: STALE_WARNING } },
  { situation: 'a stale tag, rate limit already over', input: cachedTag(2 * HOUR, { upstreams: [upstream('hub', { ...limited, limitedUntil: NOW - 1 })] }), expect: { kind: 'revalidate' } },
  { situation: 'a stale swr tag, circuit open: the circuit wins (Warning)', input: cachedTag(HOUR + MIN, { upstreams: [upstream('hub', open)] }, { stale_while_revalidate: 600 }), expect: { kind: 'serve_stale', why: 'circuit_open', warning: STALE_WARNING } },
  { situation: 'a stale tag, circuit open, past stale_if_error', input: cachedTag(3 * HOUR, { upstreams: [upstream('hub', open)] }, { stale_if_error: 3600 }), expect: { kind: 'fail', why: 'too_stale', reason: 'upstream_unavailable' }, message: /upstream hub: no answer within 2 s; the cached copy is 120 min past its max_age/ },
  { situation: 'a stale tag, rate limited, past stale_if_error', input: cachedTag(3 * HOUR, { upstreams: [upstream('hub', limited)] }, { stale_if_error: 60 }), expect: { kind: 'fail', why: 'too_stale', reason: 'rate_limited' }, message: /upstream hub: rate limited for 30 s more/ },
  // §3.1 step 5, after the HEAD
  { situation: 'revalidated: same digest', input: cachedTag(2 * HOUR, { revalidation: { kind: 'same' } }), expect: { kind: 'serve', why: 'revalidated' } },
  { situation: 'revalidated: the tag moved', input: cachedTag(2 * HOUR, { revalidation: { kind: 'moved' } }), expect: { kind: 'fill', why: 'tag_moved', from: 0 } },
  { situation: 'revalidated: the tag is gone from its upstream, a second upstream may have it', input: cachedTag(2 * HOUR, { upstreams: [upstream('hub'), upstream('mirror')], revalidation: { kind: 'not_found' } }), expect: { kind: 'fill', why: 'gone_upstream', ask: [1] } },
  { situation: 'revalidated: the tag is gone from its only upstream', input: cachedTag(2 * HOUR, { revalidation: { kind: 'not_found' } }), expect: { kind: 'fail', why: 'known_missing', reason: 'not_found_on_upstreams' } },
  { situation: 'revalidation timed out: stale served with Warning (stale_if_error unlimited)', input: cachedTag(2 * HOUR, { revalidation: { kind: 'failed', failure: 'unavailable', cause: 'no answer within 2 s' } }), expect: { kind: 'serve_stale', why: 'upstream_failed', refresh: 'none', warning: STALE_WARNING } },
  { situation: 'revalidation answered 429 within stale_if_error', input: cachedTag(2 * HOUR, { revalidation: { kind: 'failed', failure: 'rate_limited', cause: 'rate limited' } }, { stale_if_error: 7200 }), expect: { kind: 'serve_stale', why: 'upstream_failed', warning: STALE_WARNING } },
  { situation: 'revalidation refused the credentials: stale served with Warning', input: cachedTag(2 * HOUR, { revalidation: { kind: 'failed', failure: 'unauthorized', cause: 'credentials refused (401)' } }), expect: { kind: 'serve_stale', why: 'upstream_failed' } },
  { situation: 'revalidation failed past stale_if_error', input: cachedTag(3 * HOUR, { revalidation: { kind: 'failed', failure: 'unavailable', cause: 'connection refused' } }, { stale_if_error: 600 }), expect: { kind: 'fail', why: 'too_stale', reason: 'upstream_unavailable' }, message: /upstream hub: connection refused; the cached copy is 120 min past its max_age, more than stale_if_error allows \(10 min\)/ },
  // §3.1 step 6: misses
  { situation: 'a tag not cached: ask every upstream in order', input: miss([upstream('hub'), upstream('mirror')]), expect: { kind: 'fill', why: 'not_cached', ask: [0, 1] } },
  { situation: 'a blob not cached, the first upstream rate limited: misses still go', input: miss([upstream('hub', limited)], 'blob'), expect: { kind: 'fill', why: 'not_cached', ask: [0] } },
  { situation: 'a miss, the first upstream\'s circuit open: only the second is asked', input: miss([upstream('hub', open), upstream('mirror')]), expect: { kind: 'fill', why: 'not_cached', ask: [1] } },
  { situation: 'a miss, the circuit\'s window is over: the request may probe', input: miss([upstream('hub', probeDue)]), expect: { kind: 'fill', why: 'not_cached', ask: [0] } },
  { situation: 'a miss, the first upstream answered 404 moments ago', input: miss([upstream('hub', healthy, true), upstream('mirror')]), expect: { kind: 'fill', why: 'not_cached', ask: [1] } },
  { situation: 'a miss that every upstream answered 404 moments ago (negative cache)', input: miss([upstream('hub', healthy, true), upstream('mirror', healthy, true)]), expect: { kind: 'fail', why: 'known_missing', reason: 'not_found_on_upstreams' }, message: /upstream hub answered 404 moments ago; upstream mirror answered 404/ },
  { situation: 'a miss, the only upstream\'s circuit open: fails at once, saying why', input: miss([upstream('docker-hub', open)]), expect: { kind: 'fail', why: 'circuit_open', reason: 'upstream_unavailable' }, message: /^upstream docker-hub: no answer within 2 s; not asked again for 8 s; no cached copy$/ },
  { situation: 'a miss: one upstream 404 moments ago, the other\'s circuit open', input: miss([upstream('hub', healthy, true), upstream('mirror', open)]), expect: { kind: 'fail', why: 'circuit_open', reason: 'upstream_unavailable' }, message: /upstream hub: not found; upstream mirror: no answer within 2 s/ },
];

for (const row of rows) {
  test(`plan: ${row.situation} → ${row.expect.kind}${'why' in row.expect ? ` (${row.expect.why})` : ''}`, () => {
    const plan = planPull(row.input);
    assert.deepEqual(pick(plan, Object.keys(row.expect)), row.expect);
    if (row.message) {
      assert.equal(plan.kind, 'fail');
      assert.match((plan as { message: string }).message, row.message);
    }
  });
}

function pick(plan: PullPlan, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, (plan as Record<string, unknown>)[key]]));
}

test('the table covers every plan, every why and every reason planPull can return', () => {
  const plans = rows.map((row) => planPull(row.input));
  const seen = new Set(plans.map((p) => `${p.kind}:${'why' in p ? p.why : ''}:${'reason' in p ? p.reason : ''}:${'refresh' in p ? p.refresh : ''}`));
  const every = [
    'serve:by_digest::', 'serve:fresh::', 'serve:pinned::', 'serve:revalidated::',
    'revalidate:::',
    'serve_stale:stale_while_revalidate::background', 'serve_stale:circuit_open::none', 'serve_stale:circuit_open::probe',
    'serve_stale:rate_limited::none', 'serve_stale:upstream_failed::none',
    'fill:not_cached::', 'fill:gone_upstream::', 'fill:tag_moved::',
    'fail:no_upstreams:no_upstreams:', 'fail:known_missing:not_found_on_upstreams:', 'fail:circuit_open:upstream_unavailable:',
    'fail:too_stale:upstream_unavailable:', 'fail:too_stale:rate_limited:',
  ];
  assert.deepEqual([...seen].sort(), [...every].sort());
});

test('freshness rules: first match wins, a rule overrides only what it names, the alias of cache_validity_hours', () => {
  const rules: FreshnessPolicy = policy({
    max_age: 3600,
    stale_if_error: 86_400,
    rules: [
      { match: 'library/*:latest', max_age: 300 },
      { match: '*:v*.*.*', pin: true },
      { match: 'library/*', max_age: 60, stale_while_revalidate: 30 },
    ],
  });
  assert.deepEqual(freshnessFor(rules, 'library/alpine', 'latest'), { maxAgeMs: 300_000, staleWhileRevalidateMs: 0, staleIfErrorMs: 86_400_000, pin: false, rule: 'library/*:latest' });
  assert.equal(freshnessFor(rules, 'library/alpine', 'v1.2.3').rule, '*:v*.*.*', 'the first rule that matches, not the most specific');
  assert.equal(freshnessFor(rules, 'acme/app', 'v1.2.3').pin, true);
  assert.equal(freshnessFor(rules, 'acme/app', 'v1.2').rule, null, 'v*.*.* needs three dots-separated parts');
  assert.deepEqual(freshnessFor(rules, 'library/alpine', '3.20'), { maxAgeMs: 60_000, staleWhileRevalidateMs: 30_000, staleIfErrorMs: 86_400_000, pin: false, rule: 'library/*' });
  assert.equal(freshnessFor(rules, 'library.x/alpine', 'latest').rule, null, 'a dot in a pattern is a dot');
  assert.deepEqual(freshnessFor(policyFromHours(0), 'a', 'b'), { maxAgeMs: 86_400_000, staleWhileRevalidateMs: 0, staleIfErrorMs: null, pin: true, rule: null });
  assert.equal(freshnessFor(policyFromHours(6), 'a', 'b').maxAgeMs, 6 * HOUR);
});
