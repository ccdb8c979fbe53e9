// The composition root: configuration → database, storage, keys → services → HTTP.
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from './http/api/index.ts';
import type { Config } from './config.ts';
import { resolvedPaths } from './config.ts';
import { openDatabase } from './db/connect.ts';
import type { DatabaseHandle, DatabaseOptions } from './db/connect.ts';
import { Authenticator } from './services/authentication.ts';
import { LoginThrottle } from './auth/login-throttle.ts';
import { closePasswordHashing, configurePasswordHashing } from './auth/password-hashing.ts';
import { CredentialsCipher } from './auth/credentials-cipher.ts';
import { loadEncryptionKey, loadSigningKeys } from './auth/keys.ts';
import { RegistryTokens } from './auth/registry-tokens.ts';
import { API_PREFIX } from './http/api/prefix.ts';
import { buildApp, buildShell } from './http/app.ts';
import { lazyMount } from './http/lazy-mount.ts';
import { buildPeerApp } from './http/peer-routes.ts';
import { consoleRoutes } from './http/console.ts';
import { registryRoutes } from './http/registry-routes.ts';
import { actorFor, tokenRealm } from './http/request-auth.ts';
import { tokenRoutes } from './http/token-endpoint.ts';
import { createLogger } from './log.ts';
import type { Logger } from './log.ts';
import { createMetrics } from './metrics.ts';
import type { Metrics } from './metrics.ts';
import { ensureAdminUser, ADMIN_USERNAME } from './services/bootstrap.ts';
import { AuditService } from './services/audit.ts';
import { StorageRepairs } from './services/storage-repairs.ts';
import { StorageCheck } from './services/storage-check.ts';
import { PrefetchJobService } from './services/prefetch-jobs.ts';
import { PrefetchRunner } from './services/prefetch-runner.ts';
import { CacheDestroyer } from './services/cache-destroyer.ts';
import { CacheEntryService } from './services/cache-entries.ts';
import { CacheEntryQueryService } from './services/cache-entry-queries.ts';
import { CleanupPolicyService } from './services/cleanup-policies.ts';
import { CleanupRunner } from './services/cleanup-runner.ts';
import { Evictor } from './services/eviction.ts';
import { StorageQuota } from './services/storage-quota.ts';
import { StorageUsage } from './services/storage-usage.ts';
import { DownloadCounter } from './services/download-counter.ts';
import { FillLeases } from './services/fill-leases.ts';
import { PeerFills } from './services/peer-fills.ts';
import { GroupService } from './services/groups.ts';
import { MembershipService } from './services/memberships.ts';
import { MirrorRouteService } from './services/mirror-routes.ts';
import { MirrorRouting } from './services/mirror-routing.ts';
import { CatalogService } from './services/catalog.ts';
import { PullService } from './services/pull.ts';
import { ReferrersService } from './services/referrers.ts';
import { UpstreamHealth } from './services/upstream-health.ts';
import { RegistryService } from './services/registries.ts';
import { RegistryTraffic } from './services/registry-traffic.ts';
import { RegistryUpstreamService } from './services/registry-upstreams.ts';
import { RegistryUpstreamQueryService } from './services/registry-upstream-queries.ts';
import { SessionService } from './services/sessions.ts';
import { TagService } from './services/tags.ts';
import { postgresLimiters } from './services/throttle-store.ts';
import { TokenService } from './services/tokens.ts';
import { UpstreamService } from './services/upstreams.ts';
import { UserService } from './services/users.ts';
import { openObjectStore } from './storage/open.ts';
import type { ObjectStore } from './storage/object-store.ts';
import { UpstreamClient } from './upstream/client.ts';

export function databaseOptions(config: Config, logger?: Logger): DatabaseOptions {
  const { url, poolSize, connectTimeoutMs, statementTimeoutMs, sqliteBusyTimeoutMs } = config.database;
  return url
    ? { url, poolSize, connectTimeoutMs, statementTimeoutMs, logger }
    : { sqlitePath: resolvedPaths(config).sqlitePath, busyTimeoutMs: sqliteBusyTimeoutMs, logger };
}

