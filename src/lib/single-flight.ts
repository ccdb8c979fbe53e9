// Single flight: concurrent calls with the same key share one run of the work. The one implementation
// for the whole process (manifest fills, revalidations, background refreshes, tag lists, upstream token
// fetches, database probes); a key is free again as soon as its run has settled.

export class SingleFlight<T> {
  readonly #inflight = new Map<string, Promise<T>>();

  /** The run under way for this key, or a new one of `work`. A synchronous throw is a rejection. */
  run(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key);
    if (existing) return existing;
    let started: Promise<T>;
    try {
      started = work();
    } catch (error) {
      started = Promise.reject(error as Error);
    }
    // Registered synchronously: every caller until it settles joins this run.
    const running = started.finally(() => {
      if (this.#inflight.get(key) === running) this.#inflight.delete(key);
    });
    this.#inflight.set(key, running);
    return running;
  }

  has(key: string): boolean {
    return this.#inflight.has(key);
  }

  /** Runs under way. */
  get size(): number {
    return this.#inflight.size;
  }

  /** Waits until every run under way now has settled (failures included); for shutdown. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#inflight.values()]);
  }
}
