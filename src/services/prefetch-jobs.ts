// Prefetch jobs (issue 18): fill a registry's cache with images, for the platforms asked, before anyone
// pulls them (a rollout warming its nodes' cache). This service is what the API and the CLI see:
// create (maintainers and above, audited), show, list, cancel (audited). The jobs live in the table
// prefetch_jobs, not in one replica's memory: every replica answers for every job, a cancel reaches the
// replica running it at its next progress write, and a job whose replica died is queued again
// (prefetch-runner.ts runs them).
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { Db } from '../db/connect.ts';
import type { PrefetchJob, PrefetchStatus } from '../db/schema.ts';
import { isValidName, parseReference } from '../oci/reference.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorizeFound, authorizeRegistry } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, transact } from './database.ts';
import { offsetOf, paginationSchema, validate } from './validation.ts';
import type { Page } from './validation.ts';

/** `library/alpine:3.20`, `library/alpine` (latest), `app@sha256:…`. */
export interface ImageReference {
  image: string;
  reference: string;
}

export function parseImageReference(text: string): ImageReference | null {
  const at = text.indexOf('@');
  let image: string;
  let reference: string;
  if (at >= 0) {
    image = text.slice(0, at);
    reference = text.slice(at + 1);
  } else {
    const colon = text.lastIndexOf(':');
    const tagged = colon > text.lastIndexOf('/');
    image = tagged ? text.slice(0, colon) : text;
    reference = tagged ? text.slice(colon + 1) : 'latest';
  }
  if (!isValidName(image)) return null;
  const parsed = parseReference(reference);
  if (!parsed || (at >= 0) !== (parsed.kind === 'digest')) return null;
  return { image, reference };
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const PLATFORM = /^([a-z0-9_.-]+)\/([a-z0-9_.-]+)(?:\/([a-z0-9_.-]+))?$/;

export function parsePlatform(text: string): Platform | null {
  const match = PLATFORM.exec(text);
  if (!match) return null;
  return match[3] ? { os: match[1], architecture: match[2], variant: match[3] } : { os: match[1], architecture: match[2] };
}

export const prefetchInputSchema = z.object({
  images: z.array(
    z.string('must be a string').refine((text) => parseImageReference(text) !== null, 'must be an image reference: <image>[:<tag>] or <image>@<digest>'),
    'must be a list of image references',
  ).min(1, 'must name at least one image').max(100, 'must name at most 100 images'),
  platforms: z.array(
    z.string('must be a string').refine((text) => parsePlatform(text) !== null, 'must be <os>/<architecture>[/<variant>], e.g. linux/amd64'),
    'must be a list of platforms',
  ).max(16, 'must name at most 16 platforms').default([]),
}, 'must be an object');
export type PrefetchInput = z.input<typeof prefetchInputSchema>;

export const PREFETCH_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const satisfies readonly PrefetchStatus[];
export const FINISHED: ReadonlySet<PrefetchStatus> = new Set(['succeeded', 'failed', 'canceled']);

export interface PrefetchJobView {
  id: number;
  registry_id: number;
  group_id: number;
  requested_by: string;
  images: string[];
  /** Empty: every platform. */
  platforms: string[];
  status: PrefetchStatus;
  /** Objects are manifests and blobs; the totals grow while the manifests are read. */
  progress: { total_objects: number; done_objects: number; failed_objects: number; total_bytes: number; done_bytes: number };
  error: string | null;
  attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
}

export function toPrefetchJobView(row: PrefetchJob): PrefetchJobView {
  return {
    id: row.id,
    registry_id: row.registry_id,
    group_id: row.group_id,
    requested_by: row.requested_by,
    images: JSON.parse(row.images) as string[],
    platforms: JSON.parse(row.platforms) as string[],
    status: row.status,
    progress: {
      total_objects: Number(row.total_objects),
      done_objects: Number(row.done_objects),
      failed_objects: Number(row.failed_objects),
      total_bytes: Number(row.total_bytes),
      done_bytes: Number(row.done_bytes),
    },
    error: row.error,
    attempts: Number(row.attempts),
    created_at: Number(row.created_at),
    started_at: row.started_at === null ? null : Number(row.started_at),
    finished_at: row.finished_at === null ? null : Number(row.finished_at),
    updated_at: Number(row.updated_at),
  };
}

function actorName(actor: Actor): string {
  switch (actor.kind) {
    case 'user':
      return actor.username;
    case 'group_token':
    case 'deploy_token':
      return `${actor.kind.replace('_', ' ')} ${actor.token.id}`;
    default:
      return actor.kind;
  }
}

export class PrefetchJobService {
  readonly #db: Db;
  /** Tells this replica's runner that a job is waiting (it also looks every few seconds). */
  #onQueued: () => void = () => {};

  constructor(deps: { db: Db }) {
    this.#db = deps.db;
  }

  set onQueued(listener: () => void) {
    this.#onQueued = listener;
  }

  /** Queues a prefetch of `images` into the registry's cache (update_virtual_registry: maintainers and above). */
  async create(actor: Actor, registryId: number | string, input: PrefetchInput): Promise<Result<PrefetchJobView>> {
    const created = await guarded(async () => {
      const found = await authorizeRegistry(this.#db, actor, registryId, 'update_virtual_registry');
      if (!found.ok) return found;
      const registry = found.value;
      const parsed = validate(prefetchInputSchema, input);
      if (!parsed.ok) return parsed;
      return transact(this.#db, async (trx) => {
        const now = Date.now();
        const row = await trx.insertInto('prefetch_jobs').values({
          registry_id: registry.id,
          group_id: registry.group_id,
          requested_by: actorName(actor),
          images: JSON.stringify(parsed.value.images),
          platforms: JSON.stringify(parsed.value.platforms),
          status: 'queued',
          created_at: now,
          updated_at: now,
        }).returningAll().executeTakeFirstOrThrow();
        await recordAudit(trx, actor, { groupId: registry.group_id, action: 'prefetch.create', targetType: 'prefetch_job', targetId: row.id, details: { registry_id: registry.id, images: parsed.value.images, platforms: parsed.value.platforms } });
        return ok(toPrefetchJobView(row));
      });
    });
    if (created.ok) this.#onQueued();
    return created;
  }

  /** One job (read_virtual_registry on its group). */
  async get(actor: Actor, jobId: number | string): Promise<Result<PrefetchJobView>> {
    return guarded(async () => {
      const job = await this.#visible(actor, jobId, 'read_virtual_registry');
      return job.ok ? ok(toPrefetchJobView(job.value)) : job;
    });
  }

  /** The registry's jobs, newest first (read_virtual_registry). */
  async list(actor: Actor, registryId: number | string, query: z.input<typeof paginationSchema> = {}): Promise<Result<Page<PrefetchJobView>>> {
    return guarded(async () => {
      const found = await authorizeRegistry(this.#db, actor, registryId, 'read_virtual_registry');
      if (!found.ok) return found;
      const registry = found.value;
      const pagination = validate(paginationSchema, query);
      if (!pagination.ok) return pagination;
      const scoped = this.#db.selectFrom('prefetch_jobs').where('registry_id', '=', registry.id);
      const [{ total }, rows] = await Promise.all([
        scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
        scoped.selectAll().orderBy('id', 'desc').limit(pagination.value.per_page).offset(offsetOf(pagination.value)).execute(),
      ]);
      return ok({ items: rows.map(toPrefetchJobView), total: Number(total), page: pagination.value.page, per_page: pagination.value.per_page });
    });
  }

  /**
   * Cancels a queued or running job (update_virtual_registry); the replica running it stops at its next
   * progress write (within a second). A finished job is a conflict.
   */
  async cancel(actor: Actor, jobId: number | string): Promise<Result<PrefetchJobView>> {
    return guarded(async () => {
      const job = await this.#visible(actor, jobId, 'update_virtual_registry');
      if (!job.ok) return job;
      return transact(this.#db, async (trx) => {
        const now = Date.now();
        const row = await trx.updateTable('prefetch_jobs').set({ status: 'canceled', finished_at: now, updated_at: now })
          .where('id', '=', job.value.id).where('status', 'in', ['queued', 'running'])
          .returningAll().executeTakeFirst();
        if (!row) return err('conflict', `the prefetch job has already ${job.value.status === 'canceled' ? 'been canceled' : job.value.status}`);
        await recordAudit(trx, actor, { groupId: row.group_id, action: 'prefetch.cancel', targetType: 'prefetch_job', targetId: row.id, details: { registry_id: row.registry_id, was: job.value.status, done_bytes: Number(row.done_bytes), total_bytes: Number(row.total_bytes) } });
        return ok(toPrefetchJobView(row));
      });
    });
  }

  async #visible(actor: Actor, rawId: number | string, ability: 'read_virtual_registry' | 'update_virtual_registry'): Promise<Result<PrefetchJob>> {
    return authorizeFound(actor, rawId, ability, 'prefetch job', (id) => this.#db.selectFrom('prefetch_jobs').selectAll().where('id', '=', id).executeTakeFirst());
  }
}
