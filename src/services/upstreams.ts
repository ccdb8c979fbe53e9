// Upstreams of a group (DESIGN §1, §3.4): remote registries with optional credentials, encrypted at
// rest and write-only (results say whether there are credentials, never what the password is).
import { sql } from 'kysely';
import { z } from 'zod';
import type { Actor } from '../auth/policy.ts';
import type { CredentialsCipher } from '../auth/credentials-cipher.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { Db } from '../db/connect.ts';
import type { Upstream } from '../db/schema.ts';
import type { UpstreamTarget } from '../upstream/types.ts';
import { checkUpstreamUrl, normalizeUpstreamUrl } from '../upstream/url.ts';
import { freshnessInputSchema, hoursOfPolicy, mergePolicy, policyFromHours, storedPolicy } from './freshness.ts';
import type { FreshnessInput, FreshnessPolicy } from './freshness.ts';
import type { UpstreamHealth, UpstreamHealthView } from './upstream-health.ts';
import { err, invalid, ok } from '../result.ts';
import type { FieldErrors, Result } from '../result.ts';
import { authorizeFound, authorizeGroup, notFound } from './access.ts';
import { recordAudit } from './audit.ts';
import { descriptionSchema as descriptionText, freeTextNameSchema, offsetOf, paginationSchema, validate } from './validation.ts';
import type { Page } from './validation.ts';
import { closeGaps, guarded, lockGroup, lockRegistries, lockUpstreams, markEntriesForDestruction, transact } from './registry-store.ts';
import type { Trx } from './registry-store.ts';

export const MAX_CACHE_VALIDITY_HOURS = 8760;
const DEFAULT_CACHE_VALIDITY_HOURS = 24;

/** An upstream as services return it: never the password, never its ciphertext. */
export interface UpstreamView {
  id: number;
  group_id: number;
  name: string;
  description: string | null;
  url: string;
  username: string | null;
  has_credentials: boolean;
  token_url: string | null;
  /** The simple form of `freshness`: whole hours, 0 = pinned (never revalidate). */
  cache_validity_hours: number;
  freshness: FreshnessPolicy;
  /** How this process sees the upstream now (circuit, rate limit); only on `get`. */
  health?: UpstreamHealthView;
  created_at: number;
  updated_at: number;
}

export interface UpstreamInput {
  name: string;
  description?: string | null;
  /** http(s), without credentials, query or fragment; a trailing `/v2` is tolerated. */
  url: string;
  /** With `password`, or neither. */
  username?: string | null;
  password?: string | null;
  /** Token endpoint to use instead of the challenge's realm (same URL rules). */
  token_url?: string | null;
  /** 0 = never revalidate tags; default 24, at most 8760. The alias of freshness.max_age (in hours) and pin. */
  cache_validity_hours?: number;
  /** The freshness policy; fields left out keep their value (or the default); `rules` replaces the list. */
  freshness?: FreshnessInput;
}

/**
 * Fields left out stay as they are. A changed `url` drops the stored credentials unless `username` and
 * `password` are given again; `username: null, password: null` removes them; one without the other is invalid.
 */
export type UpstreamUpdate = Partial<UpstreamInput>;

/** A validated, normalised upstream ready to insert; the password is already encrypted. */
export interface PreparedUpstream {
  name: string;
  description: string | null;
  url: string;
  username: string | null;
  /** Kept only to compare with the group's other upstreams (duplicates); never stored or returned. */
  password: string | null;
  passwordEncrypted: string | null;
  tokenUrl: string | null;
  cacheValidityHours: number;
  freshness: FreshnessPolicy;
}

/** Something whose pull lookups must be forgotten when an upstream changes. */
export interface UpstreamServiceDeps {
  db: Db;
  cipher: CredentialsCipher;
  /** Allow loopback, private and link-local upstream hosts (configuration `upstream.allowPrivate`). */
  allowPrivate: boolean;
  /** Told every change of an upstream, after it committed. */
  changes: ChangeFeed;
  /** Upstream health of this process, shown by `get`. */
  health?: Pick<UpstreamHealth, 'view'>;
  now?: () => number;
}

