// `manifold prefetch <group>/<registry> <image>… [--platform <os/arch[/variant]>]… [--detach]`: queues a
// prefetch job (as the API does) and follows it until it ends, with a progress bar on a terminal (a line
// per tenth otherwise). A server replica runs the job (prefetch-runner.ts); Ctrl-C cancels it.
import { SYSTEM } from '../auth/policy.ts';
import type { PrefetchJobService, PrefetchJobView } from '../services/prefetch-jobs.ts';
import { FINISHED } from '../services/prefetch-jobs.ts';
import type { Result } from '../result.ts';
import { formatBytes } from './storage.ts';

const POLL_MS = 500;
/** Queued this long: say that a server has to run it. */
const WAITING_HINT_MS = 10_000;
const BAR_WIDTH = 24;

export function progressLine(job: PrefetchJobView): string {
  const { done_bytes: done, total_bytes: total, done_objects: objects, total_objects: totalObjects, failed_objects: failed } = job.progress;
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`;
  return `${bar} ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${objects}/${totalObjects} objects${failed > 0 ? `, ${failed} failed` : ''}  ${job.status}`;
}

export interface FollowIo {
  stderr: (text: string) => void;
  isTty: boolean;
}

/** Polls the job until it has finished, drawing its progress; `cancel` (Ctrl-C) asks for its cancellation once. */
export async function followJob(jobs: PrefetchJobService, job: PrefetchJobView, io: FollowIo): Promise<PrefetchJobView> {
  let canceling = false;
  const onInterrupt = () => {
    if (canceling) return;
    canceling = true;
    io.stderr(`${io.isTty ? '\n' : ''}canceling prefetch job ${job.id}\n`);
    void jobs.cancel(SYSTEM, job.id);
  };
  process.on('SIGINT', onInterrupt);
  const started = Date.now();
  let hinted = false;
  let lastTenth = -1;
  let lastStatus = '';
  try {
    for (;;) {
      const line = progressLine(job);
      if (io.isTty) {
        io.stderr(`\r\x1b[2K${line}`);
      } else {
        const tenth = job.progress.total_bytes > 0 ? Math.floor((job.progress.done_bytes / job.progress.total_bytes) * 10) : 0;
        if (tenth !== lastTenth || job.status !== lastStatus) io.stderr(`${line}\n`);
        lastTenth = tenth;
        lastStatus = job.status;
      }
      if (FINISHED.has(job.status)) break;
      if (job.status === 'queued' && !hinted && Date.now() - started > WAITING_HINT_MS) {
        hinted = true;
        io.stderr(`${io.isTty ? '\n' : ''}still queued: a running server (manifold serve) picks prefetch jobs up within a few seconds\n`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const next: Result<PrefetchJobView> = await jobs.get(SYSTEM, job.id);
      if (next.ok) job = next.value;
    }
  } finally {
    process.off('SIGINT', onInterrupt);
    if (io.isTty) io.stderr('\n');
  }
  return job;
}

export function describeJob(job: PrefetchJobView): string {
  const p = job.progress;
  const what = `prefetch job ${job.id} ${job.status}: ${p.done_objects}/${p.total_objects} objects, ${formatBytes(p.done_bytes)} of ${formatBytes(p.total_bytes)}`;
  return job.error ? `${what}\n${job.error}` : what;
}