/** Everything the services layer offers, built once per process. */
export async function createServices(config: Config, database: DatabaseHandle, logger: Logger, metrics: Metrics) {
  const { db, dialect, changes } = database;
  const paths = resolvedPaths(config);
  const store = await openObjectStore(config, logger);
  await store.init();
  const cipher = new CredentialsCipher(loadEncryptionKey(config.secrets.encryptionKey, paths.encryptionKeyPath));
  const registryTokens = new RegistryTokens({ keys: await loadSigningKeys(paths.signingKeyPath), issuer: config.auth.issuer, service: config.auth.service, ttlSeconds: config.auth.tokenTtlSeconds });
  const outageMemoryMs = config.database.outageMemorySeconds * 1000;
  const registries = new RegistryService({ db, cipher, changes, limits: config.limits, outageMemoryMs });
  const health = new UpstreamHealth({
    failureThreshold: config.upstream.circuitFailureThreshold,
    openMs: config.upstream.circuitOpenSeconds * 1000,
    maxOpenMs: config.upstream.circuitMaxOpenSeconds * 1000,
    defaultRateLimitMs: config.upstream.rateLimitDefaultSeconds * 1000,
  });
  const upstreams = new UpstreamService({ db, cipher, changes, allowPrivate: config.upstream.allowPrivate, health });
  const hotMemoryMs = config.cache.hotMemoryMs;
  const entries = new CacheEntryService({ db, dialect, store, changes, outageMemoryMs, hotMemoryMs });
  const counter = new DownloadCounter({ db, flushIntervalMs: config.cache.counterFlushSeconds * 1000, logger });
  const traffic = new RegistryTraffic({ db, flushIntervalMs: config.cache.counterFlushSeconds * 1000, logger });
  const sessionTimes = { ttlMs: config.auth.sessionTtlHours * 60 * 60 * 1000, idleMs: config.auth.sessionIdleMinutes * 60 * 1000 };
  const client = new UpstreamClient({ ...config.upstream, maxManifestBytes: config.limits.maxManifestBytes, logger });
  const audit = new AuditService({ db });
  // Several replicas (config refuses cluster.advertiseUrl without PostgreSQL): fills claimed through leases.
  const { advertiseUrl, secret } = config.cluster;
  const cluster = advertiseUrl && secret ? {
    leases: new FillLeases({ db, advertiseUrl, heartbeatMs: config.cluster.heartbeatMs, expiryMs: config.cluster.leaseExpiryMs, logger, metrics }),
    peers: new PeerFills({ secret, store, metrics }),
  } : undefined;
  const repairs = new StorageRepairs({ db, metrics, logger });
  const prefetchJobs = new PrefetchJobService({ db });
  configurePasswordHashing({ threads: config.auth.passwordHashThreads, queue: config.auth.passwordHashQueue, onWorkerError: (error) => logger.error({ err: error }, 'a password hashing thread failed') });
  const throttle = new LoginThrottle({
    settings: config.auth.throttle,
    // Several replicas count failures together; one process (SQLite) keeps them in memory.
    limiter: dialect === 'postgres' ? postgresLimiters(db) : undefined,
    onBlock: (event) => {
      logger.warn({ ...event }, 'sign-in attempts blocked after repeated failures');
      void audit.recordSignInBlocked(event).then((recorded) => {
        if (!recorded.ok) logger.error({ err: recorded.cause }, recorded.message);
      });
    },
  });
  const authenticator = new Authenticator({ db, registryTokens, throttle, sessionIdleMs: sessionTimes.idleMs, outageMemoryMs, hotMemoryMs });
  const routing = new MirrorRouting({ db, registries });
  const evictor = new Evictor({ db, graceMs: config.storage.evictionGraceSeconds * 1000 });
  // An object this process is reading or filling is not deleted yet (cache-destroyer.ts).
  const destroyer: CacheDestroyer = new CacheDestroyer({ db, dialect, store, logger, intervalMs: config.cache.destroyIntervalSeconds * 1000, inUse: (digest: string): boolean => store.reading(digest) || pull.blobFills.filling(digest) });
  const quota: StorageQuota = new StorageQuota({
    db, dialect, evictor, destroyer, counter, metrics, logger,
    settings: { maxBytes: config.storage.maxBytes, highWatermarkPercent: config.storage.highWatermarkPercent, lowWatermarkPercent: config.storage.lowWatermarkPercent },
    intervalMs: config.storage.quotaCheckSeconds * 1000,
  });
  const pull: PullService = new PullService({
    registries,
    entries,
    store,
    client,
    counter,
    traffic,
    repairs,
    quota,
    metrics,
    logger,
    fillGraceMs: config.cache.fillGraceSeconds * 1000,
    health,
    revalidateTimeoutMs: config.upstream.revalidateTimeoutMs,
    manifestMemory: { maxBytes: config.cache.manifestMemoryBytes, maxEntries: config.cache.manifestMemoryEntries },
    cluster,
  });
  const referrers = new ReferrersService({ registries, client, logger, ttlMs: config.cache.referrersTtlSeconds * 1000 });
  const tags = new TagService({ registries, client, logger, ttlMs: config.cache.tagsTtlSeconds * 1000 });
  // Every in-memory cache hears every committed change, this process's and the other replicas' (db/change-feed.ts).
  for (const cache of [registries, routing, authenticator, entries, pull, referrers, tags]) changes.subscribe((change) => cache.onChange(change));
  const prefetchRunner = new PrefetchRunner({ db, pull, registries, logger });
  prefetchJobs.onQueued = () => prefetchRunner.poke();
  return {
    store,
    cipher,
    registryTokens,
    throttle,
    changes,
    authenticator,
    sessions: new SessionService({ db, changes, times: sessionTimes }),
    traffic,
    users: new UserService({ db, changes }),
    groups: new GroupService({ db, changes }),
    memberships: new MembershipService({ db, changes }),
    tokens: new TokenService({ db, changes }),
    audit,
    registries,
    upstreams,
    mirrorRoutes: new MirrorRouteService({ db, changes }),
    routing,
    registryUpstreams: new RegistryUpstreamService({ db, changes, limits: config.limits, upstreams }),
    entries,
    cacheEntryQueries: new CacheEntryQueryService({ db }),
    cleanupPolicies: new CleanupPolicyService({ db }),
    linkQueries: new RegistryUpstreamQueryService({ db }),
    counter,
    destroyer,
    storageCheck: new StorageCheck({ db, store, destroyer, repairs }),
    evictor,
    quota,
    cleanup: new CleanupRunner({ db, dialect, evictor, destroyer, counter, metrics, logger, intervalMs: config.cache.cleanupCheckSeconds * 1000 }),
    storageUsage: new StorageUsage({ db }),
    client,
    pull,
    prefetchJobs,
    prefetchRunner,
    cluster,
    referrers,
    tags,
    catalog: new CatalogService({ db, dialect }),
    repairs,
  };
}

