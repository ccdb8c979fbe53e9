// Asking an ordered list of upstreams whether they have one object (DESIGN §3.1 rule 6): in parallel, a
// bounded number at a time, each with a short timeout. The winner is the first upstream that has the object
// once every upstream before it has answered "no"; a failure counts as "no" for choosing and is reported.
import type { ProbeFailure, ProbeResult, UpstreamResult, UpstreamTarget } from './types.ts';

export interface ProbeOptions {
  /** Attempts in flight at once. */
  concurrency: number;
  /** Each attempt's limit; its signal is aborted then and it counts as unavailable. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export type ProbeAttempt<T> = (target: UpstreamTarget, signal: AbortSignal) => Promise<UpstreamResult<T>>;

/** Upstreams that failed (anything but found or not found), in priority order up to `end`. */
function failuresOf<T>(targets: UpstreamTarget[], outcomes: (UpstreamResult<T> | undefined)[], end: number): ProbeFailure[] {
  const failures: ProbeFailure[] = [];
  for (let i = 0; i < end; i++) {
    const outcome = outcomes[i];
    if (outcome && outcome.kind !== 'found' && outcome.kind !== 'not_found') failures.push({ upstreamId: targets[i].id, failure: outcome });
  }
  return failures;
}

export function probeUpstreams<T>(targets: UpstreamTarget[], attempt: ProbeAttempt<T>, options: ProbeOptions): Promise<ProbeResult<T>> {
  if (targets.length === 0) return Promise.resolve({ kind: 'not_found', failures: [] });
  const concurrency = Math.max(1, options.concurrency);

  return new Promise((resolve) => {
    const outcomes: (UpstreamResult<T> | undefined)[] = new Array(targets.length);
    const controllers: (AbortController | undefined)[] = new Array(targets.length);
    const timers: (NodeJS.Timeout | undefined)[] = new Array(targets.length);
    let next = 0;
    let running = 0;
    /** Lowest index that answered found so far: nothing after it needs asking. */
    let bestFound = targets.length;
    let settled = false;

    const finish = (result: ProbeResult<T>) => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      // Attempts still running are not needed; the winner's signal stays alive (its value may be a stream).
      controllers.forEach((controller, i) => {
        if (result.kind !== 'found' || i !== result.index) controller?.abort(new Error('probe decided'));
      });
      options.signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };

    const decide = () => {
      for (let i = 0; i < targets.length; i++) {
        const outcome = outcomes[i];
        if (outcome === undefined) return; // a higher-priority upstream has not answered yet
        if (outcome.kind === 'found') {
          finish({ kind: 'found', index: i, target: targets[i], value: outcome.value, failures: failuresOf(targets, outcomes, i) });
          return;
        }
      }
      const failures = failuresOf(targets, outcomes, targets.length);
      const anyAnsweredNo = outcomes.some((o) => o?.kind === 'not_found');
      if (anyAnsweredNo) finish({ kind: 'not_found', failures });
      else finish({ kind: 'unavailable', rateLimited: failures.some((f) => f.failure.kind === 'rate_limited'), failures });
    };

    const record = (index: number, outcome: UpstreamResult<T>) => {
      if (settled || outcomes[index] !== undefined) return; // the timeout answered first
      clearTimeout(timers[index]);
      outcomes[index] = outcome;
      running--;
      if (outcome.kind === 'found' && index < bestFound) {
        bestFound = index;
        // Lower-priority attempts can no longer win.
        for (let i = index + 1; i < targets.length; i++) controllers[i]?.abort(new Error('a higher-priority upstream has it'));
        for (let i = index + 1; i < targets.length; i++) if (outcomes[i] === undefined && controllers[i]) {
          outcomes[i] = { kind: 'unavailable', cause: 'not needed' };
          running--;
        }
      }
      launch();
      decide();
    };

    const launch = () => {
      while (!settled && running < concurrency && next < targets.length && next < bestFound) {
        const index = next++;
        running++;
        const controller = new AbortController();
        controllers[index] = controller;
        const signal = options.signal ? AbortSignal.any([controller.signal, options.signal]) : controller.signal;
        timers[index] = setTimeout(() => {
          if (settled || outcomes[index] !== undefined) return;
          controller.abort(new Error('probe timeout'));
          record(index, { kind: 'unavailable', cause: `no answer within ${options.timeoutMs} ms`, timedOut: true });
        }, options.timeoutMs);
        Promise.resolve()
          .then(() => attempt(targets[index], signal))
          .catch((error: unknown): UpstreamResult<T> => ({ kind: 'unavailable', cause: (error as Error)?.message ?? String(error) }))
          .then((outcome) => record(index, outcome));
      }
    };

    const onAbort = () => finish({ kind: 'unavailable', rateLimited: false, failures: failuresOf(targets, outcomes, targets.length) });
    if (options.signal?.aborted) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    launch();
  });
}
