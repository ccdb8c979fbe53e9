// The instance's mirror routes (DESIGN §3.6): an upstream registry host as clients name it (`docker.io`,
// the `ns` containerd and podman send) → the registry that answers for it; one route may be the
// default (requests without `ns`, Docker's registry-mirrors). Instance admins own them.
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import type { MirrorRoute } from '../db/schema.ts';
import { canonicalRegistryHost } from '../oci/registry-host.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { authorize, notFound } from './access.ts';
import { recordAudit } from './audit.ts';
import { guarded, transact } from './registry-store.ts';
import type { Trx } from './registry-store.ts';
import { parseId, validate } from './validation.ts';

export interface MirrorRouteView {
  id: number;
  host: string;
  /** Null once the registry was deleted. */
  registry_id: number | null;
  /** `<group>/<registry>`, null once the registry was deleted. */
  registry_path: string | null;
  default: boolean;
  created_at: number;
  updated_at: number;
}

export interface MirrorRouteInput {
  host: string;
  registry_id: number;
  default?: boolean;
}

export type MirrorRouteUpdate = Partial<MirrorRouteInput>;

const hostSchema = z.string('must be a string').transform((value, context) => {
  const host = canonicalRegistryHost(value);
  if (host === null) context.addIssue({ code: 'custom', message: 'must be a registry host such as docker.io, ghcr.io or registry.example.com:5000' });
  return host ?? z.NEVER;
});
const registryIdSchema = z.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id');
const createSchema = z.object({ host: hostSchema, registry_id: registryIdSchema, default: z.boolean('must be true or false').optional() }, 'must be an object');
const updateSchema = z.object({ host: hostSchema.optional(), registry_id: registryIdSchema.optional(), default: z.boolean('must be true or false').optional() }, 'must be an object');

function hostTaken(host: string) {
  return err('conflict', `a mirror route for ${host} already exists`, { fields: { host: ['already has a route'] } });
}

function view(row: MirrorRoute, registryPath: string | null): MirrorRouteView {
  return { id: row.id, host: row.host, registry_id: row.registry_id, registry_path: registryPath, default: row.is_default === 1, created_at: row.created_at, updated_at: row.updated_at };
}

function audited(row: MirrorRoute) {
  return { host: row.host, registry_id: row.registry_id, default: row.is_default === 1 };
}

export class MirrorRouteService {
  readonly #db: Db;
  /** Told every change of the table once it committed, so that routing (of every replica) sees it at once. */
  readonly #changes: ChangeFeed;
  readonly #now: () => number;

  constructor(deps: { db: Db; changes: ChangeFeed; now?: () => number }) {
    this.#db = deps.db;
    this.#changes = deps.changes;
    this.#now = deps.now ?? Date.now;
  }

  /** Every route, by host (a short list: one per upstream registry an instance mirrors). */
  async list(actor: Actor): Promise<Result<MirrorRouteView[]>> {
    const allowed = authorize(actor, 'admin_instance', 'instance', 'mirror route');
    if (!allowed.ok) return allowed;
    return guarded(async () => {
      const rows = await this.#db.selectFrom('mirror_routes').selectAll().orderBy('host').execute();
      const paths = await registryPaths(this.#db, rows.map((row) => row.registry_id));
      return ok(rows.map((row) => view(row, row.registry_id === null ? null : (paths.get(row.registry_id) ?? null))));
    });
  }

  async get(actor: Actor, rawId: number | string): Promise<Result<MirrorRouteView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance', 'mirror route');
    if (!allowed.ok) return allowed;
    return guarded(() => this.#read(this.#db, rawId));
  }

  /** The route of this host (any of its spellings), e.g. for the CLI's `mirror route remove docker.io`. */
  async getByHost(actor: Actor, rawHost: string): Promise<Result<MirrorRouteView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance', 'mirror route');
    if (!allowed.ok) return allowed;
    const host = canonicalRegistryHost(rawHost);
    if (host === null) return notFound('mirror route');
    return guarded(async () => {
      const row = await this.#db.selectFrom('mirror_routes').select('id').where('host', '=', host).executeTakeFirst();
      return row ? this.#read(this.#db, row.id) : notFound('mirror route');
    });
  }

