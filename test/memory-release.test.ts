// QuietRelease: a memory-reducing collection after a quiet interval once the resident memory has grown,
// never while busy, and not again until the memory grows from what the last one left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QuietRelease, collectAndRelease } from '../src/memory-release.ts';
import type { Logger } from '../src/log.ts';

const MB = 1e6;
const quietLogger = { debug: () => {}, error: () => {} } as unknown as Logger;

/** A process whose resident memory the test sets; a collection brings it down to `floor`. */
function fakeProcess(start: number) {
  const state = { resident: start, floor: start, collections: 0, dropped: 0 };
  const release = new QuietRelease({
    intervalMs: 1_000,
    growthBytes: 8 * MB,
    quietUtilization: 0.1,
    quietIntervals: 1,
    logger: quietLogger,
    beforeCollect: () => void state.dropped++,
    residentBytes: () => state.resident,
    collect: () => {
      state.collections++;
      state.resident = state.floor;
      return true;
    },
  });
  return { state, release };
}

test('a quiet interval after growth releases once; busy intervals and small growth do not', () => {
  const { state, release } = fakeProcess(120 * MB);
  state.resident = 170 * MB;
  assert.equal(release.check(0.9), null, 'busy: V8 is left alone');
  assert.equal(state.collections, 0);
  const report = release.check(0.01);
  assert.deepEqual(report && { before: report.beforeBytes, after: report.afterBytes }, { before: 170 * MB, after: 120 * MB });
  assert.equal(state.collections, 1);
  assert.equal(state.dropped, 1, 'what is kept for reuse is let go first');
  assert.equal(release.check(0.01), null, 'nothing grew since');
  state.resident = 125 * MB;
  assert.equal(release.check(0.01), null, 'growth below the threshold');
  assert.equal(state.collections, 1);
});

test('memory a collection cannot give back becomes the new mark', () => {
  const { state, release } = fakeProcess(120 * MB);
  state.floor = 150 * MB;
  state.resident = 160 * MB;
  assert.ok(release.check(0));
  assert.equal(state.resident, 150 * MB);
  state.resident = 155 * MB;
  assert.equal(release.check(0), null, 'not again for the memory that stayed');
  state.resident = 159 * MB;
  assert.ok(release.check(0), '8 MB more than what the last one left');
  assert.equal(state.collections, 2);
});

test('a release waits for enough quiet intervals in a row; a busy one starts the count again', () => {
  let resident = 100 * MB;
  let collections = 0;
  const release = new QuietRelease({
    intervalMs: 1_000, growthBytes: 8 * MB, quietUtilization: 0.05, quietIntervals: 2, logger: quietLogger,
    residentBytes: () => resident,
    collect: () => {
      collections++;
      resident = 100 * MB;
      return true;
    },
  });
  resident = 130 * MB;
  assert.equal(release.check(0.01), null, 'one quiet interval: a pull may be waiting on its sockets');
  assert.equal(release.check(0.2), null, 'busy');
  assert.equal(release.check(0.01), null, 'one quiet interval again');
  assert.ok(release.check(0.01), 'the second in a row');
  assert.equal(collections, 1);
});

test('without --expose-gc there is no collection and no release', () => {
  const release = new QuietRelease({ intervalMs: 1_000, growthBytes: 1, quietUtilization: 1, quietIntervals: 1, logger: quietLogger, residentBytes: (() => { let bytes = 0; return () => (bytes += MB); })(), collect: () => false });
  assert.equal(release.check(0), null);
  assert.equal(collectAndRelease(), typeof globalThis.gc === 'function');
});
