/** Concurrent calls with the same key share one run of the work. */
export class SingleFlight<T> {
  #inflight = new Map<string, Promise<T>>();

  run(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.#inflight.get(key);
    if (existing) return existing;
    const running = work().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, running);
    return running;
  }
}
