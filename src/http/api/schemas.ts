// The zod schemas of the management API: they validate requests (fastify-type-provider-zod), check and
// strip responses, and are what the OpenAPI document is generated from. Request schemas reuse the
// services' own where the services export them; the services validate again and stay the authority.
import { z } from 'zod';
import { SCOPES } from '../../auth/policy.ts';
import type { AuditView } from '../../services/audit.ts';
import type { CacheEntryView } from '../../services/cache-entry-queries.ts';
import { CACHE_ENTRY_STATUS_NAMES, cacheEntryListSchema } from '../../services/cache-entry-queries.ts';
import type { CleanupPolicyView, CleanupRunView } from '../../services/cleanup-policies.ts';
import type { RegistryUsage } from '../../services/storage-usage.ts';
import { cadenceSchema, keepDaysSchema } from '../../services/cleanup-policies.ts';
import type { GroupView } from '../../services/groups.ts';
import { groupDescriptionSchema, groupPathSchema, storageQuotaSchema } from '../../services/groups.ts';
import type { MembershipView } from '../../services/memberships.ts';
import { ROLE_NAMES, roleSchema } from '../../services/memberships.ts';
import type { MirrorRouteView } from '../../services/mirror-routes.ts';
import type { RegistryView } from '../../services/registries.ts';
import type { RegistryUpstreamView } from '../../services/registry-upstreams.ts';
import type { CreatedToken, TokenView } from '../../services/tokens.ts';
import type { UpstreamView } from '../../services/upstreams.ts';
import { MAX_CACHE_VALIDITY_HOURS } from '../../services/upstreams.ts';
import { freshnessInputSchema, freshnessPolicySchema } from '../../services/freshness.ts';
import type { UserView } from '../../services/users.ts';
import type { PrefetchJobView } from '../../services/prefetch-jobs.ts';
import { PREFETCH_STATUSES, prefetchInputSchema } from '../../services/prefetch-jobs.ts';
import { passwordSchema, usernameSchema } from '../../services/users.ts';
import { descriptionSchema, freeTextNameSchema, paginationSchema } from '../../services/validation.ts';

/** Named schemas become `components.schemas` of the OpenAPI document and are referenced by `$ref`. */
export const apiSchemas = z.registry<{ id: string; description?: string }>();

function named<T extends z.ZodType>(id: string, schema: T, description?: string): T {
  apiSchemas.add(schema, description ? { id, description } : { id });
  return schema;
}

const time = () => z.number().int().describe('epoch milliseconds');
const nullableTime = () => z.number().int().nullable().describe('epoch milliseconds, or null');
const roleName = z.enum(ROLE_NAMES as [string, ...string[]]);

// ---- shared request parts -------------------------------------------------------------------------

export const idParams = z.object({
  id: z.coerce.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id')
    .describe('numeric id'),
});

export const groupParams = z.object({
  id: z.string().min(1, 'is required').max(255, 'must be at most 255 characters')
    .describe('the group\'s numeric id, or its path (`acme`)'),
});

export const groupMemberParams = groupParams.extend({
  user_id: z.coerce.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id'),
});

export const groupTokenParams = groupParams.extend({
  token_id: z.coerce.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id'),
});

export const tokenParams = z.object({
  token_id: z.coerce.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id'),
});

export const paginationQuery = paginationSchema;
export const searchQuery = paginationSchema.extend({
  search: z.string('must be a string').max(255, 'must be at most 255 characters').optional().describe('a substring of the name, case-insensitive'),
});
export const cacheEntryQuery = cacheEntryListSchema;

// ---- request bodies ----------------------------------------------------------------------------------

const nameField = freeTextNameSchema;
const descriptionField = (max: number) => descriptionSchema(max).nullable();
const expiresAtField = z.union([z.number(), z.string()], 'must be an ISO 8601 date or date-time')
  .nullable().optional()
  .describe('ISO 8601 date or date-time (or epoch milliseconds), in the future and at most 365 days away; none = no expiry');

export const createUserBody = z.object({
  username: usernameSchema,
  password: passwordSchema,
  email: z.string('must be a string').max(255, 'must be at most 255 characters').nullable().optional(),
  admin: z.boolean('must be true or false').optional(),
}, 'must be an object');

