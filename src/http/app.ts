// The Fastify application shell: logging, request metrics, health and /metrics. The protocol and API
// routes are added by their modules (see src/server.ts).
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import type { Metrics } from '../metrics.ts';
import { clientErrorHandler, frameworkErrors, installErrorFormats } from './error-formats.ts';
import { healthRoutes } from './health.ts';
import type { HealthChecks } from './health.ts';

export interface AppDependencies {
  logger: Logger;
  /** Default: a registry of its own (tests). */
  metrics?: Metrics;
  health: HealthChecks;
  trustProxy: boolean;
}

/** One log line per request, when it ends (DESIGN §7); headers are never logged, so neither are credentials. */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    const line = { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), ip: request.ip };
    if (error) reply.log.error({ ...line, err: error }, 'request failed');
    else if (request.url.startsWith('/healthz') || request.url.startsWith('/readyz') || request.url.startsWith('/metrics')) reply.log.debug(line, 'request');
    else reply.log.info(line, 'request');
  }
}

export function buildApp(deps: AppDependencies): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    trustProxy: deps.trustProxy,
    // Registry paths hold slashes and colons; keep them as they are.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    requestIdHeader: 'x-request-id',
    logController: new OneLinePerRequest(),
    return503OnClosing: true,
    // Blob responses can take long; the client's own timeouts decide.
    requestTimeout: 0,
    // Errors before any route runs, in the format of the protocol the path belongs to.
    frameworkErrors,
    clientErrorHandler,
  });
  installErrorFormats(app);

  const metrics = deps.metrics ?? createMetrics({ defaultMetrics: false });
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    done();
  });

  healthRoutes(app, deps.health);
  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  return app;
}
