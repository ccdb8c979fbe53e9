// The management API (/api/v1, DESIGN §6): JSON resources over the services, an OpenAPI 3.1 document
// generated from the zod schemas that validate the requests, and a browsable reference page.
import { prefetchRoutes } from './routes/prefetch.ts';
import type { PrefetchJobService } from '../../services/prefetch-jobs.ts';
import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Authenticator } from '../../services/authentication.ts';
import type { AuditService } from '../../services/audit.ts';
import type { CacheEntryService } from '../../services/cache-entries.ts';
import type { CacheEntryQueryService } from '../../services/cache-entry-queries.ts';
import type { CleanupPolicyService } from '../../services/cleanup-policies.ts';
import type { GroupService } from '../../services/groups.ts';
import type { MembershipService } from '../../services/memberships.ts';
import type { MirrorRouteService } from '../../services/mirror-routes.ts';
import type { RegistryService } from '../../services/registries.ts';
import type { RegistryTraffic } from '../../services/registry-traffic.ts';
import type { RegistryUpstreamQueryService } from '../../services/registry-upstream-queries.ts';
import type { RegistryUpstreamService } from '../../services/registry-upstreams.ts';
import type { SessionService } from '../../services/sessions.ts';
import type { StorageUsage } from '../../services/storage-usage.ts';
import type { TokenService } from '../../services/tokens.ts';
import type { UpstreamService } from '../../services/upstreams.ts';
import type { UserService } from '../../services/users.ts';
import type { UpstreamClient } from '../../upstream/client.ts';
import { authenticationHook } from './context.ts';
import { OPENAPI_INFO, SECURITY_SCHEMES } from './openapi.ts';
import { handleError, problem, sendProblem } from './problems.ts';
import { auditRoutes } from './routes/audit.ts';
import { cacheRoutes } from './routes/cache.ts';
import { cleanupPolicyRoutes } from './routes/cleanup-policy.ts';
import { groupRoutes } from './routes/groups.ts';
import { linkRoutes } from './routes/links.ts';
import { memberRoutes } from './routes/members.ts';
import { mirrorRouteRoutes } from './routes/mirror-routes.ts';
import { overviewRoutes } from './routes/overview.ts';
import { registryRoutes } from './routes/registries.ts';
import { sessionRoutes, signInRoutes } from './routes/session.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { upstreamRoutes } from './routes/upstreams.ts';
import { userRoutes } from './routes/users.ts';
import { apiSchemas } from './schemas.ts';
import { API_PREFIX } from './prefix.ts';

/** What the management API needs: services only (they own every query), built by the composition root (src/server.ts). */
export interface ApiDeps {
  authenticator: Authenticator;
  userService: UserService;
  groupService: GroupService;
  membershipService: MembershipService;
  tokenService: TokenService;
  registryService: RegistryService;
  upstreamService: UpstreamService;
  registryUpstreamService: RegistryUpstreamService;
  mirrorRouteService: MirrorRouteService;
  /** Purges and the deletion of one entry (marks for the destroy worker). */
  cacheEntries: Pick<CacheEntryService, 'markEntryForDestruction' | 'markUpstreamForDestruction' | 'markRegistryForDestruction'>;
  auditService: AuditService;
  /** Runs the upstream connection tests. */
  upstreamClient: UpstreamClient;
  /** Configuration `upstream.allowPrivate`: the address rule of unsaved upstreams under test. */
  allowPrivateUpstreams: boolean;
  /** Console sign-ins. */
  sessionService: SessionService;
  /** Prefetch jobs: create, show, list, cancel. */
  prefetchJobs: PrefetchJobService;
  /** Hourly hits, misses and bytes per registry. */
  registryTraffic: Pick<RegistryTraffic, 'statistics'>;
  /** Configuration `server.publicUrl` (else each request's origin) and `auth.service`. */
  publicUrl?: string;
  service: string;
  /** Cache entries of an upstream, searched and paged. */
  cacheEntryQueries: CacheEntryQueryService;
  cleanupPolicies: CleanupPolicyService;
  /** One registry-upstream link. */
  linkQueries: RegistryUpstreamQueryService;
  /** What a registry's cache holds and saves. */
  storageUsage: StorageUsage;
}

/** What every route module receives (the name route modules import). */
export type ResolvedApiDeps = ApiDeps;

export type ApiInstance = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

/**
 * Answers about resources are the caller's own and change at any time. Without this, a browser keeps an
 * answer that has a Last-Modified for a tenth of its age (RFC 9111 §4.2.2): a registry set up yesterday
 * would show its old upstream list for hours after a change, since moving a link leaves the registry's
 * own Last-Modified as it was.
 */
async function noStore(_request: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('cache-control', 'no-store');
}

/** Registers /api/v1 on the app (call before app.ready()). */
export function apiRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.register(async (api) => {
    api.setErrorHandler(handleError);
    api.setNotFoundHandler((request, reply) => sendProblem(reply, problem(404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`)));
    // Cookies are read here only: the console's session lives under /api/v1, never on /v2.
    await api.register(fastifyCookie);

    await api.register(fastifySwagger, {
      openapi: { openapi: '3.1.0', info: OPENAPI_INFO, servers: [], components: { securitySchemes: SECURITY_SCHEMES }, security: [{ bearer: [] }, { privateToken: [] }, { basic: [] }] },
      transform: createJsonSchemaTransform({ schemaRegistry: apiSchemas, skipList: [] }),
      transformObject: createJsonSchemaTransformObject({ schemaRegistry: apiSchemas }),
    });

    // Public: the document and its reference page.
    await api.register(async (docs) => {
      docs.get('/openapi.json', {
        schema: { summary: 'This OpenAPI document', tags: ['meta'], security: [] },
      }, async (_request, reply) => reply.type('application/json').send(api.swagger()));
      await docs.register(fastifySwaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: true } });
    });

    // Public: signing in to the console.
    await api.register(async (open) => {
      open.addHook('onRequest', noStore);
      open.setValidatorCompiler(validatorCompiler);
      open.setSerializerCompiler(serializerCompiler);
      signInRoutes(open.withTypeProvider<ZodTypeProvider>(), deps);
    });

    // Everything else needs credentials on the api channel.
    await api.register(async (secured) => {
      secured.setValidatorCompiler(validatorCompiler);
      secured.setSerializerCompiler(serializerCompiler);
      secured.addHook('onRequest', noStore);
      secured.addHook('onRequest', authenticationHook(deps.authenticator));
      const routes: ApiInstance = secured.withTypeProvider<ZodTypeProvider>();
      userRoutes(routes, deps);
      tokenRoutes(routes, deps);
      groupRoutes(routes, deps);
      memberRoutes(routes, deps);
      registryRoutes(routes, deps);
      upstreamRoutes(routes, deps);
      linkRoutes(routes, deps);
      mirrorRouteRoutes(routes, deps);
      cacheRoutes(routes, deps);
      cleanupPolicyRoutes(routes, deps);
      prefetchRoutes(routes, deps);
      auditRoutes(routes, deps);
      sessionRoutes(routes, deps);
      overviewRoutes(routes, deps);
    });
  }, { prefix: API_PREFIX });
}