const nameSchema = freeTextNameSchema;
const descriptionSchema = descriptionText(1024).nullable();
const usernameSchema = z.string('must be a string').min(1, 'must not be empty').max(255, 'must be at most 255 characters').nullable();
// Registry passwords are often long tokens (a GCP service account key is a few KB of JSON).
const passwordSchema = z.string('must be a string').min(1, 'must not be empty').max(16_384, 'must be at most 16384 characters').nullable();
const cacheValiditySchema = z.number('must be a whole number of hours')
  .int('must be a whole number of hours')
  .min(0, 'must be at least 0')
  .max(MAX_CACHE_VALIDITY_HOURS, `must be at most ${MAX_CACHE_VALIDITY_HOURS}`);

/** URL syntax here; the address check (which resolves names) runs after validation. */
const urlSchema = z.string('must be a string').transform((value, ctx) => {
  const normalized = normalizeUpstreamUrl(value);
  if (normalized.ok) return normalized.value;
  ctx.addIssue({ code: 'custom', message: normalized.message });
  return z.NEVER;
});

const createSchema = z.object({
  name: nameSchema,
  description: descriptionSchema.optional(),
  url: urlSchema,
  username: usernameSchema.optional(),
  password: passwordSchema.optional(),
  token_url: urlSchema.nullable().optional(),
  cache_validity_hours: cacheValiditySchema.optional(),
  freshness: freshnessInputSchema.optional(),
}, 'must be an object');

const updateSchema = createSchema.partial();

const listSchema = paginationSchema.extend({
  /** Part of the name, case-insensitive. */
  search: z.string('must be a string').max(255, 'must be at most 255 characters').optional(),
});

export type UpstreamListQuery = z.input<typeof listSchema>;

function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/**
 * Username and password go together; the message lands on the one that is missing. An update must
 * give both or neither (`null` for both removes the credentials).
 */
function credentialPairErrors(input: unknown): FieldErrors {
  if (typeof input !== 'object' || input === null) return {};
  const { username, password } = input as { username?: unknown; password?: unknown };
  if (isPresent(password) && !isPresent(username)) return { username: ['is required when a password is given'] };
  if (isPresent(username) && !isPresent(password)) return { password: ['is required when a username is given'] };
  if (username === undefined && password !== undefined) return { username: ['must be given together with password'] };
  if (password === undefined && username !== undefined) return { password: ['must be given together with username'] };
  return {};
}

/** The schema and the pair rule together, so that the caller hears about every field at once. */
function validateUpstream<T>(schema: z.ZodType<T>, input: unknown): Result<T> {
  const parsed = validate(schema, input);
  const pair = credentialPairErrors(input);
  if (parsed.ok && Object.keys(pair).length === 0) return parsed;
  const fields: FieldErrors = { ...(parsed.ok ? {} : parsed.fields) };
  for (const [field, messages] of Object.entries(pair)) fields[field] = [...(fields[field] ?? []), ...messages];
  return invalid(fields);
}

/** The policy after applying `cache_validity_hours` (its alias: hours as max_age, 0 as pin) and then `freshness`. */
function policyOf(base: FreshnessPolicy, hours: number | undefined, freshness: FreshnessInput | undefined): FreshnessPolicy {
  let policy = base;
  if (hours !== undefined) policy = { ...policy, max_age: hours === 0 ? policy.max_age : hours * 3600, pin: hours === 0 };
  return freshness ? mergePolicy(policy, freshness) : policy;
}

