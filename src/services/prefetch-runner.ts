// Runs prefetch jobs (prefetch-jobs.ts) on this replica: claims a queued job from the table (a
// compare-and-set, so one replica runs it), reads its manifests through the pull path (an index down to
// the platforms asked), then pulls every blob through the pull path too, so that a prefetch is an
// ordinary miss: one upstream fetch per object with single flight, verified, committed, counted. The
// blob's bytes are drained, counted as progress. Progress goes to the table every PROGRESS_MS; that write
// is the heartbeat, and when it finds the job no longer running under this owner (canceled, or taken
// over after a stall) the job stops. A running job without a heartbeat for STALE_MS lost its replica:
// it is queued again (the objects it had filled are hits the second time), at most MAX_ATTEMPTS times.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SYSTEM } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import type { PrefetchJob } from '../db/schema.ts';
import { PeriodicTask } from '../lib/periodic-task.ts';
import type { Logger } from '../log.ts';
import { INDEX_TYPES, MANIFEST_ACCEPT } from '../oci/media-types.ts';
import { parseDigest } from '../oci/reference.ts';
import type { PullService } from './pull.ts';
import { parseImageReference, parsePlatform } from './prefetch-jobs.ts';
import type { Platform } from './prefetch-jobs.ts';
import type { PullRegistry } from './registries.ts';
import type { RegistryService } from './registries.ts';

const CHECK_MS = 2_000;
const PROGRESS_MS = 500;
const STALE_MS = 30_000;
const MAX_ATTEMPTS = 3;
/** Blobs pulled at once per job. */
const BLOBS_AT_ONCE = 3;
/** Jobs run at once per replica. */
const JOBS_AT_ONCE = 2;
/** Failures named in the job's error. */
const ERRORS_KEPT = 5;

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface ManifestDocument {
  mediaType?: string;
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
}

class Stopped extends Error {}

/** `linux/arm64` matches `linux/arm64/v8`; a variant asked for must match. */
export function platformMatches(wanted: Platform, found: Descriptor['platform']): boolean {
  if (!found) return false;
  return found.os === wanted.os && found.architecture === wanted.architecture && (wanted.variant === undefined || found.variant === wanted.variant);
}

/** One job's run: what it counts, and how it stops. */
class JobRun {
  totalObjects = 0;
  doneObjects = 0;
  failedObjects = 0;
  totalBytes = 0;
  doneBytes = 0;
  readonly errors: string[] = [];
  readonly abort = new AbortController();

  fail(what: string, message: string): void {
    this.failedObjects++;
    if (this.errors.length < ERRORS_KEPT) this.errors.push(`${what}: ${message}`);
  }

  check(): void {
    if (this.abort.signal.aborted) throw new Stopped();
  }
}

export class PrefetchRunner {
  readonly owner = `${process.pid}-${randomBytes(6).toString('hex')}`;
  readonly #db: Db;
  readonly #pull: Pick<PullService, 'pullFrom'>;
  readonly #registries: Pick<RegistryService, 'findForPullById'>;
  readonly #logger: Logger;
  readonly #task: PeriodicTask<void>;
  readonly #running = new Map<number, { run: JobRun; done: Promise<void> }>();
  #stopping = false;

  constructor(deps: { db: Db; pull: Pick<PullService, 'pullFrom'>; registries: Pick<RegistryService, 'findForPullById'>; logger: Logger; checkMs?: number }) {
    this.#db = deps.db;
    this.#pull = deps.pull;
    this.#registries = deps.registries;
    this.#logger = deps.logger;
    this.#task = new PeriodicTask({ name: 'prefetch runner', intervalMs: deps.checkMs ?? CHECK_MS, run: () => this.#tick(), logger: deps.logger });
  }

  start(): void {
    this.#task.start();
  }

  /** Jobs running on this replica now. */
  get running(): number {
    return this.#running.size;
  }

