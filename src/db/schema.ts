// Row types of the data model (DESIGN §1). Times are epoch milliseconds and booleans 0/1 on both
// databases, so that services never branch on the dialect for values.
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Id = Generated<number>;
type CreatedAt = ColumnType<number, number | undefined, never>;

export const ROLES = { guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50 } as const;
export type RoleName = keyof typeof ROLES;
export type AccessLevel = (typeof ROLES)[RoleName];

export const CACHE_ENTRY_STATUS = { default: 0, processing: 1, pending_destruction: 2, error: 3 } as const;
export type CacheEntryStatus = (typeof CACHE_ENTRY_STATUS)[keyof typeof CACHE_ENTRY_STATUS];

export type TokenKind = 'personal' | 'group' | 'deploy';

export interface UsersTable {
  id: Id;
  username: string;
  email: string | null;
  password_hash: string;
  admin: 0 | 1;
  blocked: 0 | 1;
  created_at: CreatedAt;
  updated_at: number;
}

export interface GroupsTable {
  id: Id;
  /** URL path component: `acme` in `/acme/<registry>/<image>`. */
  path: string;
  name: string;
  description: string | null;
  /** Bytes the group's live entries may hold (unique digests); null = only the instance's limit. */
  storage_quota_bytes: Generated<number | null>;
  created_at: CreatedAt;
  updated_at: number;
}

export interface MembershipsTable {
  id: Id;
  group_id: number;
  user_id: number;
  access_level: AccessLevel;
  created_at: CreatedAt;
  updated_at: number;
}

export interface AccessTokensTable {
  id: Id;
  kind: TokenKind;
  /** Owner of a personal token; the bot user is not modelled, group and deploy tokens have none. */
  user_id: number | null;
  /** Group of a group or deploy token. */
  group_id: number | null;
  name: string;
  /** Role of a group token (deploy tokens pull only). */
  access_level: AccessLevel | null;
  /** JSON array of scopes. */
  scopes: string;
  /** SHA-256 hex of the plaintext; the plaintext is shown once and never stored. */
  token_digest: string;
  /** The first characters of the plaintext (prefix + a few), to recognise a token in lists. */
  token_hint: string;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  created_at: CreatedAt;
}

export interface RegistriesTable {
  id: Id;
  group_id: number;
  name: string;
  description: string | null;
  /** Pulls without credentials allowed (DESIGN §3.6); off by default. */
  anonymous_pull: Generated<0 | 1>;
  /** JSON array of CIDR ranges anonymous pulls may come from; empty = anywhere. */
  anonymous_networks: Generated<string>;
  created_at: CreatedAt;
  updated_at: number;
}

export interface UpstreamsTable {
  id: Id;
  group_id: number;
  name: string;
  description: string | null;
  url: string;
  username: string | null;
  /** AES-256-GCM ciphertext of the password (base64 of iv|tag|ciphertext); null without credentials. */
  password_encrypted: string | null;
  /** Token endpoint to use instead of the challenge's realm; credentials may be sent there. */
  token_url: string | null;
  /** Whole hours a tag is fresh, 0 = never revalidate: the simple form of `freshness`, kept in step with it. */
  cache_validity_hours: number;
  /** The freshness policy as JSON (services/freshness.ts); null = the one cache_validity_hours implies. */
  freshness: string | null;
  created_at: CreatedAt;
  updated_at: number;
}

export interface RegistryUpstreamsTable {
  id: Id;
  group_id: number;
  registry_id: number;
  upstream_id: number;
  position: number;
  created_at: CreatedAt;
  updated_at: number;
}

/** An upstream host as clients name it (`docker.io`, the `ns` of a mirror request) → a registry (DESIGN §3.6). */
export interface MirrorRoutesTable {
  id: Id;
  /** Lower case, canonical (`registry-1.docker.io` is stored as `docker.io`), with a port when not the default. */
  host: string;
  /** Null once the registry was deleted: requests for the host are refused, naming the route. */
  registry_id: number | null;
  /** The route of requests without `ns` (Docker's registry-mirrors); one at most. */
  is_default: 0 | 1;
  created_at: CreatedAt;
  updated_at: number;
}

/** A hostname a registry answers for: `/v2/<image>` requests with that Host go to it. */
export interface RegistryHostnamesTable {
  id: Id;
  registry_id: number;
  hostname: string;
  created_at: CreatedAt;
}

export interface CacheEntriesTable {
  id: Id;
  group_id: number;
  /** Null once the upstream is deleted: such rows are only waiting for the destroy worker. */
  upstream_id: number | null;
  /** `/<image>/manifests/<ref>` or `/<image>/blobs/<digest>`. */
  relative_path: string;
  digest: string;
  size: number;
  content_type: string;
  upstream_etag: string | null;
  upstream_checked_at: number;
  downloaded_at: number | null;
  downloads_count: Generated<number>;
  status: Generated<CacheEntryStatus>;
  created_at: CreatedAt;
  updated_at: number;
}

export interface CleanupPoliciesTable {
  id: Id;
  group_id: number;
  enabled: 0 | 1;
  keep_n_days_after_download: number;
  cadence_days: number;
  next_run_at: number | null;
  last_run_at: number | null;
  last_run_deleted_entries: number;
  last_run_deleted_bytes: number;
  failure_message: string | null;
  created_at: CreatedAt;
  updated_at: number;
}

export interface AuditEventsTable {
  id: Id;
  /** Null for the system. */
  actor_user_id: number | null;
  actor_token_id: number | null;
  actor_name: string;
  group_id: number | null;
  action: string;
  target_type: string;
  target_id: number | null;
  /** JSON object: before/after without secrets. */
  details: string;
  created_at: CreatedAt;
}