export const createPersonalTokenBody = z.object({
  name: nameField,
  scopes: z.array(z.enum(SCOPES, `must be one of ${SCOPES.join(', ')}`), 'must be a list of scopes').min(1, 'must name at least one scope'),
  expires_at: expiresAtField,
}, 'must be an object');

export const createGroupTokenBody = createPersonalTokenBody.extend({ role: roleSchema });

export const createDeployTokenBody = z.object({
  name: nameField,
  scopes: z.array(z.literal('read_virtual_registry', 'deploy tokens have only the read_virtual_registry scope')).min(1, 'must name at least one scope').optional(),
  expires_at: expiresAtField,
}, 'must be an object');

export const createGroupBody = z.object({
  path: groupPathSchema.describe('one image path component: `acme` in `<host>/acme/<registry>/<image>`; never changes'),
  name: nameField.optional(),
  description: groupDescriptionSchema.nullable().optional(),
}, 'must be an object');

export const updateGroupBody = z.object({
  name: nameField.optional(),
  description: groupDescriptionSchema.nullable().optional(),
  storage_quota_bytes: storageQuotaSchema.optional()
    .describe('instance admins: bytes the group\'s cache may hold (unique objects); above the high watermark its least recently pulled entries are evicted; null removes the quota'),
}, 'must be an object');

export const addMemberBody = z.object({
  user_id: z.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id').optional(),
  username: z.string('must be a string').min(1, 'is required').max(255, 'must be at most 255 characters').optional(),
  role: roleSchema,
}, 'must be an object').describe('give either user_id or username');

export const changeRoleBody = z.object({ role: roleSchema }, 'must be an object');

const registryName = z.string('must be a string').min(1, 'is required').max(255, 'must be at most 255 characters')
  .describe('one lower-case OCI path component: `hub` in `<host>/<group>/hub/<image>`');

const mirrorFields = {
  anonymous_pull: z.boolean('must be true or false').optional()
    .describe('allow pulls without credentials (Docker sends none to a mirror); default false; audited'),
  anonymous_networks: z.array(z.string('must be a string'), 'must be a list of CIDR ranges').max(100, 'must have at most 100 ranges').optional()
    .describe('CIDR ranges (`10.0.0.0/8`) or addresses anonymous pulls may come from; empty = anywhere'),
  hostnames: z.array(z.string('must be a string'), 'must be a list of hostnames').max(20, 'must have at most 20 hostnames').optional()
    .describe('hostnames (no port) whose /v2 requests go to this registry, e.g. `hub.cache.example.com`; instance admins only; unique across the instance'),
};

export const createRegistryBody = z.object({
  name: registryName,
  description: descriptionField(1024).optional(),
  ...mirrorFields,
}, 'must be an object');

export const updateRegistryBody = z.object({
  name: registryName.optional(),
  description: descriptionField(1024).optional(),
  ...mirrorFields,
}, 'must be an object');

const mirrorHost = z.string('must be a string').min(1, 'is required').max(255, 'must be at most 255 characters')
  .describe('the upstream registry host as clients name it (`docker.io`, `ghcr.io`, `quay.io`); `registry-1.docker.io` and `index.docker.io` are `docker.io`');
const routeRegistryId = z.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id')
  .describe('the registry that answers for this host');
const routeDefault = z.boolean('must be true or false')
  .describe('the route of requests without `ns` (Docker\'s `registry-mirrors`); at most one route is the default: setting it moves it here');

export const createMirrorRouteBody = z.object({
  host: mirrorHost,
  registry_id: routeRegistryId,
  default: routeDefault.optional(),
}, 'must be an object');

export const updateMirrorRouteBody = z.object({
  host: mirrorHost.optional(),
  registry_id: routeRegistryId.optional(),
  default: routeDefault.optional(),
}, 'must be an object');

const urlField = z.string('must be a string').min(1, 'is required').max(2048, 'must be at most 2048 characters')
  .describe('http(s) URL without credentials, query or fragment; a trailing `/v2` is tolerated; no internal address unless the instance allows private upstreams');
const usernameField = z.string('must be a string').min(1, 'must not be empty').max(255, 'must be at most 255 characters').nullable();
const passwordField = z.string('must be a string').min(1, 'must not be empty').max(16_384, 'must be at most 16384 characters').nullable()
  .describe('write-only: never returned; given together with username');
