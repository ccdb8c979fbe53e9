// SingleFlight: concurrent callers of one key share one run; the key is free again once it settled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SingleFlight } from '../../src/lib/single-flight.ts';

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('concurrent calls with one key share one run; other keys run on their own', async () => {
  const flight = new SingleFlight<number>();
  let runs = 0;
  const gate = deferred<number>();
  const work = () => {
    runs++;
    return gate.promise;
  };
  const calls = Array.from({ length: 16 }, () => flight.run('a', work));
  const other = flight.run('b', async () => 7);
  assert.equal(flight.size, 2);
  assert.ok(flight.has('a'));
  gate.resolve(42);
  assert.deepEqual(await Promise.all(calls), Array(16).fill(42));
  assert.equal(await other, 7);
  assert.equal(runs, 1);
  assert.equal(flight.size, 0);
});

test('a failure reaches every caller of that run, and the next call runs again', async () => {
  const flight = new SingleFlight<string>();
  let runs = 0;
  const failing = () => {
    runs++;
    return Promise.reject(new Error('upstream down'));
  };
  const results = await Promise.allSettled([flight.run('k', failing), flight.run('k', failing)]);
  assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
  assert.equal(runs, 1);
  assert.equal(await flight.run('k', async () => 'second'), 'second');
});

test('a synchronous throw is a rejection and does not hold the key', async () => {
  const flight = new SingleFlight<string>();
  await assert.rejects(flight.run('k', () => {
    throw new Error('bad');
  }), /bad/);
  assert.equal(flight.has('k'), false);
});

test('settle waits for the runs under way, failures included', async () => {
  const flight = new SingleFlight<void>();
  const slow = deferred<void>();
  let settled = false;
  void flight.run('a', () => slow.promise).catch(() => {});
  const waiting = flight.settle().then(() => {
    settled = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false);
  slow.reject(new Error('gone'));
  await waiting;
  assert.equal(settled, true);
});
