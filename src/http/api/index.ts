// The management API (/api/v1, DESIGN §6): JSON resources over the services, an OpenAPI 3.1 document
// generated from the zod schemas that validate the requests, and a browsable reference page.
import { prefetchRoutes } from './routes/prefetch.ts';
import type { PrefetchJobService } from '../../services/prefetch-jobs.ts';
import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Authenticator } from '../../auth/authenticate.ts';
import type { Db } from '../../db/connect.ts';
import type { AuditService } from '../../services/audit.ts';
import type { CacheEntryService } from '../../services/cache-entries.ts';
import { CacheEntryQueryService } from '../../services/cache-entry-queries.ts';
import { CleanupPolicyService } from '../../services/cleanup-policies.ts';
import type { GroupService } from '../../services/groups.ts';
import type { MembershipService } from '../../services/memberships.ts';
import type { MirrorRouteService } from '../../services/mirror-routes.ts';
import type { RegistryService } from '../../services/registries.ts';
import type { RegistryTraffic } from '../../services/registry-traffic.ts';
import { RegistryUpstreamQueryService } from '../../services/registry-upstream-queries.ts';
import type { RegistryUpstreamService } from '../../services/registry-upstreams.ts';
import type { SessionService } from '../../services/sessions.ts';
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

export const API_PREFIX = '/api/v1';

/** What the management API needs; the composition root (src/server.ts) builds these. */
export interface ApiDeps {
  db: Db;
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
  /** Built from `db` when not given. */
  cacheEntryQueries?: CacheEntryQueryService;
  cleanupPolicies?: CleanupPolicyService;
  linkQueries?: RegistryUpstreamQueryService;
}

/** ApiDeps with the API's own read services filled in. */
export type ResolvedApiDeps = Required<Omit<ApiDeps, 'publicUrl'>> & Pick<ApiDeps, 'publicUrl'>;

export type ApiInstance = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

/** Registers /api/v1 on the app (call before app.ready()). */
export function apiRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const resolved: ResolvedApiDeps = {
    ...deps,
    cacheEntryQueries: deps.cacheEntryQueries ?? new CacheEntryQueryService({ db: deps.db }),
    cleanupPolicies: deps.cleanupPolicies ?? new CleanupPolicyService({ db: deps.db }),
    linkQueries: deps.linkQueries ?? new RegistryUpstreamQueryService({ db: deps.db }),
  };
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
      open.setValidatorCompiler(validatorCompiler);
      open.setSerializerCompiler(serializerCompiler);
      signInRoutes(open.withTypeProvider<ZodTypeProvider>(), resolved);
    });

    // Everything else needs credentials on the api channel.
    await api.register(async (secured) => {
      secured.setValidatorCompiler(validatorCompiler);
      secured.setSerializerCompiler(serializerCompiler);
      secured.addHook('onRequest', authenticationHook(resolved.authenticator));
      const routes: ApiInstance = secured.withTypeProvider<ZodTypeProvider>();
      userRoutes(routes, resolved);
      tokenRoutes(routes, resolved);
      groupRoutes(routes, resolved);
      memberRoutes(routes, resolved);
      registryRoutes(routes, resolved);
      upstreamRoutes(routes, resolved);
      linkRoutes(routes, resolved);
      mirrorRouteRoutes(routes, resolved);
      cacheRoutes(routes, resolved);
      cleanupPolicyRoutes(routes, resolved);
      prefetchRoutes(routes, resolved);
      auditRoutes(routes, resolved);
      sessionRoutes(routes, resolved);
      overviewRoutes(routes, resolved);
    });
  }, { prefix: API_PREFIX });
}
