// Virtual registries of a group (DESIGN §1): named endpoints with an ordered list of upstreams, and the
// lookup every pull starts with.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { CredentialsCipher } from '../auth/credentials-cipher.ts';
import type { Change, ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import type { Registry } from '../db/schema.ts';
import { isPathComponent, MAX_NAME_LENGTH } from '../oci/reference.ts';
import { canonicalHostname } from '../oci/registry-host.ts';
import { err, ok } from '../result.ts';
import type { Result } from '../result.ts';
import { recordAudit } from './audit.ts';
import { authorizeFound, authorizeGroup, denied, notFound } from './access.ts';
import { isDatabaseUnavailable } from './database.ts';
import { can } from '../auth/policy.ts';
import { descriptionSchema as descriptionText, validate } from './validation.ts';
import { storedPolicy } from './freshness.ts';
import type { FreshnessPolicy } from './freshness.ts';
import { BoundedCache } from '../lib/bounded-cache.ts';
import type { CacheStats } from '../lib/bounded-cache.ts';
import { guarded, lockGroup, lockRegistries, lockUpstreams, markEntriesForDestruction, transact } from './registry-store.ts';

export const PULL_CACHE_TTL_MS = 5_000;
export const OUTAGE_MEMORY_MS = 60_000;

export interface RegistryView {
  id: number;
  group_id: number;
  name: string;
  description: string | null;
  /** Pulls without credentials are allowed (from anonymous_networks). */
  anonymous_pull: boolean;
  /** CIDR ranges anonymous pulls may come from; empty = anywhere. */
  anonymous_networks: string[];
  /** Hostnames whose /v2 requests go to this registry (`docker pull <hostname>/<image>`). */
  hostnames: string[];
  created_at: number;
  updated_at: number;
}

export interface RegistryInput {
  /** One OCI path component: `hub` in `<host>/<group>/hub/<image>`. */
  name: string;
  description?: string | null;
  anonymous_pull?: boolean;
  anonymous_networks?: string[];
  /** Instance-wide names: only instance admins set them. */
  hostnames?: string[];
}

export type RegistryUpdate = Partial<RegistryInput>;

export interface RegistryDestroyed {
  registry: RegistryView;
  /** Upstreams that only this registry used, deleted with it. */
  destroyed_upstream_ids: number[];
  /** Live cache entries of those upstreams now waiting for the destroy worker. */
  marked_entries: number;
}

export interface PullUpstream {
  id: number;
  name: string;
  url: string;
  username: string | null;
  /** Decrypted. */
  password: string | null;
  tokenUrl: string | null;
  cacheValidityHours: number;
  freshness: FreshnessPolicy;
  position: number;
}

export interface PullRegistry {
  group: { id: number; path: string };
  registry: { id: number; name: string; anonymousPull: boolean; anonymousNetworks: readonly string[] };
  /** By position: the first is asked first. */
  upstreams: PullUpstream[];
}

export interface RegistryServiceDeps {
  db: Db;
  cipher: CredentialsCipher;
  /** Told every change of a registry, after it committed. */
  changes: ChangeFeed;
  limits: { registriesPerGroup: number; upstreamsPerRegistry: number };
  /**
   * How long findForPull remembers an answer; default 5 s, 0 turns the memory off. Changes drop it at
   * once (onChange, on every replica); the TTL bounds what a missed notification leaves.
   */
  pullCacheTtlMs?: number;
  /** How long after it was read an answer still serves while the database is unavailable; default 60 s. */
  outageMemoryMs?: number;
  now?: () => number;
}

const nameSchema = z.string('must be a string')
  .min(1, 'is required')
  .max(MAX_NAME_LENGTH, `must be at most ${MAX_NAME_LENGTH} characters`)
  .refine(isPathComponent, 'must be one lower-case path component: letters and digits, separated by ".", "_", "__" or "-"');
const descriptionSchema = descriptionText(1024).nullable();

/** A CIDR range (`10.0.0.0/8`, `2001:db8::/32`) or one address, in its canonical form. */
export const networkSchema = z.string('must be a string').max(64, 'must be at most 64 characters').transform((value, context) => {
  try {
    const [address, prefix] = value.includes('/') ? ipaddr.parseCIDR(value) : (() => {
      const parsed = ipaddr.parse(value);
      return [parsed, parsed.kind() === 'ipv4' ? 32 : 128] as const;
    })();
    return `${address.toString()}/${prefix}`;
  } catch {
    context.addIssue({ code: 'custom', message: 'must be a CIDR range such as 10.0.0.0/8 or an IP address' });
    return z.NEVER;
  }
});
const networksSchema = z.array(networkSchema, 'must be a list of CIDR ranges').max(100, 'must have at most 100 ranges');
const hostnamesSchema = z.array(
  z.string('must be a string').transform((value, context) => {
    const hostname = canonicalHostname(value);
    if (hostname === null) context.addIssue({ code: 'custom', message: 'must be a DNS name or IP address without a port' });
    return hostname ?? z.NEVER;
  }),
  'must be a list of hostnames',
).max(20, 'must have at most 20 hostnames');

const fields = {
  description: descriptionSchema.optional(),
  anonymous_pull: z.boolean('must be true or false').optional(),
  anonymous_networks: networksSchema.optional(),
  hostnames: hostnamesSchema.optional(),
};
const createSchema = z.object({ name: nameSchema, ...fields }, 'must be an object');
const updateSchema = z.object({ name: nameSchema.optional(), ...fields });

/** The stored anonymous_networks (a JSON array written by this service). */
function networksOf(row: Pick<Registry, 'anonymous_networks'>): string[] {
  try {
    const parsed: unknown = JSON.parse(row.anonymous_networks);
    return Array.isArray(parsed) ? parsed.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}

export function toRegistryView(row: Registry, hostnames: string[] = []): RegistryView {
  return {
    id: row.id, group_id: row.group_id, name: row.name, description: row.description,
    anonymous_pull: row.anonymous_pull === 1, anonymous_networks: networksOf(row), hostnames,
    created_at: row.created_at, updated_at: row.updated_at,
  };
}

/** The registry's fields as audit events record them. */
function audited(row: Registry, hostnames: string[]) {
  return { name: row.name, description: row.description, anonymous_pull: row.anonymous_pull === 1, anonymous_networks: networksOf(row), hostnames };
}

function hostnameTaken() {
  return err('conflict', 'a hostname is already claimed by another registry', { fields: { hostnames: ['a hostname is already claimed by another registry'] } });
}

/** Hostnames are instance-wide: claiming one is an instance admin's decision. */
function mayClaimHostnames(actor: Actor): boolean {
  return can(actor, 'admin_instance', 'instance');
}

function nameTaken(name: string) {
  return err('conflict', `a registry named ${name} already exists in this group`, { fields: { name: ['is already taken in this group'] } });
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) if (typeof child === 'object' && child !== null) deepFreeze(child);
  return Object.freeze(value);
}

export class RegistryService {
  /** The memory of findForPull, dropped by every change of what it holds (onChange). */
  readonly #pullCache: BoundedCache<PullRegistry | null>;
  readonly #db: Db;
  readonly #changes: ChangeFeed;
  readonly #cipher: CredentialsCipher;
  readonly #limits: RegistryServiceDeps['limits'];
  readonly #now: () => number;

  /** The registries the pull path read (for /metrics). */
  get pullMemory(): CacheStats {
    return this.#pullCache.stats;
  }

  constructor(deps: RegistryServiceDeps) {
    this.#db = deps.db;
    this.#changes = deps.changes;
    this.#cipher = deps.cipher;
    this.#limits = deps.limits;
    this.#now = deps.now ?? Date.now;
    // Bounded: unknown names must not grow it forever. Kept through a database outage (getStale).
    this.#pullCache = new BoundedCache({ maxEntries: 10_000, ttlMs: deps.pullCacheTtlMs ?? PULL_CACHE_TTL_MS, keepMs: deps.outageMemoryMs ?? OUTAGE_MEMORY_MS, now: this.#now });
  }

  /**
   * What findForPull remembers holds groups, registries, their upstream lists and upstreams (change feed):
   * a change drops only the answers it touches (and the "no such registry" ones, which a new registry or
   * group may end), so that the others keep standing in through an outage.
   */
  onChange(change: Change): void {
    switch (change.kind) {
      case 'registry':
        this.#pullCache.deleteWhere((found) => found === null || found.registry.id === change.id);
        break;
      case 'registry_upstreams':
        this.#pullCache.deleteWhere((found) => found?.registry.id === change.registryId);
        break;
      case 'upstream':
        this.#pullCache.deleteWhere((found) => found?.upstreams.some((upstream) => upstream.id === change.id) ?? false);
        break;
      case 'group':
        this.#pullCache.deleteWhere((found) => found === null || found.group.id === change.id);
        break;
      case 'all':
        this.#pullCache.clear();
        break;
      default:
        break;
    }
  }

  async create(actor: Actor, rawGroupId: number | string, input: RegistryInput): Promise<Result<RegistryView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, rawGroupId, 'create_virtual_registry'));
    if (!group.ok) return group;
    const groupId = group.value.id;
    const parsed = validate(createSchema, input);
    if (!parsed.ok) return parsed;
    const { name, description = null, anonymous_pull: anonymousPull = false, anonymous_networks: networks = [], hostnames = [] } = parsed.value;
    if (hostnames.length > 0 && !mayClaimHostnames(actor)) return denied(actor, 'only instance admins may give a registry hostnames');
    const created = await transact(this.#db, async (trx) => {
      // The group's lock makes count-then-insert safe against concurrent creations.
      if (!(await lockGroup(trx, groupId))) return notFound('group');
      const existing = await trx.selectFrom('registries').select('name').where('group_id', '=', groupId).execute();
      if (existing.some((r) => r.name === name)) return nameTaken(name);
      if (existing.length >= this.#limits.registriesPerGroup) {
        return err('limit_reached', `a group may have at most ${this.#limits.registriesPerGroup} registries`);
      }
      const now = this.#now();
      const row = await trx.insertInto('registries')
        .values({ group_id: groupId, name, description, anonymous_pull: anonymousPull ? 1 : 0, anonymous_networks: JSON.stringify(networks), created_at: now, updated_at: now })
        .returningAll()
        .executeTakeFirstOrThrow();
      const claimed = await writeHostnames(trx, row.id, hostnames, now);
      if (!claimed.ok) return claimed;
      await recordAudit(trx, actor, { groupId, action: 'registry.create', targetType: 'registry', targetId: row.id, details: { after: audited(row, hostnames) } });
      return ok(toRegistryView(row, [...new Set(hostnames)].sort()));
    }, nameTaken(name));
    if (!created.ok) return created;
    await this.#changes.publish({ kind: 'registry', id: created.value.id });
    return created;
  }

  async get(actor: Actor, registryId: number | string): Promise<Result<RegistryView>> {
    return guarded(async () => {
      const row = await this.#find(actor, registryId, 'read_virtual_registry');
      return row.ok ? ok(toRegistryView(row.value, await hostnamesOf(this.#db, [row.value.id]).then((all) => all.get(row.value.id) ?? []))) : row;
    });
  }

  /** All registries of the group (a handful: the per-group limit applies), by id. */
  async list(actor: Actor, groupId: number | string): Promise<Result<RegistryView[]>> {
    return guarded(async () => {
      const group = await authorizeGroup(this.#db, actor, groupId, 'read_virtual_registry');
      if (!group.ok) return group;
      const rows = await this.#db.selectFrom('registries').selectAll().where('group_id', '=', group.value.id).orderBy('id').execute();
      const hostnames = await hostnamesOf(this.#db, rows.map((row) => row.id));
      return ok(rows.map((row) => toRegistryView(row, hostnames.get(row.id) ?? [])));
    });
  }

  async update(actor: Actor, rawRegistryId: number | string, input: RegistryUpdate): Promise<Result<RegistryView>> {
    const found = await guarded(() => this.#find(actor, rawRegistryId, 'update_virtual_registry'));
    if (!found.ok) return found;
    const registryId = found.value.id;
    const parsed = validate(updateSchema, input);
    if (!parsed.ok) return parsed;
    const changes = parsed.value;
    if (changes.hostnames !== undefined && !mayClaimHostnames(actor)) return denied(actor, 'only instance admins may change a registry\'s hostnames');
    const updated = await transact(this.#db, async (trx) => {
      const before = await trx.selectFrom('registries').selectAll().where('id', '=', registryId).executeTakeFirst();
      if (!before) return notFound('registry');
      const hostnamesBefore = (await hostnamesOf(trx, [registryId])).get(registryId) ?? [];
      const now = this.#now();
      const after = await trx.updateTable('registries')
        .set({
          name: changes.name ?? before.name,
          description: changes.description === undefined ? before.description : changes.description,
          anonymous_pull: changes.anonymous_pull === undefined ? before.anonymous_pull : changes.anonymous_pull ? 1 : 0,
          anonymous_networks: changes.anonymous_networks === undefined ? before.anonymous_networks : JSON.stringify(changes.anonymous_networks),
          updated_at: now,
        })
        .where('id', '=', registryId)
        .returningAll()
        .executeTakeFirstOrThrow();
      let hostnames = hostnamesBefore;
      if (changes.hostnames !== undefined) {
        await trx.deleteFrom('registry_hostnames').where('registry_id', '=', registryId).execute();
        const claimed = await writeHostnames(trx, registryId, changes.hostnames, now);
        if (!claimed.ok) return claimed;
        hostnames = [...new Set(changes.hostnames)].sort();
      }
      await recordAudit(trx, actor, {
        groupId: before.group_id, action: 'registry.update', targetType: 'registry', targetId: registryId,
        details: { before: audited(before, hostnamesBefore), after: audited(after, hostnames) },
      });
      return ok(toRegistryView(after, hostnames));
    }, nameTaken(changes.name ?? found.value.name));
    if (!updated.ok) return updated;
    await this.#changes.publish({ kind: 'registry', id: registryId });
    return updated;
  }

  /**
   * Deletes the registry and the upstreams only it uses (upstreams linked to another registry stay),
   * marking those upstreams' cache entries for the destroy worker first, in one transaction.
   */
  async destroy(actor: Actor, rawRegistryId: number | string): Promise<Result<RegistryDestroyed>> {
    const found = await guarded(() => this.#find(actor, rawRegistryId, 'destroy_virtual_registry'));
    if (!found.ok) return found;
    const registryId = found.value.id;
    const destroyed = await transact(this.#db, async (trx) => {
      const now = this.#now();
      const [stillThere] = await lockRegistries(trx, [registryId]);
      if (stillThere === undefined) return notFound('registry');
      const row = await trx.selectFrom('registries').selectAll().where('id', '=', registryId).executeTakeFirstOrThrow();
      const linked = await trx.selectFrom('registry_upstreams').select('upstream_id').where('registry_id', '=', registryId).execute();
      // Locking the upstreams makes a concurrent link of one of them to another registry either land
      // first (the upstream is then shared and survives) or fail because the upstream is gone.
      const candidates = await lockUpstreams(trx, linked.map((l) => l.upstream_id));
      const shared = candidates.length === 0 ? [] : await trx.selectFrom('registry_upstreams').select('upstream_id')
        .where('upstream_id', 'in', candidates).where('registry_id', '<>', registryId).execute();
      const sharedIds = new Set(shared.map((s) => s.upstream_id));
      const exclusive = candidates.filter((id) => !sharedIds.has(id));
      const upstreams = exclusive.length === 0 ? [] : await trx.selectFrom('upstreams').select(['id', 'name', 'url']).where('id', 'in', exclusive).execute();
      const markedEntries = await markEntriesForDestruction(trx, exclusive, now);
      await trx.deleteFrom('registries').where('id', '=', registryId).execute();
      if (exclusive.length > 0) await trx.deleteFrom('upstreams').where('id', 'in', exclusive).execute();
      for (const upstream of upstreams) {
        await recordAudit(trx, actor, {
          groupId: row.group_id, action: 'upstream.destroy', targetType: 'upstream', targetId: upstream.id,
          details: { before: { name: upstream.name, url: upstream.url }, destroyed_with_registry_id: registryId },
        });
      }
      await recordAudit(trx, actor, {
        groupId: row.group_id, action: 'registry.destroy', targetType: 'registry', targetId: registryId,
        details: { before: { name: row.name, description: row.description }, destroyed_upstream_ids: exclusive, marked_entries: markedEntries },
      });
      return ok({ registry: toRegistryView(row), destroyed_upstream_ids: exclusive, marked_entries: markedEntries });
    });
    if (destroyed.ok) {
      const upstreamIds = destroyed.value.destroyed_upstream_ids;
      await this.#changes.publish(
        { kind: 'registry', id: registryId },
        ...upstreamIds.map((id) => ({ kind: 'upstream' as const, id })),
        ...(upstreamIds.length > 0 ? [{ kind: 'cache_entries' as const, upstreamIds }] : []),
      );
    }
    return destroyed;
  }

  /**
   * The registry `<groupPath>/<registryName>` with its upstreams by position (passwords decrypted), or
   * null when there is none. No permission check: the caller checks read_virtual_registry on the group.
   * One query, remembered for a few seconds: this runs on every pull. While the database is
   * unavailable the last answer read within the outage window stands in; without one the
   * DatabaseUnavailableError goes to the caller.
   */
  async findForPull(groupPath: string, registryName: string): Promise<PullRegistry | null> {
    return this.#findForPull(`${groupPath}/${registryName}`, (query) => query.where('groups.path', '=', groupPath).where('registries.name', '=', registryName));
  }

  /** findForPull by the registry's id (mirror routes and hostnames name registries by id); same memory. */
  async findForPullById(registryId: number): Promise<PullRegistry | null> {
    return this.#findForPull(`#${registryId}`, (query) => query.where('registries.id', '=', registryId));
  }

  async #findForPull(key: string, where: (query: PullQuery) => PullQuery): Promise<PullRegistry | null> {
    const remembered = this.#pullCache.get(key);
    if (remembered !== undefined) return remembered;
    try {
      return await this.#readForPull(key, where);
    } catch (error) {
      const lastKnown = isDatabaseUnavailable(error) ? this.#pullCache.getStale(key) : undefined;
      if (lastKnown === undefined) throw error;
      return lastKnown;
    }
  }

  async #readForPull(key: string, where: (query: PullQuery) => PullQuery): Promise<PullRegistry | null> {
    const generation = this.#pullCache.generation;
    const since = this.#now();
    const rows = await where(pullQuery(this.#db)).execute();
    let found: PullRegistry | null = null;
    if (rows.length > 0) {
      const first = rows[0];
      found = deepFreeze({
        group: { id: first.groupId, path: first.groupPath },
        registry: { id: first.registryId, name: first.registryName, anonymousPull: first.anonymous_pull === 1, anonymousNetworks: networksOf(first) },
        upstreams: rows.filter((r) => r.upstreamId !== null).map((r) => ({
          id: r.upstreamId as number,
          name: r.upstreamName as string,
          url: r.url as string,
          username: r.username,
          password: r.password_encrypted === null ? null : this.#cipher.decrypt(r.password_encrypted),
          tokenUrl: r.token_url,
          cacheValidityHours: r.cache_validity_hours as number,
          freshness: storedPolicy(r.cache_validity_hours as number, r.freshness),
          position: r.position as number,
        })),
      });
    }
    this.#pullCache.set(key, found, { generation, since });
    return found;
  }


  /** The registry if the actor may see it (else not_found) and do this to it (else forbidden). */
  async #find(actor: Actor, rawId: number | string, ability: 'read_virtual_registry' | 'update_virtual_registry' | 'destroy_virtual_registry'): Promise<Result<Registry>> {
    return authorizeFound(actor, rawId, ability, 'registry', (id) => this.#db.selectFrom('registries').selectAll().where('id', '=', id).executeTakeFirst());
  }
}

/** The one query behind findForPull: a registry, its group and its upstreams by position. */
function pullQuery(db: Db) {
  return db.selectFrom('groups')
    .innerJoin('registries', 'registries.group_id', 'groups.id')
    .leftJoin('registry_upstreams', 'registry_upstreams.registry_id', 'registries.id')
    .leftJoin('upstreams', 'upstreams.id', 'registry_upstreams.upstream_id')
    .select([
      'groups.id as groupId', 'groups.path as groupPath', 'registries.id as registryId', 'registries.name as registryName',
      'registry_upstreams.position', 'upstreams.id as upstreamId', 'upstreams.name as upstreamName', 'upstreams.url',
      'upstreams.username', 'upstreams.password_encrypted', 'upstreams.token_url', 'upstreams.cache_validity_hours', 'upstreams.freshness',
      'registries.anonymous_pull', 'registries.anonymous_networks',
    ])
    .orderBy('registry_upstreams.position');
}
type PullQuery = ReturnType<typeof pullQuery>;

/** The hostnames of these registries, sorted, by registry id. */
async function hostnamesOf(db: Db, registryIds: number[]): Promise<Map<number, string[]>> {
  const byRegistry = new Map<number, string[]>();
  if (registryIds.length === 0) return byRegistry;
  const rows = await db.selectFrom('registry_hostnames').select(['registry_id', 'hostname']).where('registry_id', 'in', registryIds).orderBy('hostname').execute();
  for (const row of rows) byRegistry.set(row.registry_id, [...(byRegistry.get(row.registry_id) ?? []), row.hostname]);
  return byRegistry;
}

/** Claims hostnames for a registry; one claimed by another registry is a conflict (and rolls back). */
async function writeHostnames(trx: Db, registryId: number, hostnames: string[], now: number): Promise<Result<undefined>> {
  const unique = [...new Set(hostnames)];
  if (unique.length === 0) return ok();
  const taken = await trx.selectFrom('registry_hostnames').select('hostname').where('hostname', 'in', unique).where('registry_id', '<>', registryId).execute();
  if (taken.length > 0) return hostnameTaken();
  await trx.insertInto('registry_hostnames').values(unique.map((hostname) => ({ registry_id: registryId, hostname, created_at: now }))).execute();
  return ok();
}
