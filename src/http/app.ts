// The Fastify application shell: logging, request metrics, health and /metrics. The protocol and API
// routes are added by their modules (see src/server.ts).
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';
import type { Logger } from '../log.ts';
import { createMetrics } from '../metrics.ts';
import type { Metrics } from '../metrics.ts';
import { clientErrorHandler, frameworkErrors, installErrorFormats } from './error-formats.ts';
import { healthRoutes } from './health.ts';
import type { HealthChecks } from './health.ts';
import { isForwarded } from './lazy-mount.ts';
import { WITHOUT_SCHEMAS } from './no-schemas.ts';

export interface ShellDependencies {
  logger: Logger;
  /** Default: a registry of its own (tests). */
  metrics?: Metrics;
  trustProxy: boolean;
  /** Routes with JSON schemas (the management API): Fastify's compilers; otherwise none (no-schemas.ts). */
  schemas?: boolean;
}

export interface AppDependencies extends ShellDependencies {
  health: HealthChecks;
}

/**
 * One log line per request, when it ends (DESIGN §7); headers are never logged, so neither are credentials.
 * Written by the server's logger with the request id, so that the request's own logger is made only when
 * a handler logs something else (LazyRequestLogger).
 */
class OneLinePerRequest extends LogController {
  readonly #logger: FastifyBaseLogger;

  constructor(logger: FastifyBaseLogger) {
    super();
    this.#logger = logger;
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null, request: FastifyRequest, reply: FastifyReply): void {
    if (isForwarded(request)) return;
    const line = { reqId: request.id, method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), ip: request.ip };
    if (error) this.#logger.error({ ...line, err: error }, 'request failed');
    else if (request.url.startsWith('/healthz') || request.url.startsWith('/readyz') || request.url.startsWith('/metrics')) this.#logger.debug(line, 'request');
    else this.#logger.info(line, 'request');
  }
}

type LogMethod = FastifyBaseLogger['info'];

/**
 * A request's logger (`request.log`), made on first use: most requests log nothing but their line, and a
 * pino child per request (its bindings serialized at once) was a twentieth of a cached manifest's CPU.
 */
class LazyRequestLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | null = null;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #logger(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  fatal: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().fatal(...args);
  error: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().error(...args);
  warn: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().warn(...args);
  info: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().info(...args);
  debug: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().debug(...args);
  trace: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().trace(...args);
  silent: LogMethod = (...args: Parameters<LogMethod>) => this.#logger().silent(...args);

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options);
  }
}

/**
 * A Fastify application with what every request of Manifold gets: one log line, the request metrics, errors
 * in the format of the path's protocol. The main application (buildApp) and a mounted one (lazy-mount.ts).
 */
export function buildShell(deps: ShellDependencies): { app: FastifyInstance; metrics: Metrics } {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    trustProxy: deps.trustProxy,
    // Registry paths hold slashes and colons; keep them as they are.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    requestIdHeader: 'x-request-id',
    logController: new OneLinePerRequest(deps.logger as FastifyBaseLogger),
    childLoggerFactory: (logger, bindings, options) => new LazyRequestLogger(logger, bindings, options),
    return503OnClosing: true,
    // Blob responses can take long; the client's own timeouts decide.
    requestTimeout: 0,
    // Errors before any route runs, in the format of the protocol the path belongs to.
    frameworkErrors,
    clientErrorHandler,
    ...(deps.schemas ? {} : { schemaController: WITHOUT_SCHEMAS }),
  });
  installErrorFormats(app);

  const metrics = deps.metrics ?? createMetrics({ defaultMetrics: false });
  app.addHook('onResponse', (request, reply, done) => {
    if (isForwarded(request)) return done();
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    done();
  });
  return { app, metrics };
}

/** The main application: the shell with health and /metrics. */
export function buildApp(deps: AppDependencies): FastifyInstance {
  const { app, metrics } = buildShell(deps);
  healthRoutes(app, deps.health);
  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  return app;
}
