// TagService on its own: freshness of each upstream's list by the clock, the last good list after it,
// one upstream call for concurrent requests, and the answers when upstreams fail.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SYSTEM } from '../../src/auth/policy.ts';
import { createLogger } from '../../src/log.ts';
import { policyFromHours } from '../../src/services/freshness.ts';
import { STALE_WARNING } from '../../src/services/pull.ts';
import type { PullRegistry } from '../../src/services/registries.ts';
import { TagService } from '../../src/services/tags.ts';
import type { TagList, UpstreamResult, UpstreamTarget } from '../../src/upstream/client.ts';

const upstream = (id: number) => ({ id, name: `u${id}`, url: `https://u${id}.example`, username: null, password: null, tokenUrl: null, cacheValidityHours: 24, freshness: policyFromHours(24), position: id });
const registry: PullRegistry = { group: { id: 1, path: 'acme' }, registry: { id: 1, name: 'hub', anonymousPull: false, anonymousNetworks: [] }, upstreams: [upstream(1), upstream(2)] };

function setup(answers: Record<number, () => UpstreamResult<TagList> | Promise<UpstreamResult<TagList>>>) {
  let now = 1_000_000;
  const calls: number[] = [];
  const service = new TagService({
    registries: { findForPull: async () => registry },
    client: { listTags: async (target: UpstreamTarget) => { calls.push(target.id); return answers[target.id](); } },
    logger: createLogger('silent'),
    ttlMs: 30_000,
    now: () => now,
  });
  return { service, calls, advance: (ms: number) => (now += ms) };
}

const found = (tags: string[]): UpstreamResult<TagList> => ({ kind: 'found', value: { tags, complete: true } });
const down: UpstreamResult<TagList> = { kind: 'unavailable', cause: 'connection refused' };

describe('TagService', () => {
  it('uses each upstream\'s list until tagsTtlSeconds have passed, then asks again', async () => {
    let second = ['b', 'a'];
    const { service, calls, advance } = setup({ 1: () => found(['c', 'a']), 2: () => found(second) });
    const first = await service.list({ actor: SYSTEM, name: 'acme/hub/app' });
    assert.ok(first.ok);
    assert.deepEqual(first.value.tags, ['a', 'b', 'c']);
    second = ['b', 'a', 'new'];
    advance(29_999);
    const kept = await service.list({ actor: SYSTEM, name: 'acme/hub/app' });
    assert.ok(kept.ok);
    assert.deepEqual(kept.value.tags, ['a', 'b', 'c'], 'still fresh');
    assert.deepEqual(calls, [1, 2]);
    advance(1);
    const again = await service.list({ actor: SYSTEM, name: 'acme/hub/app' });
    assert.ok(again.ok);
    assert.deepEqual(again.value.tags, ['a', 'b', 'c', 'new']);
    assert.deepEqual(calls, [1, 2, 1, 2]);
  });

  it('serves the last good list with a Warning once the upstreams fail, however old it is', async () => {
    let failing = false;
    const { service, advance } = setup({ 1: () => (failing ? down : found(['1.0'])), 2: () => (failing ? down : { kind: 'not_found', status: 404 }) });
    assert.ok((await service.list({ actor: SYSTEM, name: 'acme/hub/app' })).ok);
    failing = true;
    advance(24 * 3_600_000);
    const stale = await service.list({ actor: SYSTEM, name: 'acme/hub/app', n: 1 });
    assert.ok(stale.ok);
    assert.deepEqual(stale.value, { tags: ['1.0'], nextLast: null, warning: STALE_WARNING });
    const never = await service.list({ actor: SYSTEM, name: 'acme/hub/other' });
    assert.equal(never.ok ? 'ok' : never.reason, 'upstream_unavailable');
  });

  it('asks each upstream once for concurrent requests', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const { service, calls } = setup({ 1: async () => { await gate; return found(['x']); }, 2: () => found(['y']) });
    const requests = Array.from({ length: 5 }, () => service.list({ actor: SYSTEM, name: 'acme/hub/app' }));
    release();
    for (const answer of await Promise.all(requests)) {
      assert.ok(answer.ok);
      assert.deepEqual(answer.value.tags, ['x', 'y']);
    }
    assert.deepEqual(calls.sort(), [1, 2]);
  });

  it('pages exactly: n, last, and the last tag of a full page', async () => {
    const { service } = setup({ 1: () => found(['a', 'b', 'c', 'd']), 2: () => found(['b', 'e']) });
    const page = await service.list({ actor: SYSTEM, name: 'acme/hub/app', n: 2, last: 'b' });
    assert.ok(page.ok);
    assert.deepEqual(page.value, { tags: ['c', 'd'], nextLast: 'd', warning: null });
    const end = await service.list({ actor: SYSTEM, name: 'acme/hub/app', n: 2, last: 'd' });
    assert.ok(end.ok);
    assert.deepEqual(end.value, { tags: ['e'], nextLast: null, warning: null });
    const bad = await service.list({ actor: SYSTEM, name: 'acme/hub/app', n: -1 });
    assert.equal(bad.ok ? 'ok' : bad.reason, 'invalid');
  });
});