const tokenUrlField = urlField.nullable().describe('token endpoint to use instead of the challenge\'s realm (same URL rules)');
const cacheValidityField = z.number('must be a whole number of hours').int('must be a whole number of hours')
  .min(0, 'must be at least 0').max(MAX_CACHE_VALIDITY_HOURS, `must be at most ${MAX_CACHE_VALIDITY_HOURS}`)
  .describe('how long a cached tag is served before it is revalidated; 0 = never revalidate (pin); default 24. The simple form of freshness.max_age and freshness.pin');
const freshnessField = freshnessInputSchema.describe('the freshness policy (DESIGN §3.5); fields left out keep their value; `rules` replaces the whole list. Given with cache_validity_hours, its fields win');

export const createUpstreamBody = z.object({
  name: nameField,
  description: descriptionField(1024).optional(),
  url: urlField,
  username: usernameField.optional(),
  password: passwordField.optional(),
  token_url: tokenUrlField.optional(),
  cache_validity_hours: cacheValidityField.optional(),
  freshness: freshnessField.optional(),
}, 'must be an object');

export const updateUpstreamBody = z.object({
  name: nameField.optional(),
  description: descriptionField(1024).optional(),
  url: urlField.optional(),
  username: usernameField.optional(),
  password: passwordField.optional(),
  token_url: tokenUrlField.optional(),
  cache_validity_hours: cacheValidityField.optional(),
  freshness: freshnessField.optional(),
}, 'must be an object').describe('fields left out stay as they are; a new url drops the stored credentials unless username and password are given again; null for both removes them');

export const testUnsavedUpstreamBody = z.object({
  url: urlField,
  username: usernameField.optional(),
  password: passwordField.optional(),
  token_url: tokenUrlField.optional(),
}, 'must be an object');

export const testSavedUpstreamBody = z.object({
  url: urlField.optional(),
  username: usernameField.optional(),
  password: passwordField.optional(),
  token_url: tokenUrlField.optional(),
}, 'must be an object').describe('optional overrides of the saved upstream; a different url is tested without the saved credentials');

export const linkUpstreamBody = z.object({
  upstream_id: z.number('must be a positive integer id').int('must be a positive integer id').positive('must be a positive integer id')
    .describe('an upstream of the registry\'s group; it is linked at the next position'),
}, 'must be an object');

export const movePositionBody = z.object({
  position: z.number('must be a whole number').int('must be a whole number').min(1, 'must be at least 1')
    .describe('1 = asked first; the other links shift to keep the positions 1..N'),
}, 'must be an object');

export const cleanupPolicyBody = z.object({
  enabled: z.boolean('must be true or false').optional().describe('default true'),
  keep_n_days_after_download: keepDaysSchema.optional().describe('evict entries not downloaded for this many days (1..365); default 30'),
  cadence_days: cadenceSchema.optional().describe('run every 1, 7, 14, 30 or 90 days; default 7'),
}, 'must be an object').describe('fields left out keep their value, or take the default when the policy is new');

// ---- responses -------------------------------------------------------------------------------------

