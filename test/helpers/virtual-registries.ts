// Helpers for the registry, upstream and link service tests: one wired set of services over a test
// database, row counts (a refused call writes nothing), positions, cache entry rows.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ChangeFeed } from '../../src/db/change-feed.ts';
import { CredentialsCipher } from '../../src/auth/credentials-cipher.ts';
import type { Actor } from '../../src/auth/policy.ts';
import type { Db } from '../../src/db/connect.ts';
import { ROLES } from '../../src/db/schema.ts';
import type { CacheEntryStatus, RoleName } from '../../src/db/schema.ts';
import { RegistryService } from '../../src/services/registries.ts';
import { RegistryUpstreamService } from '../../src/services/registry-upstreams.ts';
import { UpstreamService } from '../../src/services/upstreams.ts';
import { insertGroup, insertMembership, insertUser, userActor } from './fixtures.ts';

export const LIMITS = { registriesPerGroup: 5, upstreamsPerRegistry: 5 };

export interface Services {
  cipher: CredentialsCipher;
  changes: ChangeFeed;
  registries: RegistryService;
  upstreams: UpstreamService;
  links: RegistryUpstreamService;
}

/** The three services wired as the application wires them (one change feed, which the pull cache hears). */
export function createServices(db: Db, options: { cipher?: CredentialsCipher; allowPrivate?: boolean; pullCacheTtlMs?: number; changes?: ChangeFeed } = {}): Services {
  const cipher = options.cipher ?? new CredentialsCipher(randomBytes(32));
  const changes = options.changes ?? new ChangeFeed();
  const registries = new RegistryService({ db, cipher, changes, limits: LIMITS, pullCacheTtlMs: options.pullCacheTtlMs });
  changes.subscribe((change) => registries.onChange(change));
  const upstreams = new UpstreamService({ db, cipher, changes, allowPrivate: options.allowPrivate ?? true });
  const links = new RegistryUpstreamService({ db, changes, limits: LIMITS, upstreams });
  return { cipher, changes, registries, upstreams, links };
}


/** The upstream ids of a registry by position, checking that positions are exactly 1..N. */
export async function orderOf(db: Db, registryId: number): Promise<number[]> {
  const rows = await db.selectFrom('registry_upstreams').select(['upstream_id', 'position']).where('registry_id', '=', registryId).orderBy('position').execute();
  assert.deepEqual(rows.map((r) => r.position), rows.map((_, index) => index + 1), `positions of registry ${registryId} are 1..N`);
  return rows.map((r) => r.upstream_id);
}


/** A group with a user of each role in it (and one outside), as API actors. */
export async function groupWithMembers(db: Db) {
  const group = await insertGroup(db);
  const actors = {} as Record<RoleName | 'outsider', Actor>;
  for (const role of Object.keys(ROLES) as RoleName[]) {
    const user = await insertUser(db);
    await insertMembership(db, group.id, user.id, role);
    actors[role] = userActor(user.id, [[group.id, ROLES[role]]], { channel: 'api' });
  }
  const outsider = await insertUser(db);
  actors.outsider = userActor(outsider.id, [], { channel: 'api' });
  return { group, actors };
}

export async function insertCacheEntry(db: Db, groupId: number, upstreamId: number, status: CacheEntryStatus = 0, size = 3): Promise<number> {
  const now = Date.now();
  const digest = `sha256:${randomBytes(32).toString('hex')}`;
  const row = await db.insertInto('cache_entries').values({
    group_id: groupId, upstream_id: upstreamId, relative_path: `/library/alpine/blobs/${digest}`, digest, size,
    content_type: 'application/octet-stream', upstream_etag: null, upstream_checked_at: now, downloaded_at: null,
    status, created_at: now, updated_at: now,
  }).returning('id').executeTakeFirstOrThrow();
  return row.id;
}

export async function auditEvents(db: Db) {
  return db.selectFrom('audit_events').selectAll().orderBy('id').execute();
}