export function toUpstreamView(row: Upstream): UpstreamView {
  return {
    id: row.id,
    group_id: row.group_id,
    name: row.name,
    description: row.description,
    url: row.url,
    username: row.username,
    has_credentials: row.password_encrypted !== null,
    token_url: row.token_url,
    cache_validity_hours: row.cache_validity_hours,
    freshness: storedPolicy(row.cache_validity_hours, row.freshness),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** Audit details: what an operator needs to follow changes, without secrets (the username is not one). */
function auditState(row: Upstream) {
  return {
    name: row.name,
    url: row.url,
    username: row.username,
    has_credentials: row.password_encrypted !== null,
    token_url: row.token_url,
    cache_validity_hours: row.cache_validity_hours,
    freshness: storedPolicy(row.cache_validity_hours, row.freshness),
  };
}

function duplicateConflict() {
  return err('conflict', 'an upstream with this URL and these credentials already exists in this group', {
    fields: { url: ['an upstream with this URL and these credentials already exists in this group'] },
  });
}

type UpstreamAbility = 'read_virtual_registry' | 'update_virtual_registry' | 'destroy_virtual_registry';

export class UpstreamService {
  readonly #db: Db;
  readonly #cipher: CredentialsCipher;
  readonly #allowPrivate: boolean;
  readonly #changes: ChangeFeed;
  readonly #health: UpstreamServiceDeps['health'];
  readonly #now: () => number;

  constructor(deps: UpstreamServiceDeps) {
    this.#db = deps.db;
    this.#cipher = deps.cipher;
    this.#allowPrivate = deps.allowPrivate;
    this.#changes = deps.changes;
    this.#health = deps.health;
    this.#now = deps.now ?? Date.now;
  }

  async create(actor: Actor, groupId: number | string, input: UpstreamInput): Promise<Result<UpstreamView>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, groupId, 'create_virtual_registry'));
    if (!group.ok) return group;
    const prepared = await this.prepare(input);
    if (!prepared.ok) return prepared;
    const created = await transact(this.#db, (trx) => this.insertPrepared(trx, actor, group.value.id, prepared.value));
    return created.ok ? ok(toUpstreamView(created.value)) : created;
  }

  /** Whether the actor may create upstreams in the group, and so test an unsaved one there. */
  async authorizeCreate(actor: Actor, groupId: number | string): Promise<Result<undefined>> {
    const group = await guarded(() => authorizeGroup(this.#db, actor, groupId, 'create_virtual_registry'));
    return group.ok ? ok() : group;
  }

  async get(actor: Actor, upstreamId: number | string): Promise<Result<UpstreamView>> {
    return guarded(async () => {
      const row = await this.#find(actor, upstreamId, 'read_virtual_registry');
      if (!row.ok) return row;
      const view = toUpstreamView(row.value);
      return ok(this.#health ? { ...view, health: this.#health.view(view.id) } : view);
    });
  }

  /** The group's upstreams by id, optionally those whose name contains `search`, a page at a time. */
  async list(actor: Actor, groupId: number | string, query: UpstreamListQuery = {}): Promise<Result<Page<UpstreamView>>> {
    return guarded(async () => {
      const group = await authorizeGroup(this.#db, actor, groupId, 'read_virtual_registry');
      if (!group.ok) return group;
      const parsed = validate(listSchema, query);
      if (!parsed.ok) return parsed;
      const { search, ...pagination } = parsed.value;
      let scoped = this.#db.selectFrom('upstreams').where('group_id', '=', group.value.id);
      if (search) {
        // LIKE with its own wildcards escaped: the search is a plain substring.
        const pattern = `%${search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        scoped = scoped.where(sql<boolean>`lower(name) like ${pattern} escape '\\'`);
      }
      const [{ total }, rows] = await Promise.all([
        scoped.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
        scoped.selectAll().orderBy('id').limit(pagination.per_page).offset(offsetOf(pagination)).execute(),
      ]);
      return ok({ items: rows.map(toUpstreamView), total: Number(total), page: pagination.page, per_page: pagination.per_page });
    });
  }

  async update(actor: Actor, upstreamId: number | string, input: UpstreamUpdate): Promise<Result<UpstreamView>> {
    const found = await guarded(() => this.#find(actor, upstreamId, 'update_virtual_registry'));
    if (!found.ok) return found;
    const parsed = validateUpstream(updateSchema, input);
    if (!parsed.ok) return parsed;
    const changes = parsed.value;
    const addressed = await this.#checkAddresses(changes.url, changes.token_url);
    if (!addressed.ok) return addressed;
    const credentialsGiven = changes.username !== undefined;
    const newPassword = changes.password ?? null;
    const newPasswordEncrypted = newPassword === null ? null : this.#cipher.encrypt(newPassword);
    const { id, group_id: groupId } = found.value;

    const updated = await transact(this.#db, async (trx) => {
      // Lock order group → upstream; the group's lock makes the duplicate check safe.
      await lockGroup(trx, groupId);
      const [stillThere] = await lockUpstreams(trx, [id]);
      if (stillThere === undefined) return notFound('upstream');
      const before = await trx.selectFrom('upstreams').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const url = changes.url ?? before.url;
      // Credentials belong to a host: a new URL drops them unless they are given again.
      let username = before.username;
      let stored = before.password_encrypted;
      if (credentialsGiven) {
        username = changes.username ?? null;
        stored = newPasswordEncrypted;
      } else if (url !== before.url) {
        username = null;
        stored = null;
      }
      const password = credentialsGiven ? newPassword : stored === null ? null : this.#cipher.decrypt(stored);
      const policy = policyOf(storedPolicy(before.cache_validity_hours, before.freshness), changes.cache_validity_hours, changes.freshness);
      if (await this.#duplicate(trx, groupId, url, username, password, id)) return duplicateConflict();
      const after = await trx.updateTable('upstreams')
        .set({
          name: changes.name ?? before.name,
          description: changes.description === undefined ? before.description : changes.description,
          url,
          username,
          password_encrypted: stored,
          token_url: changes.token_url === undefined ? before.token_url : changes.token_url,
          cache_validity_hours: hoursOfPolicy(policy),
          freshness: JSON.stringify(policy),
          updated_at: this.#now(),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordAudit(trx, actor, {
        groupId, action: 'upstream.update', targetType: 'upstream', targetId: id,
        details: { before: auditState(before), after: auditState(after) },
      });
      return ok(after);
    });
    if (!updated.ok) return updated;
    await this.#changes.publish({ kind: 'upstream', id });
    return ok(toUpstreamView(updated.value));
  }

  /**
   * Deletes the upstream: marks its live cache entries for the destroy worker, removes its links and
   * closes the gaps they leave in each registry's positions, all in one transaction.
   */
  async destroy(actor: Actor, upstreamId: number | string): Promise<Result<UpstreamView>> {
    const found = await guarded(() => this.#find(actor, upstreamId, 'destroy_virtual_registry'));
    if (!found.ok) return found;
    const id = found.value.id;
    const destroyed = await transact(this.#db, async (trx) => {
      const now = this.#now();
      const linkedRegistries = async () => {
        const rows = await trx.selectFrom('registry_upstreams').select('registry_id').where('upstream_id', '=', id).execute();
        return rows.map((r) => r.registry_id).sort((a, b) => a - b);
      };
      // Lock order registries → upstream (registry-store.ts).
      const registryIds = await linkedRegistries();
      await lockRegistries(trx, registryIds);
      const [stillThere] = await lockUpstreams(trx, [id]);
      if (stillThere === undefined) return notFound('upstream');
      // A registry linked between the first read and the upstream's lock: lock it as well (rare).
      const lateIds = (await linkedRegistries()).filter((registryId) => !registryIds.includes(registryId));
      await lockRegistries(trx, lateIds);
      const affected = [...registryIds, ...lateIds];
      const row = await trx.selectFrom('upstreams').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      const markedEntries = await markEntriesForDestruction(trx, [id], now);
      await trx.deleteFrom('registry_upstreams').where('upstream_id', '=', id).execute();
      for (const registryId of affected) await closeGaps(trx, registryId, now);
      await trx.deleteFrom('upstreams').where('id', '=', id).execute();
      await recordAudit(trx, actor, {
        groupId: row.group_id, action: 'upstream.destroy', targetType: 'upstream', targetId: id,
        details: { before: auditState(row), registry_ids: affected, marked_entries: markedEntries },
      });
      return ok(row);
    });
    if (!destroyed.ok) return destroyed;
    await this.#changes.publish({ kind: 'upstream', id }, { kind: 'cache_entries', upstreamIds: [id] });
    return ok(toUpstreamView(destroyed.value));
  }

  /** The upstream with its decrypted password, for the connection test (update_virtual_registry). */
  async getTarget(actor: Actor, upstreamId: number | string): Promise<Result<UpstreamTarget>> {
    return guarded(async () => {
      const row = await this.#find(actor, upstreamId, 'update_virtual_registry');
      if (!row.ok) return row;
      const { id, url, username, password_encrypted: stored, token_url: tokenUrl } = row.value;
      return ok({ id, url, username, password: stored === null ? null : this.#cipher.decrypt(stored), tokenUrl });
    });
  }

  /**
   * Validates and normalises a new upstream (syntax, addresses, the credential pair) and encrypts its
   * password. With `insertPrepared`, used by this service and by RegistryUpstreamService.
   */
  async prepare(input: UpstreamInput): Promise<Result<PreparedUpstream>> {
    const parsed = validateUpstream(createSchema, input);
    if (!parsed.ok) return parsed;
    const value = parsed.value;
    const addressed = await this.#checkAddresses(value.url, value.token_url);
    if (!addressed.ok) return addressed;
    const password = value.password ?? null;
    const policy = policyOf(policyFromHours(value.cache_validity_hours ?? DEFAULT_CACHE_VALIDITY_HOURS), undefined, value.freshness);
    return ok({
      name: value.name,
      description: value.description ?? null,
      url: value.url,
      username: value.username ?? null,
      password,
      passwordEncrypted: password === null ? null : this.#cipher.encrypt(password),
      tokenUrl: value.token_url ?? null,
      cacheValidityHours: hoursOfPolicy(policy),
      freshness: policy,
    });
  }

  /** Inserts a prepared upstream in the caller's transaction: locks the group, refuses duplicates, audits. */
  async insertPrepared(trx: Trx, actor: Actor, groupId: number, prepared: PreparedUpstream): Promise<Result<Upstream>> {
    if (!(await lockGroup(trx, groupId))) return notFound('group');
    if (await this.#duplicate(trx, groupId, prepared.url, prepared.username, prepared.password)) return duplicateConflict();
    const now = this.#now();
    const row = await trx.insertInto('upstreams')
      .values({
        group_id: groupId,
        name: prepared.name,
        description: prepared.description,
        url: prepared.url,
        username: prepared.username,
        password_encrypted: prepared.passwordEncrypted,
        token_url: prepared.tokenUrl,
        cache_validity_hours: prepared.cacheValidityHours,
        freshness: JSON.stringify(prepared.freshness),
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(trx, actor, { groupId, action: 'upstream.create', targetType: 'upstream', targetId: row.id, details: { after: auditState(row) } });
    return ok(row);
  }

  /** The upstream if the actor may see it (else not_found) and do this to it (else forbidden). */
  async #find(actor: Actor, rawId: number | string, ability: UpstreamAbility): Promise<Result<Upstream>> {
    return authorizeFound(actor, rawId, ability, 'upstream', (id) => this.#db.selectFrom('upstreams').selectAll().where('id', '=', id).executeTakeFirst());
  }

  /** Address rules for the (already normalised) URLs being set. */
  async #checkAddresses(url: string | undefined, tokenUrl: string | null | undefined): Promise<Result<undefined>> {
    const fields: FieldErrors = {};
    if (url !== undefined) {
      const checked = await checkUpstreamUrl(url, this.#allowPrivate);
      if (!checked.ok) fields.url = [checked.message];
    }
    if (tokenUrl) {
      const checked = await checkUpstreamUrl(tokenUrl, this.#allowPrivate);
      if (!checked.ok) fields.token_url = [checked.message];
    }
    return Object.keys(fields).length === 0 ? ok() : invalid(fields);
  }

  /** Same URL with the same credentials (or both without) in the group: the same upstream twice. */
  async #duplicate(trx: Trx, groupId: number, url: string, username: string | null, password: string | null, exceptId?: number): Promise<boolean> {
    const sameUrl = await trx.selectFrom('upstreams').select(['id', 'username', 'password_encrypted'])
      .where('group_id', '=', groupId).where('url', '=', url).execute();
    return sameUrl.some((other) => {
      if (other.id === exceptId || other.username !== username) return false;
      if (other.password_encrypted === null || password === null) return other.password_encrypted === password;
      return this.#cipher.decrypt(other.password_encrypted) === password;
    });
  }
}