export const problemSchema = named('Problem', z.object({
  type: z.string().describe('a URI naming the kind of problem: `urn:manifold:problem:<reason>`'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errors: z.record(z.string(), z.array(z.string())).optional().describe('messages per input field'),
}), 'RFC 9457 problem details (application/problem+json)');

export const userSchema = named('User', z.object({
  id: z.number().int(),
  username: z.string(),
  email: z.string().nullable(),
  admin: z.boolean(),
  blocked: z.boolean(),
  created_at: time(),
  updated_at: time(),
}));

export const groupSchema = named('Group', z.object({
  id: z.number().int(),
  path: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  storage_quota_bytes: z.number().int().nullable().describe('bytes the group\'s cache may hold; null: only the instance\'s limit'),
  created_at: time(),
  updated_at: time(),
}));

export const memberSchema = named('Member', z.object({
  group_id: z.number().int(),
  user_id: z.number().int(),
  username: z.string(),
  role: roleName,
  access_level: z.number().int().describe('guest 10, reporter 20, developer 30, maintainer 40, owner 50'),
  created_at: time(),
  updated_at: time(),
}));

export const tokenSchema = named('AccessToken', z.object({
  id: z.number().int(),
  kind: z.enum(['personal', 'group', 'deploy']),
  name: z.string(),
  user_id: z.number().int().nullable(),
  group_id: z.number().int().nullable(),
  role: roleName.nullable(),
  access_level: z.number().int().nullable(),
  scopes: z.array(z.enum(SCOPES)),
  token_hint: z.string().describe('the first characters of the token, to recognise it'),
  expires_at: nullableTime(),
  revoked_at: nullableTime(),
  last_used_at: nullableTime(),
  created_at: time(),
  active: z.boolean().describe('neither revoked nor expired'),
}));

export const createdTokenSchema = named('CreatedAccessToken', tokenSchema.extend({
  token: z.string().describe('the plaintext: shown once, never again'),
}));

export const registrySchema = named('Registry', z.object({
  id: z.number().int(),
  group_id: z.number().int(),
  name: z.string(),
  description: z.string().nullable(),
  anonymous_pull: z.boolean().describe('pulls without credentials are allowed (from anonymous_networks)'),
  anonymous_networks: z.array(z.string()).describe('CIDR ranges anonymous pulls may come from; empty = anywhere'),
  hostnames: z.array(z.string()).describe('hostnames whose /v2 requests go to this registry'),
  created_at: time(),
  updated_at: time(),
}));

export const mirrorRouteSchema = named('MirrorRoute', z.object({
  id: z.number().int(),
  host: z.string().describe('canonical: lower case, `docker.io` for Docker Hub\'s other names'),
  registry_id: z.number().int().nullable().describe('null once the registry was deleted: requests for this host are refused until the route is pointed at another registry'),
  registry_path: z.string().nullable().describe('`<group>/<registry>` of the registry'),
  default: z.boolean(),
  created_at: time(),
  updated_at: time(),
}), 'an upstream host as clients name it → a registry (mirror requests: `?ns=<host>`, or the default route without `ns`)');

export const upstreamSchema = named('Upstream', z.object({
  id: z.number().int(),
  group_id: z.number().int(),
  name: z.string(),
  description: z.string().nullable(),
  url: z.string(),
  username: z.string().nullable(),
  has_credentials: z.boolean().describe('a password is stored (it is never returned)'),
  token_url: z.string().nullable(),
  cache_validity_hours: z.number().int().describe('the simple form of freshness: whole hours of max_age, 0 when pinned'),
  freshness: named('FreshnessPolicy', freshnessPolicySchema),
  health: named('UpstreamHealth', z.object({
    state: z.enum(['healthy', 'circuit_open', 'rate_limited']).describe('circuit_open: recent failures, revalidations are skipped and misses fail at once until the window ends; rate_limited: revalidations are skipped until the reset'),
    consecutive_failures: z.number().int(),
    last_failure: z.string().nullable(),
    last_failure_at: time().nullable(),
    circuit_open_until: time().nullable().describe('when the next probe may ask the upstream'),
    rate_limited_until: time().nullable(),
    revalidations_skipped: z.number().int().describe('revalidations not sent because of this state (requests saved)'),
  })).optional().describe('how this process sees the upstream now; only when showing one upstream'),
  created_at: time(),
  updated_at: time(),
}));

export const registryUpstreamSchema = named('RegistryUpstream', z.object({
  id: z.number().int(),
  registry_id: z.number().int(),
  upstream_id: z.number().int(),
  position: z.number().int(),
  upstream: upstreamSchema,
  created_at: time(),
  updated_at: time(),
}));

export const registryDetailSchema = named('RegistryWithUpstreams', registrySchema.extend({
  upstreams: z.array(registryUpstreamSchema).describe('by position: the first is asked first'),
}));

export const cacheEntrySchema = named('CacheEntry', z.object({
  id: z.number().int(),
  group_id: z.number().int(),
  upstream_id: z.number().int(),
  relative_path: z.string(),
  digest: z.string(),
  size: z.number().int(),
  content_type: z.string(),
  upstream_etag: z.string().nullable(),
  upstream_checked_at: time(),
  downloaded_at: nullableTime(),
  downloads_count: z.number().int(),
  status: z.enum(CACHE_ENTRY_STATUS_NAMES),
  created_at: time(),
  updated_at: time(),
}));

export const cleanupPolicySchema = named('CleanupPolicy', z.object({
  group_id: z.number().int(),
  enabled: z.boolean(),
  keep_n_days_after_download: z.number().int(),
  cadence_days: z.number().int(),
  next_run_at: nullableTime(),
  last_run_at: nullableTime(),
  last_run_deleted_entries: z.number().int(),
  last_run_deleted_bytes: z.number().int(),
  failure_message: z.string().nullable(),
  created_at: time(),
  updated_at: time(),
}));

export const cleanupRunSchema = named('CleanupRun', z.object({
  id: z.number().int(),
  group_id: z.number().int(),
  reason: z.enum(['cleanup_policy', 'group_quota', 'instance_quota']).describe('the group\'s cleanup policy, the group\'s storage quota, or the instance\'s (storage.maxBytes)'),
  started_at: time(),
  finished_at: time(),
  deleted_entries: z.number().int().describe('cache entries the run removed'),
  deleted_bytes: z.number().int().describe('the sum of their sizes (an object another entry still uses stays stored)'),
  failure_message: z.string().nullable(),
}));

export const upstreamUsageSchema = named('UpstreamUsage', z.object({
  upstream_id: z.number().int(),
  name: z.string(),
  stored_bytes: z.number().int().describe('bytes of the unique objects its live entries refer to'),
  entries: z.number().int(),
  evicted_entries: z.number().int(),
  evicted_bytes: z.number().int(),
}));

export const registryUsageSchema = named('RegistryUsage', z.object({
  registry_id: z.number().int(),
  since: time().describe('hits, misses, bytes served and evictions are counted since this time (the retained week)'),
  stored_bytes: z.number().int().describe('bytes of the unique objects the registry\'s upstreams\' live entries refer to'),
  entries: z.number().int().describe('live cache entries of the registry\'s upstreams'),
  hits: z.number().int(),
  misses: z.number().int(),
  bytes_from_cache: z.number().int().describe('bytes served from the cache: what the upstreams were spared'),
  bytes_from_upstream: z.number().int().describe('bytes fetched from upstreams while serving them'),
  evicted_entries: z.number().int().describe('entries removed by cleanup policies and storage quotas'),
  evicted_bytes: z.number().int(),
  upstreams: z.array(upstreamUsageSchema).describe('per upstream, by position'),
}));

export const auditEventSchema = named('AuditEvent', z.object({
  id: z.number().int(),
  actor_user_id: z.number().int().nullable(),
  actor_token_id: z.number().int().nullable(),
  actor_name: z.string(),
  group_id: z.number().int().nullable(),
  action: z.string().describe('`<target>.<verb>`, e.g. `registry.create`'),
  target_type: z.string(),
  target_id: z.number().int().nullable(),
  details: z.record(z.string(), z.unknown()).describe('before/after values, never secrets'),
  created_at: time(),
}));

export const connectionTestSchema = named('ConnectionTest', z.object({
  success: z.boolean().describe('the upstream answered and accepted the credentials'),
  status: z.number().int().nullable().describe('the upstream\'s HTTP status, when it answered'),
  message: z.string(),
}));

export const purgeSchema = named('Purge', z.object({
  marked_entries: z.number().int().describe('cache entries now waiting for the destroy worker'),
}));

// ---- the views the services return must be what the schemas describe ------------------------------

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Expect<T extends true> = T;
type Out<T extends z.ZodType> = z.output<T>;
/** Literal unions widened (roles, levels, kinds): the schemas describe them as enums or plain numbers. */
type Widen<V> = V extends string ? string : V extends number ? number : V extends boolean ? boolean : V extends readonly (infer E)[] ? Widen<E>[] : V;
type Loose<T> = { [K in keyof T]: Widen<T[K]> };

export type ViewChecks = [
  Expect<Same<Loose<Out<typeof userSchema>>, Loose<UserView>>>,
  Expect<Same<Loose<Out<typeof groupSchema>>, Loose<GroupView>>>,
  Expect<Same<Loose<Out<typeof memberSchema>>, Loose<MembershipView>>>,
  Expect<Same<Loose<Out<typeof tokenSchema>>, Loose<TokenView>>>,
  Expect<Same<Loose<Out<typeof createdTokenSchema>>, Loose<CreatedToken>>>,
  Expect<Same<Loose<Out<typeof registrySchema>>, Loose<RegistryView>>>,
  Expect<Same<Loose<Out<typeof mirrorRouteSchema>>, Loose<MirrorRouteView>>>,
  Expect<Same<Loose<Out<typeof upstreamSchema>>, Loose<UpstreamView>>>,
  Expect<Same<Loose<Out<typeof registryUpstreamSchema>>, Loose<RegistryUpstreamView>>>,
  Expect<Same<Loose<Out<typeof cacheEntrySchema>>, Loose<CacheEntryView>>>,
  Expect<Same<Loose<Out<typeof cleanupPolicySchema>>, Loose<CleanupPolicyView>>>,
  Expect<Same<Loose<Out<typeof cleanupRunSchema>>, Loose<CleanupRunView>>>,
  Expect<Same<Loose<Out<typeof registryUsageSchema>>, Loose<RegistryUsage>>>,
  Expect<Same<Loose<Out<typeof auditEventSchema>>, Loose<AuditView>>>,
];

// ---- prefetch jobs (issue 18) -------------------------------------------------------------------------

export const prefetchBody = prefetchInputSchema.describe('images to fill the registry\'s cache with, and optionally the platforms (default: every platform)');

export const prefetchJobSchema = named('PrefetchJob', z.object({
  id: z.number().int(),
  registry_id: z.number().int(),
  group_id: z.number().int(),
  requested_by: z.string(),
  images: z.array(z.string()),
  platforms: z.array(z.string()).describe('empty: every platform'),
  status: z.enum(PREFETCH_STATUSES),
  progress: z.object({
    total_objects: z.number().int(),
    done_objects: z.number().int(),
    failed_objects: z.number().int(),
    total_bytes: z.number().int(),
    done_bytes: z.number().int(),
  }).describe('manifests and blobs; the totals grow while the manifests are read'),
  error: z.string().nullable(),
  attempts: z.number().int().describe('how many times a replica started it (a job whose replica stopped is queued again)'),
  created_at: time(),
  started_at: nullableTime(),
  finished_at: nullableTime(),
  updated_at: time(),
}));

type _PrefetchSchemaMatches = Expect<Same<Loose<Out<typeof prefetchJobSchema>>, Loose<PrefetchJobView>>>;

// ---- the console's session and overview (issue 20) -------------------------------------------------

export const signInBody = z.object({
  username: z.string('must be a string').max(255, 'must be at most 255 characters').optional(),
  password: z.string('must be a string').max(1024, 'must be at most 1024 characters').optional(),
  token: z.string('must be a string').max(1024, 'must be at most 1024 characters').optional()
    .describe('a personal access token with the api or read_api scope, instead of username and password'),
}, 'must be an object').describe('username and password, or a personal access token');

export const sessionSchema = named('Session', z.object({
  user: userSchema,
  csrf_token: z.string().describe('send it as the X-CSRF-Token header with every request that changes something'),
  expires_at: time(),
  idle_timeout_seconds: z.number().int().describe('the session ends when unused this long'),
  scopes: z.array(z.enum(SCOPES)).nullable().describe('the scopes of the token the session was started with; null after a password sign-in'),
  memberships: z.array(z.object({ group_id: z.number().int(), role: roleName, access_level: z.number().int() }))
    .describe('the user\'s role in each group: what the console offers to change (the API decides)'),
}));

export const instanceSchema = named('Instance', z.object({
  public_url: z.string().describe('the URL clients reach this instance at: server.publicUrl, or this request\'s origin'),
  registry_host: z.string().describe('what image names start with: host[:port] of the public URL'),
  service: z.string().describe('the `service` of the Bearer challenge'),
}));

export const trafficHourSchema = named('TrafficHour', z.object({
  hour: time().describe('start of the hour'),
  hits: z.number().int(),
  misses: z.number().int(),
  bytes_from_cache: z.number().int(),
  bytes_from_upstream: z.number().int(),
}));

export const registryStatisticsSchema = named('RegistryStatistics', z.object({
  registry_id: z.number().int(),
  since: time(),
  hours: z.array(trafficHourSchema).describe('one per hour of the window, oldest first, zeros included'),
  hits: z.number().int(),
  misses: z.number().int(),
  hit_ratio: z.number().nullable().describe('hits / (hits + misses) over the window; null without requests'),
  bytes_from_cache: z.number().int(),
  bytes_from_upstream: z.number().int(),
  cached_entries: z.number().int().describe('live cache entries of the registry\'s upstreams now'),
  cached_bytes: z.number().int(),
}));

export const statisticsQuery = z.object({
  hours: z.coerce.number('must be a whole number').int('must be a whole number').min(1, 'must be at least 1').max(168, 'must be at most 168').default(24),
});
