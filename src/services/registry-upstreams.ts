// The ordered links registry → upstream (DESIGN §1): positions 1..N, unique per registry, contiguous
// after every change. Every change locks the registry's row and rewrites its positions in the same
// transaction, so concurrent changes of one registry queue (see registry-store.ts).
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import type { Registry, RegistryUpstream, Upstream } from '../db/schema.ts';
import { err, invalid, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { recordAudit } from './audit.ts';
import { parseId, validate } from './validation.ts';
import { canSee } from '../auth/policy.ts';
import { authorize, authorizeFound, notFound } from './access.ts';
import { guarded, linksOf, lockRegistries, lockUpstreams, transact, writePositions } from './registry-store.ts';
import type { Trx } from './registry-store.ts';
import { toUpstreamView } from './upstreams.ts';
import type { UpstreamInput, UpstreamService, UpstreamView } from './upstreams.ts';

export interface RegistryUpstreamView {
  id: number;
  registry_id: number;
  upstream_id: number;
  position: number;
  upstream: UpstreamView;
  created_at: number;
  updated_at: number;
}

export interface RegistryUpstreamServiceDeps {
  db: Db;
  limits: { upstreamsPerRegistry: number };
  /** Creates the upstream of createUpstreamForRegistry (validation, encryption, duplicates, audit). */
  upstreams: UpstreamService;
  /** Told every change of a registry's upstream list, after it committed. */
  changes: ChangeFeed;
  now?: () => number;
}

const positionSchema = z.object({
  position: z.number('must be a whole number').int('must be a whole number').min(1, 'must be at least 1'),
});

function toView(link: RegistryUpstream, upstream: Upstream): RegistryUpstreamView {
  return {
    id: link.id,
    registry_id: link.registry_id,
    upstream_id: link.upstream_id,
    position: link.position,
    upstream: toUpstreamView(upstream),
    created_at: link.created_at,
    updated_at: link.updated_at,
  };
}

function alreadyLinked() {
  return err('conflict', 'this upstream is already linked to this registry', { fields: { upstream_id: ['is already linked to this registry'] } });
}

type LinkAbility = 'update_virtual_registry' | 'read_virtual_registry';

export class RegistryUpstreamService {
  readonly #db: Db;
  readonly #limit: number;
  readonly #upstreams: UpstreamService;
  readonly #changes: ChangeFeed;
  readonly #now: () => number;

  constructor(deps: RegistryUpstreamServiceDeps) {
    this.#db = deps.db;
    this.#limit = deps.limits.upstreamsPerRegistry;
    this.#upstreams = deps.upstreams;
    this.#changes = deps.changes;
    this.#now = deps.now ?? Date.now;
  }

  /** Creates an upstream in the registry's group and links it last, in one transaction. */
  async createUpstreamForRegistry(actor: Actor, registryId: number | string, input: UpstreamInput): Promise<Result<RegistryUpstreamView>> {
    const registry = await guarded(() => this.#findRegistry(actor, registryId, 'update_virtual_registry'));
    if (!registry.ok) return registry;
    const groupId = registry.value.group_id;
    const allowed = authorize(actor, 'create_virtual_registry', { groupId }, 'registry');
    if (!allowed.ok) return allowed;
    const prepared = await this.#upstreams.prepare(input);
    if (!prepared.ok) return prepared;
    return this.#changed(registry.value.id, await transact(this.#db, async (trx) => {
      // Lock order group → registry (insertPrepared locks the group; lock it first here).
      const upstream = await this.#upstreams.insertPrepared(trx, actor, groupId, prepared.value);
      if (!upstream.ok) return upstream;
      const links = await this.#lockedLinks(trx, registry.value.id);
      if (!links.ok) return links;
      return this.#append(trx, actor, registry.value, links.value, upstream.value);
    }));
  }

  /** Links an upstream of the registry's group after the registry's last upstream. */
  async link(actor: Actor, registryId: number | string, rawUpstreamId: number | string): Promise<Result<RegistryUpstreamView>> {
    const registry = await guarded(() => this.#findRegistry(actor, registryId, 'update_virtual_registry'));
    if (!registry.ok) return registry;
    const upstream = await guarded(async () => {
      const id = parseId(rawUpstreamId);
      const row = id === null ? undefined : await this.#db.selectFrom('upstreams').select(['id', 'group_id']).where('id', '=', id).executeTakeFirst();
      if (!row || !canSee(actor, { groupId: row.group_id })) return notFound('upstream');
      if (row.group_id !== registry.value.group_id) return invalid({ upstream_id: ["must be an upstream of the registry's group"] });
      return ok(row);
    });
    if (!upstream.ok) return upstream;
    const upstreamId = upstream.value.id;
    return this.#changed(registry.value.id, await transact(this.#db, async (trx) => {
      const links = await this.#lockedLinks(trx, registry.value.id);
      if (!links.ok) return links;
      // Lock order registry → upstream; a concurrent destroy of the upstream either waits or wins.
      const [stillThere] = await lockUpstreams(trx, [upstreamId]);
      if (stillThere === undefined) return notFound('upstream');
      const row = await trx.selectFrom('upstreams').selectAll().where('id', '=', upstreamId).executeTakeFirstOrThrow();
      return this.#append(trx, actor, registry.value, links.value, row);
    }, alreadyLinked()));
  }

  /** Moves a link to `position` (1..N); the others shift to keep 1..N. */
  async move(actor: Actor, rawLinkId: number | string, position: number): Promise<Result<RegistryUpstreamView>> {
    const link = await guarded(() => this.#findLink(actor, rawLinkId, 'update_virtual_registry'));
    if (!link.ok) return link;
    const linkId = link.value.id;
    const parsed = validate(positionSchema, { position });
    if (!parsed.ok) return parsed;
    return this.#changed(link.value.registry_id, await transact(this.#db, async (trx) => {
      const links = await this.#lockedLinks(trx, link.value.registry_id);
      if (!links.ok) return links;
      const from = links.value.findIndex((l) => l.id === linkId);
      if (from < 0) return notFound('link');
      if (position > links.value.length) return invalid({ position: [`must be between 1 and ${links.value.length}`] });
      const ordered = [...links.value];
      const [moving] = ordered.splice(from, 1);
      ordered.splice(position - 1, 0, moving);
      const now = this.#now();
      await writePositions(trx, ordered, now);
      await recordAudit(trx, actor, {
        groupId: moving.group_id, action: 'registry_upstream.move', targetType: 'registry_upstream', targetId: linkId,
        details: { registry_id: moving.registry_id, upstream_id: moving.upstream_id, before: { position: from + 1 }, after: { position } },
      });
      return this.#view(trx, linkId);
    }));
  }

  /** Removes a link and closes the gap; the upstream itself stays. Returns the link as it was. */
  async unlink(actor: Actor, rawLinkId: number | string): Promise<Result<RegistryUpstreamView>> {
    const link = await guarded(() => this.#findLink(actor, rawLinkId, 'update_virtual_registry'));
    if (!link.ok) return link;
    const linkId = link.value.id;
    return this.#changed(link.value.registry_id, await transact(this.#db, async (trx) => {
      const links = await this.#lockedLinks(trx, link.value.registry_id);
      if (!links.ok) return links;
      const removed = links.value.find((l) => l.id === linkId);
      if (!removed) return notFound('link');
      const view = await this.#view(trx, linkId);
      await trx.deleteFrom('registry_upstreams').where('id', '=', linkId).execute();
      await writePositions(trx, links.value.filter((l) => l.id !== linkId), this.#now());
      await recordAudit(trx, actor, {
        groupId: removed.group_id, action: 'registry_upstream.destroy', targetType: 'registry_upstream', targetId: linkId,
        details: { registry_id: removed.registry_id, upstream_id: removed.upstream_id, before: { position: removed.position } },
      });
      return view;
    }));
  }

  async listForRegistry(actor: Actor, registryId: number | string): Promise<Result<RegistryUpstreamView[]>> {
    return guarded(async () => {
      const registry = await this.#findRegistry(actor, registryId, 'read_virtual_registry');
      if (!registry.ok) return registry;
      const rows = await this.#db.selectFrom('registry_upstreams')
        .innerJoin('upstreams', 'upstreams.id', 'registry_upstreams.upstream_id')
        .selectAll('upstreams')
        .select([
          'registry_upstreams.id as link_id', 'registry_upstreams.registry_id', 'registry_upstreams.upstream_id', 'registry_upstreams.position',
          'registry_upstreams.created_at as link_created_at', 'registry_upstreams.updated_at as link_updated_at',
        ])
        .where('registry_upstreams.registry_id', '=', registry.value.id)
        .orderBy('registry_upstreams.position')
        .execute();
      return ok(rows.map((r) => toView(
        { id: r.link_id, group_id: r.group_id, registry_id: r.registry_id, upstream_id: r.upstream_id, position: r.position, created_at: r.link_created_at, updated_at: r.link_updated_at },
        r,
      )));
    });
  }

  /** Locks the registry and reads its links by position; not_found when it was deleted meanwhile. */
  async #lockedLinks(trx: Trx, registryId: number): Promise<Result<RegistryUpstream[]>> {
    const [stillThere] = await lockRegistries(trx, [registryId]);
    if (stillThere === undefined) return notFound('registry');
    return ok(await linksOf(trx, registryId));
  }

  /** Inserts the link at N + 1 (links are contiguous 1..N under the registry's lock). */
  async #append(trx: Trx, actor: Actor, registry: Registry, links: RegistryUpstream[], upstream: Upstream): Promise<Result<RegistryUpstreamView>> {
    if (links.some((l) => l.upstream_id === upstream.id)) return alreadyLinked();
    if (links.length >= this.#limit) return err('limit_reached', `a registry may have at most ${this.#limit} upstreams`);
    const now = this.#now();
    const link = await trx.insertInto('registry_upstreams')
      .values({ group_id: registry.group_id, registry_id: registry.id, upstream_id: upstream.id, position: links.length + 1, created_at: now, updated_at: now })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(trx, actor, {
      groupId: registry.group_id, action: 'registry_upstream.create', targetType: 'registry_upstream', targetId: link.id,
      details: { registry_id: registry.id, upstream_id: upstream.id, after: { position: link.position } },
    });
    return ok(toView(link, upstream));
  }

  async #view(trx: Trx, linkId: number): Promise<Result<RegistryUpstreamView>> {
    const link = await trx.selectFrom('registry_upstreams').selectAll().where('id', '=', linkId).executeTakeFirstOrThrow();
    const upstream = await trx.selectFrom('upstreams').selectAll().where('id', '=', link.upstream_id).executeTakeFirstOrThrow();
    return ok(toView(link, upstream));
  }

  /** Tells every cache (of every replica) once the change committed. */
  async #changed<T>(registryId: number, result: Result<T>): Promise<Result<T>> {
    if (result.ok) await this.#changes.publish({ kind: 'registry_upstreams', registryId });
    return result;
  }

  async #findRegistry(actor: Actor, rawId: number | string, ability: LinkAbility): Promise<Result<Registry>> {
    return authorizeFound(actor, rawId, ability, 'registry', (id) => this.#db.selectFrom('registries').selectAll().where('id', '=', id).executeTakeFirst());
  }

  async #findLink(actor: Actor, rawId: number | string, ability: LinkAbility): Promise<Result<RegistryUpstream>> {
    return authorizeFound(actor, rawId, ability, 'link', (id) => this.#db.selectFrom('registry_upstreams').selectAll().where('id', '=', id).executeTakeFirst());
  }
}
