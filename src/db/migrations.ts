// Schema migrations. The database itself enforces the invariants that must never break (DESIGN §1):
// unique names, contiguous-able link positions, one live cache entry per (upstream, path), credentials
// set as a pair, non-negative cache validity.
import { sql } from 'kysely';
import type { ColumnDefinitionBuilder, Kysely } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import type { Dialect } from './connect.ts';

type Col = (col: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;

function types(dialect: Dialect) {
  const pg = dialect === 'postgres';
  return {
    id: (pg ? 'bigint' : 'integer') as 'bigint' | 'integer',
    idColumn: ((col) => (pg ? col.primaryKey().generatedByDefaultAsIdentity() : col.primaryKey().autoIncrement())) as Col,
    bigint: (pg ? 'bigint' : 'integer') as 'bigint' | 'integer',
    flag: (pg ? 'smallint' : 'integer') as 'smallint' | 'integer',
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations are frozen in time: they do not follow the current schema type
type AnyDb = Kysely<any>;

function initial(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('users')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('username', 'varchar(255)', (c) => c.notNull())
        .addColumn('email', 'varchar(255)')
        .addColumn('password_hash', 'varchar(512)', (c) => c.notNull())
        .addColumn('admin', t.flag, (c) => c.notNull().defaultTo(0).check(sql`admin in (0, 1)`))
        .addColumn('blocked', t.flag, (c) => c.notNull().defaultTo(0).check(sql`blocked in (0, 1)`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('users_username_key').unique().on('users').expression(sql`lower(username)`).execute();

      await db.schema.createTable('groups')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('path', 'varchar(255)', (c) => c.notNull())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('groups_path_key').unique().on('groups').column('path').execute();

      await db.schema.createTable('memberships')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('user_id', t.id, (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('access_level', t.flag, (c) => c.notNull().check(sql`access_level in (10, 20, 30, 40, 50)`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('memberships_group_user_key', ['group_id', 'user_id'])
        .execute();
      await db.schema.createIndex('memberships_user_idx').on('memberships').column('user_id').execute();

      await db.schema.createTable('access_tokens')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('kind', 'varchar(16)', (c) => c.notNull().check(sql`kind in ('personal', 'group', 'deploy')`))
        .addColumn('user_id', t.id, (c) => c.references('users.id').onDelete('cascade'))
        .addColumn('group_id', t.id, (c) => c.references('groups.id').onDelete('cascade'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('access_level', t.flag, (c) => c.check(sql`access_level in (10, 20, 30, 40, 50)`))
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('token_digest', 'char(64)', (c) => c.notNull())
        .addColumn('token_hint', 'varchar(32)', (c) => c.notNull())
        .addColumn('expires_at', t.bigint)
        .addColumn('revoked_at', t.bigint)
        .addColumn('last_used_at', t.bigint)
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addCheckConstraint('access_tokens_owner_check', sql`(kind = 'personal' and user_id is not null and group_id is null)
          or (kind = 'group' and group_id is not null and access_level is not null)
          or (kind = 'deploy' and group_id is not null and user_id is null)`)
        .execute();
      await db.schema.createIndex('access_tokens_digest_key').unique().on('access_tokens').column('token_digest').execute();

      await db.schema.createTable('registries')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('registries_group_name_key', ['group_id', 'name'])
        .execute();

      await db.schema.createTable('upstreams')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('url', 'varchar(2048)', (c) => c.notNull())
        .addColumn('username', 'varchar(510)', (c) => c.check(sql`username <> ''`))
        .addColumn('password_encrypted', 'text', (c) => c.check(sql`password_encrypted <> ''`))
        .addColumn('token_url', 'varchar(2048)')
        .addColumn('cache_validity_hours', 'integer', (c) => c.notNull().defaultTo(24).check(sql`cache_validity_hours >= 0`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addCheckConstraint('upstreams_credentials_pair_check', sql`(username is null) = (password_encrypted is null)`)
        .execute();
      await db.schema.createIndex('upstreams_group_idx').on('upstreams').column('group_id').execute();

      await db.schema.createTable('registry_upstreams')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('registry_id', t.id, (c) => c.notNull().references('registries.id').onDelete('cascade'))
        .addColumn('upstream_id', t.id, (c) => c.notNull().references('upstreams.id').onDelete('cascade'))
        .addColumn('position', 'integer', (c) => c.notNull().check(sql`position between 1 and 20`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('registry_upstreams_registry_upstream_key', ['registry_id', 'upstream_id'])
        .addUniqueConstraint('registry_upstreams_registry_position_key', ['registry_id', 'position'])
        .execute();
      await db.schema.createIndex('registry_upstreams_upstream_idx').on('registry_upstreams').column('upstream_id').execute();

      await db.schema.createTable('cache_entries')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull())
        .addColumn('upstream_id', t.id, (c) => c.references('upstreams.id').onDelete('set null'))
        .addColumn('relative_path', 'varchar(1024)', (c) => c.notNull().check(sql`relative_path like '/%'`))
        .addColumn('digest', 'varchar(255)', (c) => c.notNull())
        .addColumn('size', t.bigint, (c) => c.notNull().check(sql`size >= 0`))
        .addColumn('content_type', 'varchar(255)', (c) => c.notNull())
        .addColumn('upstream_etag', 'varchar(1024)')
        .addColumn('upstream_checked_at', t.bigint, (c) => c.notNull())
        .addColumn('downloaded_at', t.bigint)
        .addColumn('downloads_count', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('status', t.flag, (c) => c.notNull().defaultTo(0).check(sql`status in (0, 1, 2, 3)`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .execute();
      // One live entry per (upstream, path). The predicate is a literal so that SQLite can match
      // ON CONFLICT (upstream_id, relative_path) WHERE status = 0 against it (DESIGN §4).
      await db.schema.createIndex('cache_entries_live_path_key').unique().on('cache_entries')
        .columns(['upstream_id', 'relative_path']).where(sql.ref('status'), '=', sql.lit(0)).execute();
      await db.schema.createIndex('cache_entries_digest_idx').on('cache_entries').columns(['digest', 'status']).execute();
      await db.schema.createIndex('cache_entries_status_idx').on('cache_entries').columns(['status', 'upstream_id']).execute();
      await db.schema.createIndex('cache_entries_downloaded_idx').on('cache_entries').columns(['group_id', 'downloaded_at']).execute();

      await db.schema.createTable('cleanup_policies')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('enabled', t.flag, (c) => c.notNull().defaultTo(1).check(sql`enabled in (0, 1)`))
        .addColumn('keep_n_days_after_download', 'integer', (c) => c.notNull().check(sql`keep_n_days_after_download between 1 and 365`))
        .addColumn('cadence_days', 'integer', (c) => c.notNull().check(sql`cadence_days in (1, 7, 14, 30, 90)`))
        .addColumn('next_run_at', t.bigint)
        .addColumn('last_run_at', t.bigint)
        .addColumn('last_run_deleted_entries', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('last_run_deleted_bytes', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('failure_message', 'text')
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('cleanup_policies_group_key', ['group_id'])
        .execute();

      await db.schema.createTable('audit_events')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('actor_user_id', t.id)
        .addColumn('actor_token_id', t.id)
        .addColumn('actor_name', 'varchar(255)', (c) => c.notNull())
        .addColumn('group_id', t.id)
        .addColumn('action', 'varchar(64)', (c) => c.notNull())
        .addColumn('target_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('target_id', t.id)
        .addColumn('details', 'text', (c) => c.notNull())
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_events_group_idx').on('audit_events').columns(['group_id', 'id']).execute();
    },
  };
}

/**
 * Mirror routing (DESIGN §3.6): the instance's routes from an upstream host as clients name it
 * (`docker.io`) to a registry, at most one of them the default; hostnames a registry answers for; and
 * a registry's anonymous pulls. A route outlives its registry (registry_id set null) so that requests
 * for that host get an error naming the route instead of silently going elsewhere.
 */
function mirrorRouting(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('mirror_routes')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('host', 'varchar(255)', (c) => c.notNull().check(sql`host <> '' and host = lower(host)`))
        .addColumn('registry_id', t.id, (c) => c.references('registries.id').onDelete('set null'))
        .addColumn('is_default', t.flag, (c) => c.notNull().defaultTo(0).check(sql`is_default in (0, 1)`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('mirror_routes_host_key', ['host'])
        .execute();
      // One default route at most; written literally so that SQLite can use the partial index.
      await db.schema.createIndex('mirror_routes_default_key').unique().on('mirror_routes').column('is_default').where(sql.ref('is_default'), '=', sql.lit(1)).execute();

      await db.schema.createTable('registry_hostnames')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('registry_id', t.id, (c) => c.notNull().references('registries.id').onDelete('cascade'))
        .addColumn('hostname', 'varchar(255)', (c) => c.notNull().check(sql`hostname <> '' and hostname = lower(hostname)`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addUniqueConstraint('registry_hostnames_hostname_key', ['hostname'])
        .execute();
      await db.schema.createIndex('registry_hostnames_registry_idx').on('registry_hostnames').column('registry_id').execute();

      await db.schema.alterTable('registries')
        .addColumn('anonymous_pull', t.flag, (c) => c.notNull().defaultTo(0).check(sql`anonymous_pull in (0, 1)`))
        .execute();
      // JSON array of CIDR ranges; empty = from anywhere.
      await db.schema.alterTable('registries').addColumn('anonymous_networks', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    },
  };
}

/**
 * The console (issue 20): browser sessions, stored as the SHA-256 of their secret like tokens so that
 * any replica can check them; and the hourly pull counts of each registry that the console charts.
 */
function consoleSessionsAndTraffic(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('sessions')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('user_id', t.id, (c) => c.notNull().references('users.id').onDelete('cascade'))
        /** Set when the user signed in with a personal token: the session keeps the token's limits. */
        .addColumn('token_id', t.id, (c) => c.references('access_tokens.id').onDelete('cascade'))
        .addColumn('secret_digest', 'varchar(64)', (c) => c.notNull())
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('last_seen_at', t.bigint, (c) => c.notNull())
        .addColumn('expires_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_secret_digest_key').unique().on('sessions').column('secret_digest').execute();
      await db.schema.createIndex('sessions_expires_idx').on('sessions').column('expires_at').execute();

      await db.schema.createTable('registry_traffic')
        .addColumn('registry_id', t.id, (c) => c.notNull().references('registries.id').onDelete('cascade'))
        /** Start of the hour, epoch milliseconds. */
        .addColumn('hour', t.bigint, (c) => c.notNull())
        .addColumn('hits', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('misses', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_from_cache', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes_from_upstream', t.bigint, (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('registry_traffic_pkey', ['registry_id', 'hour'])
        .execute();
    },
  };
}

/**
 * The freshness policy of an upstream (DESIGN §3.5) as JSON: max_age, stale_while_revalidate,
 * stale_if_error, pin, negative_cache and rules by pattern. Null for rows written before it: their
 * policy is the one `cache_validity_hours` implies, which stays as the simple form (and its alias).
 */
function freshnessPolicy(): Migration {
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable('upstreams').addColumn('freshness', 'text').execute();
    },
  };
}

/**
 * Cluster-wide single flight (issue 17): the lease a replica holds on one fill while it fetches the
 * object, renewed by heartbeat. Used on PostgreSQL with several replicas only; created on SQLite too
 * so that both schemas stay the same.
 */
function fillLeases(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('fill_leases')
        /** The fill's key: `<upstream id>:<relative path>`, as the in-process single flight names it. */
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'varchar(255)', (c) => c.notNull())
        /** Where the other replicas stream the fill from (the owner's cluster.advertiseUrl). */
        .addColumn('owner_url', 'varchar(2048)', (c) => c.notNull())
        /** Epoch ms on the database's clock, so that replicas' clocks never matter. */
        .addColumn('acquired_at', t.bigint, (c) => c.notNull())
        .addColumn('expires_at', t.bigint, (c) => c.notNull())
        /** How often the lease was taken over from an owner that stopped renewing it. */
        .addColumn('takeovers', t.bigint, (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('fill_leases_expires_idx').on('fill_leases').column('expires_at').execute();
    },
  };
}

/**
 * Self-repair (issue 18): every cache entry found with its object missing, of another size or
 * unreadable, by a pull (which refetched it) or by `manifold storage check --repair`, so that the
 * check can report what was repaired.
 */
function storageRepairs(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('storage_repairs')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('digest', 'varchar(160)', (c) => c.notNull())
        .addColumn('upstream_id', t.id, (c) => c.references('upstreams.id').onDelete('set null'))
        .addColumn('relative_path', 'varchar(1024)', (c) => c.notNull())
        .addColumn('reason', 'varchar(32)', (c) => c.notNull().check(sql`reason in ('missing', 'size_mismatch', 'unreadable')`))
        .addColumn('expected_size', t.bigint, (c) => c.notNull())
        .addColumn('found_size', t.bigint)
        .addColumn('source', 'varchar(16)', (c) => c.notNull().check(sql`source in ('pull', 'check')`))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('storage_repairs_created_idx').on('storage_repairs').column('created_at').execute();
    },
  };
}

/**
 * Prefetch jobs (issue 18): the job's state lives here, not in the memory of the replica running it, so
 * that any replica answers for it, a cancel reaches the owner, and a job whose owner died is taken over.
 */
function prefetchJobs(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('prefetch_jobs')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('registry_id', t.id, (c) => c.notNull().references('registries.id').onDelete('cascade'))
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('requested_by', 'varchar(255)', (c) => c.notNull())
        .addColumn('images', 'text', (c) => c.notNull())
        .addColumn('platforms', 'text', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull().check(sql`status in ('queued', 'running', 'succeeded', 'failed', 'canceled')`))
        .addColumn('owner', 'varchar(64)')
        .addColumn('heartbeat_at', t.bigint)
        .addColumn('total_objects', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('done_objects', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('failed_objects', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('total_bytes', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('done_bytes', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .addColumn('attempts', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', t.bigint, (c) => c.notNull())
        .addColumn('started_at', t.bigint)
        .addColumn('finished_at', t.bigint)
        .addColumn('updated_at', t.bigint, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('prefetch_jobs_status_idx').on('prefetch_jobs').columns(['status', 'id']).execute();
      await db.schema.createIndex('prefetch_jobs_registry_idx').on('prefetch_jobs').columns(['registry_id', 'id']).execute();
    },
  };
}

/**
 * Storage lifecycle (issue 18): a group's optional storage quota; the record of every cleanup or
 * eviction run per group; the entries and bytes evicted per upstream and hour (usage); and the index
 * eviction walks, least recently pulled first (downloaded_at, else created_at) among live entries.
 * (Not partial indexes: SQLite's planner, without statistics, prefers cache_entries_status_idx over a
 * partial index and sorts every live entry for each batch.)
 */
function storageLifecycle(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.alterTable('groups').addColumn('storage_quota_bytes', t.bigint, (c) => c.check(sql`storage_quota_bytes > 0`)).execute();

      await db.schema.createTable('cleanup_runs')
        .addColumn('id', t.id, t.idColumn)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('reason', 'varchar(32)', (c) => c.notNull().check(sql`reason in ('cleanup_policy', 'group_quota', 'instance_quota')`))
        .addColumn('started_at', t.bigint, (c) => c.notNull())
        .addColumn('finished_at', t.bigint, (c) => c.notNull())
        .addColumn('deleted_entries', t.bigint, (c) => c.notNull())
        .addColumn('deleted_bytes', t.bigint, (c) => c.notNull())
        .addColumn('failure_message', 'text')
        .execute();
      await db.schema.createIndex('cleanup_runs_group_idx').on('cleanup_runs').columns(['group_id', 'id']).execute();

      await db.schema.createTable('upstream_evictions')
        .addColumn('upstream_id', t.id, (c) => c.notNull().references('upstreams.id').onDelete('cascade'))
        /** Start of the hour, epoch milliseconds. */
        .addColumn('hour', t.bigint, (c) => c.notNull())
        .addColumn('entries', t.bigint, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes', t.bigint, (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('upstream_evictions_pkey', ['upstream_id', 'hour'])
        .execute();

      // Entries by status, least recently pulled first: eviction walks the live ones (status 0) in this order.
      await db.schema.createIndex('cache_entries_lru_idx').on('cache_entries')
        .expression(sql`status, coalesce(downloaded_at, created_at), id`).execute();
      await db.schema.createIndex('cache_entries_group_lru_idx').on('cache_entries')
        .expression(sql`group_id, status, coalesce(downloaded_at, created_at), id`).execute();
    },
  };
}

/**
 * Brute-force counters shared by every replica (src/auth/login-throttle.ts): the layout of
 * rate-limiter-flexible's PostgreSQL store (`key`, `points`, `expire` in epoch ms), which it queries
 * itself. Created on SQLite too (one schema for both), where one process counts in memory.
 */
function loginThrottle(dialect: Dialect): Migration {
  const t = types(dialect);
  return {
    async up(db: AnyDb) {
      await db.schema.createTable('login_throttle')
        .addColumn('key', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('points', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('expire', t.bigint)
        .execute();
    },
  };
}

export function migrationProvider(dialect: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      return {
        '0001_initial': initial(dialect),
        '0002c_mirror_routing': mirrorRouting(dialect),
        '0002e_freshness_policy': freshnessPolicy(),
        '0002f_console_sessions_traffic': consoleSessionsAndTraffic(dialect),
        '0003h_fill_leases': fillLeases(dialect),
        '0003r_storage_repairs': storageRepairs(dialect),
        '0003s_prefetch_jobs': prefetchJobs(dialect),
        '0003u_storage_lifecycle': storageLifecycle(dialect),
        '0003w_login_throttle': loginThrottle(dialect),
      };
    },
  };
}
