// The Fastify application: health, and (added by their modules) /v2, /auth/token, /api/v1, /metrics.
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import { healthRoutes } from './health.ts';
import type { HealthChecks } from './health.ts';

export interface AppDependencies {
  logger: Logger;
  health: HealthChecks;
  trustProxy: boolean;
}

export function buildApp(deps: AppDependencies): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    trustProxy: deps.trustProxy,
    // Registry paths hold slashes and colons; keep them as they are.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    requestIdHeader: 'x-request-id',
    return503OnClosing: true,
  });
  healthRoutes(app, deps.health);
  return app;
}