  /** Looks for queued jobs now (a job was just created). */
  poke(): void {
    // Only where the runner runs: a CLI that queues a job leaves it to the servers.
    if (this.#task.started && !this.#stopping) this.#task.runNow().catch(() => {});
  }

  /** Stops taking jobs; the jobs running here are queued again for another replica (or the next start). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#task.stop();
    for (const { run } of this.#running.values()) run.abort.abort();
    await Promise.all([...this.#running.values()].map((job) => job.done));
    await this.#db.updateTable('prefetch_jobs').set({ status: 'queued', owner: null, heartbeat_at: null, updated_at: Date.now() })
      .where('owner', '=', this.owner).where('status', '=', 'running').execute().catch(() => {});
  }

  async #tick(): Promise<void> {
    if (this.#stopping) return;
    const now = Date.now();
    // Jobs whose replica stopped writing progress: queued again, or failed after MAX_ATTEMPTS starts.
    await this.#db.updateTable('prefetch_jobs').set({ status: 'failed', owner: null, finished_at: now, updated_at: now, error: `the replica running it stopped ${MAX_ATTEMPTS} times` })
      .where('status', '=', 'running').where('heartbeat_at', '<', now - STALE_MS).where('attempts', '>=', MAX_ATTEMPTS).execute();
    await this.#db.updateTable('prefetch_jobs').set({ status: 'queued', owner: null, heartbeat_at: null, updated_at: now })
      .where('status', '=', 'running').where('heartbeat_at', '<', now - STALE_MS).execute();
    while (this.#running.size < JOBS_AT_ONCE && !this.#stopping) {
      const job = await this.#claim();
      if (!job) return;
      const run = new JobRun();
      const done = this.#run(job, run).finally(() => this.#running.delete(job.id));
      this.#running.set(job.id, { run, done });
    }
  }

  /** The oldest queued job, now running here; null when there is none (or another replica took it first). */
  async #claim(): Promise<PrefetchJob | null> {
    for (;;) {
      const next = await this.#db.selectFrom('prefetch_jobs').select('id').where('status', '=', 'queued').orderBy('id').limit(1).executeTakeFirst();
      if (!next) return null;
      const now = Date.now();
      const claimed = await this.#db.updateTable('prefetch_jobs')
        .set((eb) => ({
          status: 'running',
          owner: this.owner,
          heartbeat_at: now,
          started_at: now,
          attempts: eb('attempts', '+', 1),
          total_objects: 0,
          done_objects: 0,
          failed_objects: 0,
          total_bytes: 0,
          done_bytes: 0,
          error: null,
          updated_at: now,
        }))
        .where('id', '=', next.id).where('status', '=', 'queued')
        .returningAll().executeTakeFirst();
      if (claimed) return claimed;
    }
  }