export type Services = Awaited<ReturnType<typeof createServices>>;

/** The HTTP application over the services: health, /auth/token, /v2 and /api/v1. */
export function createHttp(config: Config, database: DatabaseHandle, services: Services, logger: Logger, metrics: Metrics): FastifyInstance {
  const app = buildApp({
    logger,
    metrics,
    trustProxy: config.server.trustProxy,
    health: { database: () => database.ping(), storage: () => services.store.ping() },
  });
  tokenRoutes(app, {
    authenticator: services.authenticator,
    registryTokens: services.registryTokens,
    resolveGroupId: (path) => services.groups.idOfPath(path),
    mayPullRouted: (actor, name, address, host) => services.routing.mayPull(actor, name, address, host),
  });
  registryRoutes(app, {
    pull: services.pull,
    referrers: services.referrers,
    tags: services.tags,
    catalog: services.catalog,
    service: config.auth.service,
    realm: (request) => tokenRealm(request, { publicUrl: config.server.publicUrl, allowedHosts: config.server.allowedHosts }),
    // A registry token's grants are checked by the pull service, after the membership check.
    authenticate: (request) => actorFor(request, services.authenticator, 'registry'),
    route: (request) => services.routing.resolve(request),
    metrics,
  });
  consoleRoutes(app);
  // Built by its first request (lazy-mount.ts): a cache that only serves pulls never pays for it.
  lazyMount(app, API_PREFIX, async () => {
    const { apiRoutes } = await import('./http/api/index.ts');
    const { app: api } = buildShell({ logger, metrics, trustProxy: config.server.trustProxy, schemas: true });
    apiRoutes(api, apiDependencies(config, services));
    return api;
  });
  return app;
}

function apiDependencies(config: Config, services: Services): ApiDeps {
  return {
    authenticator: services.authenticator,
    userService: services.users,
    groupService: services.groups,
    membershipService: services.memberships,
    tokenService: services.tokens,
    registryService: services.registries,
    upstreamService: services.upstreams,
    registryUpstreamService: services.registryUpstreams,
    mirrorRouteService: services.mirrorRoutes,
    cacheEntries: services.entries,
    cacheEntryQueries: services.cacheEntryQueries,
    cleanupPolicies: services.cleanupPolicies,
    linkQueries: services.linkQueries,
    auditService: services.audit,
    upstreamClient: services.client,
    allowPrivateUpstreams: config.upstream.allowPrivate,
    sessionService: services.sessions,
    registryTraffic: services.traffic,
    prefetchJobs: services.prefetchJobs,
    storageUsage: services.storageUsage,
    publicUrl: config.server.publicUrl,
    service: config.auth.service,
  };
}

