// PeriodicTask: timed runs, never two at once, runs on demand, failures logged and survived.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeriodicTask } from '../../src/lib/periodic-task.ts';
import type { Logger } from '../../src/log.ts';

function recordingLogger() {
  const errors: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const logger = { error: (fields: Record<string, unknown>, message: string) => errors.push({ fields, message }) } as unknown as Logger;
  return { logger, errors };
}

test('runs every interval after start and not after stop', async () => {
  let runs = 0;
  const task = new PeriodicTask({ name: 'counting', intervalMs: 20, run: async () => ++runs });
  await sleep(60);
  assert.equal(runs, 0, 'nothing runs before start');
  task.start();
  task.start();
  await sleep(130);
  await task.stop();
  const atStop = runs;
  assert.ok(atStop >= 3, `expected several runs, got ${atStop}`);
  await sleep(80);
  assert.equal(runs, atStop);
});

test('a run still going when the next is due is not doubled', async () => {
  let concurrent = 0;
  let most = 0;
  let runs = 0;
  const task = new PeriodicTask({
    name: 'slow',
    intervalMs: 10,
    run: async () => {
      runs++;
      concurrent++;
      most = Math.max(most, concurrent);
      await sleep(55);
      concurrent--;
    },
  });
  task.start();
  void task.runNow();
  void task.runNow();
  await sleep(150);
  await task.stop();
  assert.equal(most, 1);
  assert.ok(runs >= 2);
});

test('runNow during a run waits for it and starts a fresh run; callers meanwhile share that one', async () => {
  const seen: number[] = [];
  let value = 0;
  let release!: () => void;
  const task = new PeriodicTask({
    name: 'flush',
    intervalMs: 60_000,
    run: async () => {
      const mine = ++value;
      if (mine === 1) await new Promise<void>((resolve) => (release = resolve));
      seen.push(mine);
      return mine;
    },
  });
  const first = task.runNow();
  const second = task.runNow();
  const third = task.runNow();
  assert.equal(task.running, true);
  release();
  assert.deepEqual(await Promise.all([first, second, third]), [1, 2, 2]);
  assert.deepEqual(seen, [1, 2]);
});

test('a failing timed run is logged with the task name and the next run still comes', async () => {
  const { logger, errors } = recordingLogger();
  let runs = 0;
  const results: number[] = [];
  const task = new PeriodicTask({
    name: 'download counters',
    intervalMs: 15,
    logger,
    onResult: (n: number) => results.push(n),
    run: async () => {
      runs++;
      if (runs === 1) throw new Error('database away');
      return runs;
    },
  });
  task.start();
  await sleep(100);
  await task.stop();
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /download counters failed/);
  assert.equal((errors[0].fields.err as Error).message, 'database away');
  assert.ok(results.length >= 1 && results[0] === 2);
});

test('runNow gives its caller the error, and stop waits for the run going', async () => {
  let finished = false;
  const failing = new PeriodicTask({ name: 'x', intervalMs: 1000, run: async () => Promise.reject(new Error('nope')) });
  await assert.rejects(failing.runNow(), /nope/);
  const slow = new PeriodicTask({
    name: 'y',
    intervalMs: 1000,
    run: async () => {
      await sleep(40);
      finished = true;
    },
  });
  void slow.runNow();
  await slow.stop();
  assert.equal(finished, true);
  assert.throws(() => new PeriodicTask({ name: 'z', intervalMs: 0, run: async () => {} }), /interval/);
});
