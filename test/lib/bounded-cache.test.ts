// BoundedCache: freshness, the entry and byte bounds (least recently used evicted), invalidation that
// wins over a read in progress, and the stale window.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedCache, purgeExpiredEverywhere } from '../../src/lib/bounded-cache.ts';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

test('an entry is served while fresh and not after its ttl', () => {
  const time = clock();
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 5_000, now: time.now });
  cache.set('a', 'one');
  assert.equal(cache.get('a'), 'one');
  time.advance(4_999);
  assert.equal(cache.get('a'), 'one');
  time.advance(1);
  assert.equal(cache.get('a'), undefined);
});

test('a per-entry ttl applies but never exceeds the cache ttl', () => {
  const time = clock();
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 5_000, now: time.now });
  cache.set('short', 's', { ttlMs: 1_000 });
  cache.set('long', 'l', { ttlMs: 60_000 });
  time.advance(1_000);
  assert.equal(cache.get('short'), undefined);
  assert.equal(cache.get('long'), 'l');
  time.advance(4_000);
  assert.equal(cache.get('long'), undefined);
});

test('the entry bound evicts the least recently used', () => {
  const cache = new BoundedCache<number>({ maxEntries: 3, ttlMs: 60_000 });
  for (const key of ['a', 'b', 'c']) cache.set(key, 1);
  cache.get('a');
  cache.set('d', 1);
  assert.equal(cache.size, 3);
  assert.equal(cache.get('b'), undefined, 'b was the least recently used');
  assert.equal(cache.get('a'), 1);
  assert.equal(cache.evictions, 1);
});

test('the byte bound evicts until the total fits, and refuses an entry larger than the bound', () => {
  const cache = new BoundedCache<Buffer>({ maxEntries: 1000, maxBytes: 10_000, sizeOf: (value) => value.length, ttlMs: 60_000 });
  for (let i = 0; i < 20; i++) cache.set(`m${i}`, Buffer.alloc(1_000));
  assert.ok(cache.bytes <= 10_000, `held ${cache.bytes} bytes`);
  assert.equal(cache.size, 10);
  assert.equal(cache.get('m0'), undefined);
  assert.ok(cache.get('m19'));
  cache.set('huge', Buffer.alloc(20_000));
  assert.equal(cache.get('huge'), undefined);
  assert.ok(cache.bytes <= 10_000);
  assert.throws(() => new BoundedCache({ maxEntries: 1, maxBytes: 1, ttlMs: 1 }), /sizeOf/);
});

test('an answer read before an invalidation is not kept', () => {
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 60_000 });
  const before = cache.generation;
  cache.delete('x');
  cache.set('x', 'old', { generation: before });
  assert.equal(cache.get('x'), undefined);
  const now = cache.generation;
  cache.set('x', 'new', { generation: now });
  assert.equal(cache.get('x'), 'new');
});

test('deleteWhere and clear remove what they pick', () => {
  const cache = new BoundedCache<{ registry: number }>({ maxEntries: 10, ttlMs: 60_000 });
  cache.set('1:a', { registry: 1 });
  cache.set('1:b', { registry: 1 });
  cache.set('2:a', { registry: 2 });
  assert.equal(cache.deleteWhere((value) => value.registry === 1), 2);
  assert.equal(cache.get('1:a'), undefined);
  assert.deepEqual(cache.get('2:a'), { registry: 2 });
  cache.clear();
  assert.equal(cache.size, 0);
});

test('getStale answers within keepMs after the read, get only while fresh', () => {
  const time = clock();
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 1_000, keepMs: 60_000, now: time.now });
  cache.set('k', 'v');
  time.advance(30_000);
  assert.equal(cache.get('k'), undefined);
  assert.equal(cache.getStale('k'), 'v');
  time.advance(30_000);
  assert.equal(cache.getStale('k'), undefined);
});

test('a ttl of 0 keeps nothing', () => {
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 0 });
  cache.set('k', 'v');
  assert.equal(cache.get('k'), undefined);
  assert.equal(cache.size, 0);
});

test('freshness counts from when the value was read (since), not from when it was kept', () => {
  const time = clock();
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 2_000, now: time.now });
  const readAt = time.now();
  time.advance(1_500);
  cache.set('slow read', 'v', { since: readAt });
  time.advance(499);
  assert.equal(cache.get('slow read'), 'v');
  time.advance(1);
  assert.equal(cache.get('slow read'), undefined);
});

test('without keepMs an entry lives only while fresh: a purge drops it once its own ttl has passed', () => {
  const time = clock();
  // As the negative cache: the cache's ttl is the longest an entry may have, each entry gives its own.
  const cache = new BoundedCache<true>({ maxEntries: 10, ttlMs: 3_600_000, now: time.now });
  cache.set('short', true, { ttlMs: 30_000 });
  cache.set('long', true);
  time.advance(30_001);
  assert.equal(cache.size, 2, 'expired entries are not dropped by timers');
  assert.equal(cache.purgeExpired(), 1);
  assert.equal(cache.size, 1);
  assert.equal(cache.get('long'), true);
});

test('a purge keeps what getStale may still answer', () => {
  const time = clock();
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 1_000, keepMs: 60_000, now: time.now });
  cache.set('k', 'v');
  time.advance(59_999);
  assert.equal(cache.purgeExpired(), 0);
  assert.equal(cache.getStale('k'), 'v');
  time.advance(2);
  assert.equal(cache.purgeExpired(), 1);
  assert.equal(cache.getStale('k'), undefined);
});

test('getStale answers a fresh entry of a cache that keeps nothing longer', () => {
  const time = clock();
  const cache = new BoundedCache<string>({ maxEntries: 10, ttlMs: 1_000, now: time.now });
  cache.set('k', 'v');
  assert.equal(cache.getStale('k'), 'v');
  time.advance(1_000);
  assert.equal(cache.getStale('k'), undefined);
});

test('purgeExpiredEverywhere reaches every live cache', () => {
  const time = clock();
  const caches = [1, 2, 3].map(() => new BoundedCache<number>({ maxEntries: 100, ttlMs: 1_000, now: time.now }));
  for (const cache of caches) for (let i = 0; i < 10; i++) cache.set(`k${i}`, i);
  time.advance(1_001);
  assert.ok(purgeExpiredEverywhere() >= 30);
  for (const cache of caches) assert.equal(cache.size, 0);
});