/** `manifold migrate`: the configured database's migrations, and nothing else. Returns the dialect. */
export async function migrateDatabase(config: Config): Promise<DatabaseHandle['dialect']> {
  const database = openDatabase(databaseOptions(config));
  try {
    await database.migrate();
    return database.dialect;
  } finally {
    await database.close();
  }
}

/** The services over a migrated database, without HTTP: what the server and the CLI (src/cli/admin.ts) share. */
export interface ServiceRuntime {
  database: DatabaseHandle;
  services: Services;
  /** Closes the upstream connections, the password hashing workers and the database. */
  close(): Promise<void>;
}

/** Opens and migrates the configured database and builds the services on it. */
export async function openServices(config: Config, logger: Logger, metrics: Metrics): Promise<ServiceRuntime> {
  const database = openDatabase(databaseOptions(config, logger));
  try {
    await database.migrate();
    const services = await createServices(config, database, logger, metrics);
    return {
      database,
      services,
      async close() {
        await services.client.close();
        await closePasswordHashing();
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}

export interface Manifold {
  app: FastifyInstance;
  /** The peer listener (cluster.host:cluster.port) the other replicas stream fills from; null with one replica. */
  peer: FastifyInstance | null;
  database: DatabaseHandle;
  services: Services;
  metrics: Metrics;
  logger: Logger;
  store: ObjectStore;
  /** Stops accepting, finishes in-flight responses and fills within the configured bound, closes everything. */
  close(): Promise<void>;
}

export async function createManifold(config: Config, logger: Logger = createLogger(config.log.level)): Promise<Manifold> {
  const metrics = createMetrics();
  const runtime = await openServices(config, logger, metrics);
  const { database, services } = runtime;

  const admin = await ensureAdminUser(database.db, config.adminPassword);
  if (admin.generatedPassword) {
    // Printed once, on the console only (not in the JSON log), so that it is seen and not stored.
    console.error(`\n  Manifold admin user created.\n  username: ${ADMIN_USERNAME}\n  password: ${admin.generatedPassword}\n  (shown once: keep it, or set MANIFOLD_ADMIN_PASSWORD before the first start)\n`);
  } else if (admin.created) {
    logger.info({ username: ADMIN_USERNAME }, 'admin user created with the configured password');
  }

  metrics.sources.rateLimits = () => services.client.rateLimits();
  metrics.sources.health = () => services.pull.health.ids().map((id) => {
    const view = services.pull.health.view(id);
    return { id, state: view.state, consecutiveFailures: view.consecutive_failures };
  });
  metrics.sources.changeFeed = () => database.changes.stats();
  metrics.sources.memoryCaches = () => ({
    hot_manifests: services.pull.manifestMemory,
    entry_lookups: services.entries.lookupMemory,
    token_actors: services.authenticator.actorMemory,
    verified_tokens: services.registryTokens.verifiedMemory,
    registries: services.registries.pullMemory,
  });
  // Hear the other replicas' changes (PostgreSQL); the CLI only tells them its own.
  database.changes.listen();
  services.counter.start();
  services.traffic.start();
  services.destroyer.start();
  services.cluster?.leases.start();
  services.prefetchRunner.start();
  services.quota.start();
  services.cleanup.start();

  const app = createHttp(config, database, services, logger, metrics);
  const peer = services.cluster && config.cluster.secret ? buildPeerApp({ logger, secret: config.cluster.secret, fills: services.pull.blobFills }) : null;

  return {
    app,
    peer,
    database,
    services,
    metrics,
    logger,
    store: services.store,
    async close() {
      // Stop accepting; responses in flight finish. Fills go on until they settle (bounded by the caller).
      await app.close();
      await services.prefetchRunner.stop();
      await services.pull.settle();
      // After the fills: the other replicas streamed from them until they ended.
      await peer?.close();
      await services.cluster?.leases.stop();
      await services.cluster?.peers.close();
      await services.counter.stop();
      await services.traffic.stop();
      await services.quota.stop();
      await services.cleanup.stop();
      await services.destroyer.stop();
      await runtime.close();
    },
  };
}
