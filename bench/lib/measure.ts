// Timing, summaries (median and spread) and the peak resident memory of a process.
import { readFileSync, writeFileSync } from 'node:fs';

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function summarize(values: number[]): Summary {
  if (values.length === 0) throw new Error('no values to summarize');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs: values.length };
}

/** Seconds `work` took. */
export async function timed(work: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function statusField(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The resident memory split into anonymous memory (heaps) and file pages (the binary, libraries), in MB of 10^6 bytes. */
export function residentParts(pid: number): string {
  const mb = (field: 'RssAnon' | 'RssFile') => Math.round((statusField(pid, field) ?? NaN) / 1e6);
  return `anonymous ${mb('RssAnon')} MB, file pages ${mb('RssFile')} MB`;
}

/** Resident bytes of a process now (VmRSS). */
export function residentBytes(pid: number): number {
  const rss = statusField(pid, 'VmRSS');
  if (rss === null) throw new Error(`cannot read the resident memory of process ${pid}`);
  return rss;
}

/**
 * The peak resident set of a process over a period: its high-water mark (VmHWM) after resetting it
 * through /proc/<pid>/clear_refs, and RSS sampled every 50 ms as a floor (and the fallback where the
 * reset is not allowed).
 */
export class PeakMemory {
  readonly #pid: number;
  readonly #hwmReset: boolean;
  #sampledPeak = 0;
  #timer: NodeJS.Timeout;

  constructor(pid: number) {
    this.#pid = pid;
    let reset = false;
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
      reset = true;
    } catch {
      // not permitted here: sampling alone
    }
    this.#hwmReset = reset;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 50);
  }

  #sample(): void {
    const rss = statusField(this.#pid, 'VmRSS');
    if (rss !== null && rss > this.#sampledPeak) this.#sampledPeak = rss;
  }

  /** Peak resident bytes since construction. */
  stop(): number {
    clearInterval(this.#timer);
    this.#sample();
    const hwm = this.#hwmReset ? statusField(this.#pid, 'VmHWM') : null;
    return Math.max(this.#sampledPeak, hwm ?? 0);
  }
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux for user space). */
const CLOCK_TICKS_PER_SECOND = 100;

function cpuTimes(pid: number): { user: number; system: number } {
  // Fields after the command name (which may hold spaces, hence from the last ')'): utime is the
  // 14th field of the line, stime the 15th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLOCK_TICKS_PER_SECOND, system: Number(fields[12]) / CLOCK_TICKS_PER_SECOND };
}

/** CPU time (user + system) a process used over a period: what it took from the clients on a shared machine. */
export class CpuTime {
  readonly #pid: number;
  readonly #start: { user: number; system: number };

  constructor(pid: number) {
    this.#pid = pid;
    this.#start = cpuTimes(pid);
  }

  /** User and system CPU seconds since construction, apart. */
  stopParts(): { user: number; system: number } {
    const now = cpuTimes(this.#pid);
    return { user: now.user - this.#start.user, system: now.system - this.#start.system };
  }

  /** CPU seconds since construction. */
  stop(): number {
    const parts = this.stopParts();
    return parts.user + parts.system;
  }
}