  async create(actor: Actor, input: MirrorRouteInput): Promise<Result<MirrorRouteView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance', 'mirror route');
    if (!allowed.ok) return allowed;
    const parsed = validate(createSchema, input);
    if (!parsed.ok) return parsed;
    const { host, registry_id: registryId, default: isDefault = false } = parsed.value;
    const created = await transact(this.#db, async (trx) => {
      if (!(await registryExists(trx, registryId))) return invalid({ registry_id: ['no such registry'] }, `registry ${registryId} does not exist`);
      const now = this.#now();
      if (isDefault) await trx.updateTable('mirror_routes').set({ is_default: 0, updated_at: now }).where('is_default', '=', 1).execute();
      const row = await trx.insertInto('mirror_routes')
        .values({ host, registry_id: registryId, is_default: isDefault ? 1 : 0, created_at: now, updated_at: now })
        .returningAll().executeTakeFirstOrThrow();
      await recordAudit(trx, actor, { groupId: null, action: 'mirror_route.create', targetType: 'mirror_route', targetId: row.id, details: { after: audited(row) } });
      return this.#read(trx, row.id);
    }, hostTaken(host));
    if (created.ok) await this.#changes.publish({ kind: 'mirror_routes' });
    return created;
  }

  async update(actor: Actor, rawId: number | string, input: MirrorRouteUpdate): Promise<Result<MirrorRouteView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance', 'mirror route');
    if (!allowed.ok) return allowed;
    const id = parseId(rawId);
    if (id === null) return notFound('mirror route');
    const parsed = validate(updateSchema, input);
    if (!parsed.ok) return parsed;
    const changes = parsed.value;
    const updated = await transact(this.#db, async (trx) => {
      const before = await trx.selectFrom('mirror_routes').selectAll().where('id', '=', id).executeTakeFirst();
      if (!before) return notFound('mirror route');
      if (changes.registry_id !== undefined && !(await registryExists(trx, changes.registry_id))) {
        return invalid({ registry_id: ['no such registry'] }, `registry ${changes.registry_id} does not exist`);
      }
      const now = this.#now();
      if (changes.default === true) await trx.updateTable('mirror_routes').set({ is_default: 0, updated_at: now }).where('is_default', '=', 1).where('id', '<>', id).execute();
      const after = await trx.updateTable('mirror_routes')
        .set({
          host: changes.host ?? before.host,
          registry_id: changes.registry_id ?? before.registry_id,
          is_default: changes.default === undefined ? before.is_default : changes.default ? 1 : 0,
          updated_at: now,
        })
        .where('id', '=', id).returningAll().executeTakeFirstOrThrow();
      await recordAudit(trx, actor, { groupId: null, action: 'mirror_route.update', targetType: 'mirror_route', targetId: id, details: { before: audited(before), after: audited(after) } });
      return this.#read(trx, id);
    }, hostTaken(changes.host ?? ''));
    if (updated.ok) await this.#changes.publish({ kind: 'mirror_routes' });
    return updated;
  }

  async destroy(actor: Actor, rawId: number | string): Promise<Result<MirrorRouteView>> {
    const allowed = authorize(actor, 'admin_instance', 'instance', 'mirror route');
    if (!allowed.ok) return allowed;
    const id = parseId(rawId);
    if (id === null) return notFound('mirror route');
    const destroyed = await transact(this.#db, async (trx) => {
      const found = await this.#read(trx, id);
      if (!found.ok) return found;
      const row = await trx.selectFrom('mirror_routes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await trx.deleteFrom('mirror_routes').where('id', '=', id).execute();
      await recordAudit(trx, actor, { groupId: null, action: 'mirror_route.destroy', targetType: 'mirror_route', targetId: id, details: { before: audited(row) } });
      return found;
    });
    if (destroyed.ok) await this.#changes.publish({ kind: 'mirror_routes' });
    return destroyed;
  }

  async #read(db: Db | Trx, rawId: number | string): Promise<Result<MirrorRouteView>> {
    const id = parseId(rawId);
    const row = id === null ? undefined : await db.selectFrom('mirror_routes').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return notFound('mirror route');
    const paths = await registryPaths(db, [row.registry_id]);
    return ok(view(row, row.registry_id === null ? null : (paths.get(row.registry_id) ?? null)));
  }
}

async function registryExists(db: Db | Trx, id: number): Promise<boolean> {
  return (await db.selectFrom('registries').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
}

/** `<group>/<registry>` of these registries, by id. */
async function registryPaths(db: Db | Trx, ids: (number | null)[]): Promise<Map<number, string>> {
  const wanted = [...new Set(ids.filter((id): id is number => id !== null))];
  if (wanted.length === 0) return new Map();
  const rows = await db.selectFrom('registries').innerJoin('groups', 'groups.id', 'registries.group_id')
    .select(['registries.id', 'groups.path', 'registries.name']).where('registries.id', 'in', wanted).execute();
  return new Map(rows.map((row) => [row.id, `${row.path}/${row.name}`]));
}
