// Memory given back when the server goes quiet (issue 19). V8 keeps what a busy period made it allocate:
// the heap stays at the size the period grew it to, and the pages its collections freed stay resident in a
// page pool for reuse. Only a memory-reducing collection gives both back, and V8's own memory reducer starts
// one only when the committed heap has grown by some 10 MB since its last run, the pool not counted: after a
// manifest load (6,000 requests a second) a server that idles at 120 MB stayed at 170 MB for good, 30 MB
// of it in the pool. So `manifold serve` runs one such collection before it listens (start-up garbage),
// and another whenever the event loop has been quiet for a second and the resident memory has grown since
// the last one. Busy periods are left to V8's heuristics: a memory-reducing collection pauses the event
// loop for tens of milliseconds, which a pull in progress (mostly waiting on sockets and disk, so nearly
// quiet) must not pay: hence a low utilization bound, over two intervals in a row. It needs `--expose-gc`
// (set by `npm start`); without it, nothing.
import { performance } from 'node:perf_hooks';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { PeriodicTask } from './lib/periodic-task.ts';
import type { Logger } from './log.ts';

/** A memory-reducing full collection (`gc` with `--expose-gc`): true when it ran. */
export function collectAndRelease(): boolean {
  if (typeof globalThis.gc !== 'function') return false;
  globalThis.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return true;
}

export interface QuietReleaseOptions {
  /** How often the event loop's utilization and the resident memory are read. */
  intervalMs: number;
  /** Growth of the resident memory since the last release that makes a quiet interval release again. */
  growthBytes: number;
  /** Utilization of the event loop (0–1) over an interval below which it counts as quiet. */
  quietUtilization: number;
  /** Quiet intervals in a row before a release. */
  quietIntervals: number;
  logger: Pick<Logger, 'debug' | 'error'>;
  /** The resident memory now (tests); default: the process's. */
  residentBytes?: () => number;
  /** Runs the collection (tests); default: collectAndRelease. */
  collect?: () => boolean;
  /** Lets go of what is kept for reuse (spare buffers) just before the collection. */
  beforeCollect?: () => void;
}

export interface ReleaseReport {
  beforeBytes: number;
  afterBytes: number;
  ms: number;
}

/** Releases memory in quiet intervals after growth (see the top of this file). */
export class QuietRelease {
  readonly #options: QuietReleaseOptions;
  readonly #task: PeriodicTask<ReleaseReport | null>;
  readonly #resident: () => number;
  readonly #collect: () => boolean;
  #utilization: EventLoopUtilization = performance.eventLoopUtilization();
  #settledBytes: number;
  #quietInARow = 0;

  constructor(options: QuietReleaseOptions) {
    this.#options = options;
    this.#resident = options.residentBytes ?? (() => process.memoryUsage.rss());
    this.#collect = options.collect ?? collectAndRelease;
    this.#settledBytes = this.#resident();
    this.#task = new PeriodicTask({
      name: 'memory release',
      intervalMs: options.intervalMs,
      logger: options.logger,
      run: async () => this.check(),
      onResult: (report) => {
        if (report) options.logger.debug({ before_mb: Math.round(report.beforeBytes / 1e6), after_mb: Math.round(report.afterBytes / 1e6), ms: Math.round(report.ms) }, 'memory released after a busy period');
      },
    });
  }

  start(): void {
    this.#utilization = performance.eventLoopUtilization();
    this.#settledBytes = this.#resident();
    this.#task.start();
  }

  async stop(): Promise<void> {
    await this.#task.stop();
  }

  /**
   * One check: after `quietIntervals` quiet intervals in a row, with the resident memory grown by
   * `growthBytes` since the last release, a release. Its report, or null when there was none. `utilization` overrides the event loop's
   * reading over the interval (tests).
   */
  check(utilization?: number): ReleaseReport | null {
    const now = performance.eventLoopUtilization();
    const busy = utilization ?? performance.eventLoopUtilization(now, this.#utilization).utilization;
    this.#utilization = now;
    if (busy >= this.#options.quietUtilization) {
      this.#quietInARow = 0;
      return null;
    }
    this.#quietInARow++;
    const beforeBytes = this.#resident();
    // Memory that has shrunk (a trim of the C allocator, a pool reused) lowers the mark.
    if (beforeBytes < this.#settledBytes) this.#settledBytes = beforeBytes;
    if (beforeBytes < this.#settledBytes + this.#options.growthBytes) return null;
    if (this.#quietInARow < this.#options.quietIntervals) return null;
    const started = performance.now();
    this.#options.beforeCollect?.();
    if (!this.#collect()) return null;
    const ms = performance.now() - started;
    // What the collection could not give back (the C allocator's, a grown cache) is the new mark: no
    // collection again until the memory grows from there.
    this.#settledBytes = this.#resident();
    // The collection's own pause is not the next interval's work.
    this.#utilization = performance.eventLoopUtilization();
    return { beforeBytes, afterBytes: this.#settledBytes, ms };
  }
}
