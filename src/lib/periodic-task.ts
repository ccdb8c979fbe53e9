// A periodic task: runs `run` every `intervalMs` from start() until stop(), never two runs at once, a run
// on demand with runNow(), and every failure of a timed run logged under the task's name. The one timer
// loop of the process (download counters, traffic, cache destruction, cleanup runs, lease heartbeats).
import type { Logger } from '../log.ts';

export interface PeriodicTaskOptions<T> {
  /** Names the task in logs. */
  name: string;
  intervalMs: number;
  run: () => Promise<T>;
  logger?: Pick<Logger, 'error'>;
  /** Called with the result of each timed run (e.g. to log what it did). */
  onResult?: (result: T) => void;
}

export class PeriodicTask<T = unknown> {
  readonly #options: PeriodicTaskOptions<T>;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<T> | null = null;
  /** A run asked for while another was going: it starts when that one ends (one at most). */
  #queued: Promise<T> | null = null;

  constructor(options: PeriodicTaskOptions<T>) {
    if (!(options.intervalMs > 0)) throw new Error(`${options.name}: the interval must be positive`);
    this.#options = options;
  }

  get started(): boolean {
    return this.#timer !== null;
  }

  /** True while a run is going. */
  get running(): boolean {
    return this.#running !== null;
  }

  /** Starts the timer (idempotent); it does not keep the process alive. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /**
   * A run that starts now, or right after the one going (requests meanwhile share it): what it returns,
   * or its error for the caller. The timer keeps its rhythm.
   */
  runNow(): Promise<T> {
    if (!this.#running) return this.#begin();
    this.#queued ??= this.#running.then(() => {}, () => {}).then(() => {
      this.#queued = null;
      return this.#begin();
    });
    return this.#queued;
  }

  /** Stops the timer and waits for the run going (and one queued), whatever they come to. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#queued?.catch(() => {});
    await this.#running?.catch(() => {});
  }

  #tick(): void {
    // A run still going when the next is due is not doubled.
    if (this.#running || this.#queued) return;
    this.#begin().then(
      (result) => this.#options.onResult?.(result),
      (error: unknown) => this.#options.logger?.error({ err: error, task: this.#options.name }, `${this.#options.name} failed; trying again at the next run`),
    );
  }

  #begin(): Promise<T> {
    let run: Promise<T>;
    try {
      run = this.#options.run();
    } catch (error) {
      run = Promise.reject(error as Error);
    }
    const tracked = run.finally(() => {
      if (this.#running === tracked) this.#running = null;
    });
    this.#running = tracked;
    return tracked;
  }
}