  async #run(job: PrefetchJob, run: JobRun): Promise<void> {
    const heartbeat = setInterval(() => void this.#progress(job.id, run), PROGRESS_MS);
    let outcome: 'succeeded' | 'failed' | null = null;
    try {
      const registry = await this.#registries.findForPullById(job.registry_id);
      if (!registry) throw new Error('the registry no longer exists');
      const platforms = (JSON.parse(job.platforms) as string[]).map((text) => parsePlatform(text)!);
      const blobs = new Map<string, { image: string; size: number }>();
      for (const text of JSON.parse(job.images) as string[]) {
        const reference = parseImageReference(text)!;
        await this.#manifest(run, registry, reference.image, reference.reference, platforms, blobs, true);
      }
      for (const blob of blobs.values()) {
        run.totalObjects++;
        run.totalBytes += blob.size;
      }
      const queue = [...blobs.entries()];
      await Promise.all(Array.from({ length: Math.min(BLOBS_AT_ONCE, queue.length) }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) await this.#blob(run, registry, next[1].image, next[0]);
      }));
      outcome = run.failedObjects > 0 ? 'failed' : 'succeeded';
    } catch (error) {
      if (!(error instanceof Stopped)) {
        run.errors.unshift((error as Error).message);
        outcome = 'failed';
      }
    } finally {
      clearInterval(heartbeat);
    }
    if (outcome) await this.#progress(job.id, run, outcome);
    else await this.#stoppedCounts(job.id, run);
    this.#logger.info({ job: job.id, outcome: outcome ?? 'stopped', objects: run.doneObjects, bytes: run.doneBytes, failed: run.failedObjects }, 'prefetch job ended');
  }

  /** Reads one manifest (counted as an object); an index continues with the platforms asked, an image with its blobs. */
  async #manifest(run: JobRun, registry: PullRegistry, image: string, reference: string, platforms: Platform[], blobs: Map<string, { image: string; size: number }>, top: boolean): Promise<void> {
    run.check();
    run.totalObjects++;
    const what = `${image}${reference.includes(':') ? '@' : ':'}${reference}`;
    const pulled = await this.#pull.pullFrom(registry, { groupPath: registry.group.path, registryName: registry.registry.name, image }, {
      actor: SYSTEM, name: `${registry.group.path}/${registry.registry.name}/${image}`, kind: 'manifest', reference, method: 'GET', accept: MANIFEST_ACCEPT,
    });
    if (!pulled.ok || (!pulled.value.body && !pulled.value.bytes)) {
      run.fail(what, pulled.ok ? 'no body' : pulled.message);
      return;
    }
    // A manifest held in memory comes as its bytes; any other as a stream.
    let bytes = pulled.value.bytes;
    if (!bytes) {
      const chunks: Buffer[] = [];
      for await (const chunk of pulled.value.body!) chunks.push(chunk as Buffer);
      bytes = Buffer.concat(chunks);
    }
    run.totalBytes += bytes.length;
    run.doneBytes += bytes.length;
    run.doneObjects++;
    let document: ManifestDocument;
    try {
      document = JSON.parse(bytes.toString('utf8')) as ManifestDocument;
    } catch {
      run.fail(what, 'the manifest is not JSON');
      return;
    }
    if (INDEX_TYPES.has(pulled.value.mediaType) || Array.isArray(document.manifests)) {
      if (!top) return; // An index inside an index: not followed.
      for (const child of document.manifests ?? []) {
        if (!child.digest || !parseDigest(child.digest)) continue;
        // Without platforms, everything; with them, only those (attestations, unknown/unknown, are left out).
        if (platforms.length > 0 && !platforms.some((platform) => platformMatches(platform, child.platform))) continue;
        await this.#manifest(run, registry, image, child.digest, platforms, blobs, false);
      }
      return;
    }
    for (const descriptor of [document.config, ...(document.layers ?? [])]) {
      if (!descriptor?.digest || !parseDigest(descriptor.digest) || blobs.has(descriptor.digest)) continue;
      blobs.set(descriptor.digest, { image, size: Number.isSafeInteger(descriptor.size) ? descriptor.size! : 0 });
    }
  }

  /** Pulls one blob through the pull path and drains it, counting its bytes as they pass. */
  async #blob(run: JobRun, registry: PullRegistry, image: string, digest: string): Promise<void> {
    run.check();
    const pulled = await this.#pull.pullFrom(registry, { groupPath: registry.group.path, registryName: registry.registry.name, image }, {
      actor: SYSTEM, name: `${registry.group.path}/${registry.registry.name}/${image}`, kind: 'blob', reference: digest, method: 'GET',
    });
    if (!pulled.ok) {
      run.fail(digest, pulled.message);
      return;
    }
    const size = pulled.value.size ?? 0;
    // A pre-signed redirect (S3): the object is stored already.
    if (!pulled.value.body) {
      run.doneBytes += size;
      run.doneObjects++;
      return;
    }
    let passed = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        passed += chunk.length;
        run.doneBytes += chunk.length;
        done();
      },
    });
    try {
      await pipeline(pulled.value.body, sink, { signal: run.abort.signal });
      run.doneObjects++;
    } catch (error) {
      run.doneBytes -= passed;
      if (run.abort.signal.aborted) throw new Stopped();
      run.fail(digest, (error as Error).message);
    }
  }

  /** A job canceled while it ran here keeps the counts it had reached (not if another replica took it over). */
  async #stoppedCounts(jobId: number, run: JobRun): Promise<void> {
    await this.#db.updateTable('prefetch_jobs').set({
      ...this.#counts(run),
      owner: null,
      updated_at: Date.now(),
    }).where('id', '=', jobId).where('owner', '=', this.owner).where('status', '=', 'canceled').execute().catch((error: unknown) => {
      this.#logger.warn({ err: error, job: jobId }, 'prefetch progress not written');
    });
  }

  #counts(run: JobRun) {
    return {
      total_objects: run.totalObjects,
      done_objects: run.doneObjects,
      failed_objects: run.failedObjects,
      total_bytes: run.totalBytes,
      done_bytes: run.doneBytes,
      error: run.errors.length > 0 ? run.errors.join('; ') : null,
    };
  }

  /** Writes progress (the heartbeat), or the outcome; stops the run when the job is no longer its to run. */
  async #progress(jobId: number, run: JobRun, outcome?: 'succeeded' | 'failed'): Promise<void> {
    const now = Date.now();
    try {
      const result = await this.#db.updateTable('prefetch_jobs').set({
        ...this.#counts(run),
        heartbeat_at: now,
        updated_at: now,
        ...(outcome ? { status: outcome, owner: null, finished_at: now } : {}),
      }).where('id', '=', jobId).where('owner', '=', this.owner).where('status', '=', 'running').executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) run.abort.abort();
    } catch (error) {
      this.#logger.warn({ err: error, job: jobId }, 'prefetch progress not written');
    }
  }
}
