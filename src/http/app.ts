// The Fastify application shell: logging, request metrics, health and /metrics. The protocol and API
// routes are added by their modules (see src/server.ts).
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { healthRoutes } from './health.ts';
import type { HealthChecks } from './health.ts';

export interface AppDependencies {
  logger: Logger;
  metrics: Metrics;
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
    // Blob responses can take long; the client's own timeouts decide.
    requestTimeout: 0,
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpRequests.inc({ route, method: request.method, status: String(reply.statusCode) });
    deps.metrics.httpDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });

  healthRoutes(app, deps.health);
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return app;
}