/** A console sign-in (issue 20). The cookie holds the secret; only its SHA-256 is stored. */
export interface SessionsTable {
  id: Id;
  user_id: number;
  /** Set when the user signed in with a personal token: the session keeps its scopes, expiry and revocation. */
  token_id: number | null;
  secret_digest: string;
  created_at: CreatedAt;
  /** Written at most once a minute; a session unused for the idle timeout has ended. */
  last_seen_at: number;
  /** The absolute end of the session, whatever its use. */
  expires_at: number;
}

/** Pull counts of a registry per hour, merged in memory and written in batches (issue 20). */
export interface RegistryTrafficTable {
  registry_id: number;
  /** Start of the hour, epoch milliseconds. */
  hour: number;
  hits: number;
  misses: number;
  bytes_from_cache: number;
  bytes_from_upstream: number;
}

/** The lease of one fill held by one replica (cluster-wide single flight, services/fill-leases.ts). */
export interface FillLeasesTable {
  key: string;
  owner: string;
  owner_url: string;
  acquired_at: number;
  expires_at: number;
  takeovers: Generated<number>;
}

/** A cache entry found with its object missing or damaged (DESIGN §4 repair): what was found and who found it. */
export interface StorageRepairsTable {
  id: Id;
  digest: string;
  /** Null once the upstream is deleted. */
  upstream_id: number | null;
  relative_path: string;
  /** `missing`, `size_mismatch` or `unreadable`. */
  reason: string;
  /** The entry's size. */
  expected_size: number;
  /** The stored object's size when it was found with another size. */
  found_size: number | null;
  /** `pull` (a pull found it and refetched the object) or `check` (`storage check --repair` marked the entry). */
  source: string;
  created_at: CreatedAt;
}

export type PrefetchStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

/** A prefetch job (issue 18): fill a registry's cache with images before they are pulled. */
export interface PrefetchJobsTable {
  id: Id;
  registry_id: number;
  group_id: number;
  /** Who asked (the audit actor's name). */
  requested_by: string;
  /** JSON array of image references (`library/alpine:3.20`, `app@sha256:…`). */
  images: string;
  /** JSON array of platforms (`linux/amd64`, `linux/arm/v7`); empty = every platform. */
  platforms: string;
  status: PrefetchStatus;
  /** The replica running it (a random id per process); null unless running. */
  owner: ColumnType<string | null, string | null | undefined, string | null>;
  /** Written with every progress update by the owner; a running job without one for long has lost its owner. */
  heartbeat_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** Progress: what is known so far (totals grow while manifests are read). */
  total_objects: Generated<number>;
  done_objects: Generated<number>;
  failed_objects: Generated<number>;
  total_bytes: Generated<number>;
  done_bytes: Generated<number>;
  /** The first failures, for people. */
  error: ColumnType<string | null, string | null | undefined, string | null>;
  /** How many times a replica started it (a job whose owner died is queued again). */
  attempts: Generated<number>;
  created_at: CreatedAt;
  started_at: ColumnType<number | null, number | null | undefined, number | null>;
  finished_at: ColumnType<number | null, number | null | undefined, number | null>;
  updated_at: number;
}

export type CleanupRunReason = 'cleanup_policy' | 'group_quota' | 'instance_quota';

/** One run of a cleanup policy, or one eviction under a quota, as it concerned one group. */
export interface CleanupRunsTable {
  id: Id;
  group_id: number;
  reason: CleanupRunReason;
  started_at: number;
  finished_at: number;
  /** Entries marked for destruction by the run. */
  deleted_entries: number;
  /** The sum of those entries' sizes. */
  deleted_bytes: number;
  failure_message: string | null;
}

/** Entries evicted (by a cleanup policy or a quota) per upstream and hour: the usage report's evictions. */
export interface UpstreamEvictionsTable {
  upstream_id: number;
  hour: number;
  entries: number;
  bytes: number;
}

export interface Database {
  users: UsersTable;
  groups: GroupsTable;
  memberships: MembershipsTable;
  access_tokens: AccessTokensTable;
  registries: RegistriesTable;
  upstreams: UpstreamsTable;
  registry_upstreams: RegistryUpstreamsTable;
  mirror_routes: MirrorRoutesTable;
  registry_hostnames: RegistryHostnamesTable;
  cache_entries: CacheEntriesTable;
  cleanup_policies: CleanupPoliciesTable;
  audit_events: AuditEventsTable;
  sessions: SessionsTable;
  registry_traffic: RegistryTrafficTable;
  fill_leases: FillLeasesTable;
  storage_repairs: StorageRepairsTable;
  prefetch_jobs: PrefetchJobsTable;
  cleanup_runs: CleanupRunsTable;
  upstream_evictions: UpstreamEvictionsTable;
}

export type User = Selectable<UsersTable>;
export type Group = Selectable<GroupsTable>;
export type Membership = Selectable<MembershipsTable>;
export type AccessToken = Selectable<AccessTokensTable>;
export type Registry = Selectable<RegistriesTable>;
export type Upstream = Selectable<UpstreamsTable>;
export type RegistryUpstream = Selectable<RegistryUpstreamsTable>;
export type MirrorRoute = Selectable<MirrorRoutesTable>;
export type CacheEntry = Selectable<CacheEntriesTable>;
export type StorageRepair = Selectable<StorageRepairsTable>;
export type PrefetchJob = Selectable<PrefetchJobsTable>;
export type NewCacheEntry = Insertable<CacheEntriesTable>;
export type CacheEntryUpdate = Updateable<CacheEntriesTable>;
export type CleanupPolicy = Selectable<CleanupPoliciesTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
export type Session = Selectable<SessionsTable>;
export type CleanupRun = Selectable<CleanupRunsTable>;
